"""The bfcl suite held against BFCL itself: Llama 3.1's prompt equals its published chat template
and BFCL's handler byte for byte and token for token; every per-sample verdict on correct, wrong
and malformed replies equals BFCL's eval runner's; the language hints and the pythonic system
prompt equal BFCL's; a reply that tries to run code is only a wrong answer; shadow runs go through
store, report and compare; bad input is one line.

BFCL's code comes from ``bfcl-eval`` installed with ``pip install --no-deps`` (``.ci/run`` does);
the tests skip where it is absent."""

from __future__ import annotations

import copy
import json
import re

import pytest

from llama_zoo.suites.core.base import Context
from llama_zoo.suites.tool_calling import bfcl_data, formats
from llama_zoo.suites.tool_calling.bfcl import metrics_of, suite, verdict
from tests.bfcl_reference import bfcl, bfcl_entries, bfcl_system_prompt, bfcl_verdict
from tests.zoo import zoo

pytestmark = pytest.mark.xdist_group("bfcl")


@pytest.fixture(scope="module")
def source():
    bfcl()  # skips without the package
    return bfcl_data.locate(None)


def entries(source, category: str, n: int | None = None) -> list[bfcl_data.Entry]:
    rows = bfcl_data.load_category(source, category)
    return rows[:n] if n else rows


def llama31_tokenizer(shared):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama3_1")


def published_llama31_template() -> str:
    """Llama 3.1 Instruct's published chat template, as BFCL's handler reproduces it in its source."""
    doc = bfcl().llama31.LlamaHandler_3_1._format_prompt.__doc__
    return doc[doc.index('"chat_template":') + len('"chat_template":'):].strip()


# -- the prompt: Llama 3.1's JSON tool calls

FIVE = ("simple_python_0", "multiple_3", "parallel_5", "live_multiple_1-0-1", "simple_java_0")  # the fourth brings a system message


def test_llama31_prompt_equals_the_published_template_and_bfcls_handler(source, shared):
    from llama_zoo.registry.catalog import load_catalog

    tok = llama31_tokenizer(shared)
    template = published_llama31_template()
    by_id = {e.id: e for c in {re.sub(r"_\d.*", "", i) for i in FIVE} for e in entries(source, c)}
    theirs_by_id = {row["id"]: row for c in {re.sub(r"_\d.*", "", i) for i in FIVE} for row in bfcl_entries(c)}
    spec = load_catalog().get("llama-3.1-8b-instruct")
    reference = bfcl().llama31.LlamaHandler_3_1
    for case in FIVE:
        entry = by_id[case]
        ctx = Context(spec=spec, options=suite.info.resolve_options({"category": entry.category}), tokenizer=tok,
                      context=spec.max_context)
        from llama_zoo.suites.tool_calling.bfcl import request

        ours = request(ctx, entry, "json", 0)
        rendered = tok.apply_chat_template(list(entry.question), tools=list(entry.functions), chat_template=template,
                                           add_generation_prompt=True, tokenize=False)
        theirs = theirs_by_id[case]
        handler_text = reference._format_prompt(None, copy.deepcopy(theirs["question"][0]), theirs["function"])
        assert ours.text == rendered, case
        assert ours.text == handler_text, case
        assert list(ours.prompt) == tok(rendered, add_special_tokens=False).input_ids, case
        assert list(ours.prompt) == tok(handler_text, add_special_tokens=False).input_ids, case
        assert ours.prompt[0] == tok.convert_tokens_to_ids("<|begin_of_text|>") and ours.prompt.count(
            tok.convert_tokens_to_ids("<|begin_of_text|>")) == 1


def test_non_ascii_documentation_is_kept_as_the_template_keeps_it(source, shared):
    """Where a function's documentation is not ASCII (multiple_6), the published template (jinja's
    tojson) keeps the characters and BFCL's handler (json.dumps) escapes them: llama-zoo follows the
    template, the model's own format; the two texts differ by those escapes alone."""
    tok = llama31_tokenizer(shared)
    entry = next(e for e in entries(source, "multiple") if e.id == "multiple_6")
    theirs = next(row for row in bfcl_entries("multiple") if row["id"] == "multiple_6")
    ours = formats.llama31_json_prompt(list(entry.question), entry.functions)
    rendered = tok.apply_chat_template(list(entry.question), tools=list(entry.functions),
                                       chat_template=published_llama31_template(), add_generation_prompt=True, tokenize=False)
    handler_text = bfcl().llama31.LlamaHandler_3_1._format_prompt(None, copy.deepcopy(theirs["question"][0]),
                                                                  theirs["function"])
    assert ours == rendered and ours != handler_text
    assert ours.encode("ascii", "backslashreplace").decode() != ours
    assert json.dumps(ours)[1:-1].replace("\\u", "\\u") == json.dumps(ours)[1:-1]
    escaped = re.sub(r"[^\x00-\x7f]", lambda m: json.dumps(m.group(0))[1:-1], ours)
    assert escaped == handler_text


def test_the_functions_carry_bfcls_language_hints_in_every_category(source):
    for category in bfcl_data.CATEGORIES:
        ours = [list(e.functions) for e in entries(source, category)]
        theirs = [row["function"] for row in bfcl_entries(category)]
        assert ours == theirs, category


def test_the_pythonic_system_prompt_is_bfcls_default(source):
    for entry in entries(source, "parallel_multiple", 5) + entries(source, "live_multiple", 5):
        assert formats.pythonic_system_prompt(entry.functions) == bfcl_system_prompt(entry.functions)


# -- verdicts: every reply kind, every single-turn category, as BFCL's eval runner decides


def _first_values(answer: dict) -> dict:
    """A correct call's arguments: each parameter's first accepted value (optional ones left out)."""
    args = {}
    for k, accepted in answer.items():
        value = accepted[0]
        if value == "":
            continue
        args[k] = value
    return args


def _json_call(name: str, args: dict) -> str:
    return json.dumps({"name": name, "parameters": args})


def _py_call(name: str, args: dict) -> str:
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def replies(entry: bfcl_data.Entry, fmt: str) -> dict[str, str]:
    """Correct, wrong (name, value, type, missing, extra) and malformed replies to one case."""
    write = _json_call if fmt == "json" else _py_call
    out = {"prose": "I cannot help with that.", "empty": "", "truncated": '{"name": "f", "parameters": {'
           if fmt == "json" else "[f(a=1", "list-of-nothing": "[]"}
    calls = [(name, _first_values(args)) for answer in (entry.ground_truth or ()) for name, args in answer.items()]
    if not calls:  # relevance: call the first function with no arguments
        calls = [(entry.functions[0]["name"], {})]
    name, args = calls[0]
    joined = (lambda parts: "; ".join(parts)) if fmt == "json" else (lambda parts: "[" + ", ".join(parts) + "]")
    out["correct"] = joined([write(n, a) for n, a in calls])
    out["wrong-name"] = write(name + "_x", args)
    if args:
        key = next(iter(args))
        value = args[key]
        out["missing"] = write(name, {k: v for k, v in args.items() if k != key})
        out["wrong-type"] = write(name, {**args, key: str(value) if not isinstance(value, str) else 12345})
        out["wrong-value"] = write(name, {**args, key: value + 7 if isinstance(value, (int, float)) and not isinstance(
            value, bool) else "certainly-not-this"})
    out["extra"] = write(name, {**args, "unexpected_argument": 1})
    out["one-of-several"] = write(name, args)
    if fmt == "json":
        out["list-form"] = "[" + ", ".join(_json_call(n, a) for n, a in calls) + "]"
        out["python-tag"] = "<|python_tag|>" + out["correct"]
        out["json-true"] = '{"name": "%s", "parameters": {"flag": true}}' % name
    else:
        out["fenced"] = "```\n" + out["correct"] + "\n```"
        out["arithmetic"] = f"{name}(x=24*60, y=2**10, z=-3)"
        out["lambda"] = f"{name}(x=lambda: 1)"
        out["names"] = f"{name}(x=some_variable, y=other.call(1), z=items[0])"
    return out


def _cases(source, fmt: str, per_category: int):
    categories = bfcl_data.CATEGORIES
    if fmt != "json" and not bfcl().tree_sitter:
        categories = tuple(c for c in categories if bfcl_data.language_of(c) == "python")
    for category in categories:
        for entry in entries(source, category, per_category):
            for kind, reply in replies(entry, fmt).items():
                yield entry, kind, reply


@pytest.mark.parametrize("fmt", ["json", "pythonic"])
def test_every_verdict_equals_bfcls_eval_runner(source, fmt):
    seen_errors: set[str] = set()
    checked = 0
    for entry, kind, reply in _cases(source, fmt, per_category=6):
        ours = verdict(entry, reply, fmt)
        theirs = bfcl_verdict(entry, reply, fmt)
        assert ours["valid"] == theirs["valid"], (entry.id, kind, reply, ours, theirs)
        if not ours["valid"]:
            assert ours["error_type"] == theirs["error_type"], (entry.id, kind, reply, ours, theirs)
            seen_errors.add(ours["error_type"])
        checked += 1
    # the replies reach every kind of verdict, not one
    assert checked > 500
    assert {"ast_decoder:decoder_failed", "simple_function_checker:wrong_func_name", "simple_function_checker:missing_required",
            "simple_function_checker:unexpected_param", "irrelevance_error:decoder_success"} <= seen_errors, seen_errors
    assert any(e.startswith("type_error") for e in seen_errors) and any(e.startswith("value_error") for e in seen_errors)


def test_a_predictions_file_is_scored_as_bfcl_scores_it(source, tmp_path):
    lines, expected = [], {}
    for entry, kind, reply in _cases(source, "json", per_category=2):
        if entry.category not in ("simple_python", "parallel", "irrelevance", "live_multiple"):
            continue
        if entry.id in expected:
            continue  # one reply per case
        lines.append(json.dumps({"id": entry.id, "result": reply}))
        expected[entry.id] = bfcl_verdict(entry, reply, "json")["valid"]
    path = tmp_path / "predictions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    db = tmp_path / "p.db"
    out = zoo("eval", "--model", "llama-3.1-8b-instruct", "--suite", "bfcl", "--category",
              "simple_python,parallel,irrelevance,live_multiple", "--limit", "2", "--predictions-file", str(path),
              "--tool-format", "json", "--format", "json", db=db)
    assert out.returncode == 0, out.stderr
    from llama_zoo.results.store import Store

    outcome = json.loads(out.stdout)
    samples = list(Store.open(str(db)).iter_samples(outcome["run_id"]))
    assert {s["input_ref"]: s["scores"]["passed"] for s in samples} == expected
    assert outcome["metrics"]["accuracy"]["value"] == pytest.approx(sum(expected.values()) / len(expected))


# -- nothing a model writes runs


@pytest.mark.parametrize("fmt,reply", [
    ("json", '{"name": "calculate_triangle_area", "parameters": {"base": __import__("os").system("touch MARK")}}'),
    ("json", '[{"name": "calculate_triangle_area", "parameters": {"base": open("MARK", "w").write("x")}}]'),
    ("pythonic", 'calculate_triangle_area(base=__import__("os").system("touch MARK") + 1, height=5)'),
    ("pythonic", 'calculate_triangle_area(base=(lambda: __import__("os").system("touch MARK"))() * 2, height=5)'),
])
def test_a_reply_that_would_run_code_is_a_wrong_answer_and_nothing_runs(source, tmp_path, monkeypatch, fmt, reply):
    monkeypatch.chdir(tmp_path)
    entry = entries(source, "simple_python", 1)[0]
    v = verdict(entry, reply, fmt)
    assert v["valid"] is False and v["error_type"] == "ast_decoder:decoder_failed"
    assert not (tmp_path / "MARK").exists()


def test_arithmetic_and_literals_are_values_but_names_are_text():
    assert formats.decode_pythonic_calls("[f(a=24*60, b=-2, c=[1, 'x'], d={'k': 2**3}, e=g(1), h=x)]") == [
        {"f": {"a": 1440, "b": -2, "c": [1, "x"], "d": {"k": 8}, "e": "g(1)", "h": "x"}}]
    with pytest.raises(formats.NotACall):  # BFCL's parser takes no attribute as a value either
        formats.decode_pythonic_calls("[f(a=x.y)]")
    assert formats.decode_json_calls('{"name": "f", "parameters": {"a": 1}}; {"name": "g", "parameters": {}}') == [
        {"f": {"a": 1}}, {"g": {}}]
    with pytest.raises(formats.NotACall):
        formats.decode_pythonic_calls("[f(a=9**99999)]")
    with pytest.raises(formats.NotACall):
        formats.decode_pythonic_calls("[f(a='x'*10**9)]")


# -- metrics as BFCL's leaderboard aggregates them


def test_summaries_are_bfcls_leaderboard_aggregates():
    helper = pytest.importorskip("bfcl_eval.eval_checker.eval_runner_helper") if bfcl() else None
    import random

    rng = random.Random(0)
    scores, table = [], {}
    sizes = {"simple_python": 40, "simple_java": 10, "simple_javascript": 5, "multiple": 20, "parallel": 20,
             "parallel_multiple": 20, "live_simple": 25, "live_multiple": 100, "live_parallel": 4, "live_parallel_multiple": 6}
    for category, n in sizes.items():
        passed = [rng.random() < 0.6 for _ in range(n)]
        scores += [{"passed": p, "category": category, "error_type": None if p else "x"} for p in passed]
        table[category] = {"accuracy": sum(passed) / n, "total_count": n, "display_accuracy": sum(passed) / n}
    got = {m["name"]: m["value"] for m in metrics_of(scores, seed=0)}
    simple = helper.calculate_unweighted_accuracy([table["simple_python"], table["simple_java"], table["simple_javascript"]])
    non_live = helper.calculate_unweighted_accuracy([simple, table["multiple"], table["parallel"], table["parallel_multiple"]])
    live = helper.calculate_weighted_accuracy([table[c] for c in bfcl_data.LIVE_AST])
    assert got["non_live_ast"] == pytest.approx(non_live["accuracy"])
    assert got["live_ast"] == pytest.approx(live["accuracy"])
    assert got["category/live_parallel/accuracy"] == pytest.approx(table["live_parallel"]["accuracy"])


# -- shadow runs: Llama 3.1 (json), 3.2 and 4 (pythonic) through store, report and compare


@pytest.fixture(scope="module")
def shadow_runs(tmp_path_factory, shared, source):
    db = tmp_path_factory.mktemp("bfcl") / "b.db"
    tok = ("--tokenizer", str(shared / "tokenizers" / "llama3_1"))
    runs = {}
    for model, extra in (("llama-3.1-8b-instruct", tok), ("llama-3.2-1b-instruct", tok),
                         ("llama-4-scout-17b-16e-instruct", ())):
        out = zoo("eval", "--model", model, "--suite", "bfcl", "--shadow", *extra, "--category", "simple_python,irrelevance",
                  "--limit", "3", "--max-new-tokens", "6", "--format", "json", db=db)
        assert out.returncode == 0, out.stderr
        runs[model] = json.loads(out.stdout)
    return db, runs


@pytest.mark.slow
def test_shadow_runs_are_stored_reported_and_compared(shadow_runs, tmp_path):
    db, runs = shadow_runs
    from llama_zoo.results.store import Store

    store = Store.open(str(db))
    formats_seen = {}
    for model, outcome in runs.items():
        metrics = outcome["metrics"]
        assert {"accuracy", "category/simple_python/accuracy", "category/irrelevance/accuracy"} <= set(metrics)
        assert metrics["accuracy"]["n"] == 6
        samples = list(store.iter_samples(outcome["run_id"]))
        assert sorted(s["input_ref"] for s in samples) == sorted(
            [f"simple_python_{i}" for i in range(3)] + [f"irrelevance_{i}" for i in range(3)])
        formats_seen[model] = store.get(outcome["run_id"])["options"]["tool_format"]
    assert formats_seen == {"llama-3.1-8b-instruct": "json", "llama-3.2-1b-instruct": "pythonic",
                            "llama-4-scout-17b-16e-instruct": "pythonic"}
    out = zoo("report", "--suite", "bfcl", "-o", str(tmp_path / "r.html"), db=db)
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "r.html").read_text()
    assert 'id="suite-bfcl"' in html and "shadow" in html
    out = zoo("compare", runs["llama-3.1-8b-instruct"]["run_id"], runs["llama-3.2-1b-instruct"]["run_id"], "--format",
              "json", db=db)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["shared_samples"] == 6
    assert any(r["test"].startswith("McNemar exact") for r in got["rows"])


# -- bad input: one line each, nothing stored


@pytest.mark.parametrize("model,args,message", [
    ("llama-3.1-8b-instruct", ("--category", "simple_cobol"), "--category simple_cobol: no such BFCL category"),
    ("llama-3.1-8b-instruct", ("--category", "multi_turn_base"), "multi_turn_base is not run by llama-zoo yet"),
    ("llama-2-7b", ("--tokenizer", "LLAMA2"), "llama-2-7b has no tool-call format and its tokenizer no chat template"),
    ("llama-3.1-8b-instruct", ("--predictions-file", "UNKNOWN"), "id 'simple_python_9999' is no case of the run's categories"),
    ("llama-3.1-8b-instruct", ("--dataset", "/no/such/dir"), "--dataset /no/such/dir: no BFCL_v4_<category>.json there"),
])
def test_bad_input_is_one_line_and_stores_nothing(model, args, message, shared, tmp_path, source):
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"id": "simple_python_9999", "result": "[]"}) + "\n")
    args = tuple({"UNKNOWN": str(unknown), "LLAMA2": str(shared / "tokenizers" / "llama2")}.get(a, a) for a in args)
    if "--tokenizer" not in args and "--predictions-file" not in args:
        args = ("--tokenizer", str(shared / "tokenizers" / "llama3_1"), *args)
    db = tmp_path / "b.db"
    shadow = () if "--predictions-file" in args else ("--shadow",)
    out = zoo("eval", "--model", model, "--suite", "bfcl", *shadow, *args, db=db)
    assert out.returncode == 2, out.stdout
    assert message in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    from llama_zoo.results.store import Store

    assert Store.open(str(db)).counts()["runs"] == 0


def test_missing_data_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(bfcl_data, "package_dir", lambda: None)
    with pytest.raises(Exception) as err:
        bfcl_data.locate(None)
    assert "pip install --no-deps bfcl-eval==" in str(err.value)
