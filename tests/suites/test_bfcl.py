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
from llama_zoo.suites.tool_calling import multi_turn as mt
from tests.bfcl_reference import (bfcl, bfcl_entries, bfcl_multi_turn_verdict, bfcl_openai_tools, bfcl_system_prompt,
                                  bfcl_verdict)
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

        ours = request(ctx, list(entry.question), entry.functions, "json", 0)
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


def test_a_community_checkpoint_whose_template_takes_tools_is_asked_through_it(source, shared):
    """A checkpoint outside the registry (family ``community``) whose chat template takes ``tools``
    (here Llama 3.1's published one) is asked through that template: the same prompt as the json
    format, and its reply read as JSON calls."""
    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.suites.tool_calling.bfcl import chosen_format, request

    tok = llama31_tokenizer(shared)
    tok.chat_template = published_llama31_template()
    spec = load_catalog().get("llama-3.1-8b-instruct").model_copy(update={"family": "community"})
    entry = entries(source, "multiple", 1)[0]
    ctx = Context(spec=spec, options=suite.info.resolve_options({}), tokenizer=tok, context=4096)
    assert chosen_format(ctx) == "chat-template"
    assert request(ctx, list(entry.question), entry.functions, "chat-template", 0).text == formats.llama31_json_prompt(list(entry.question), entry.functions)
    name, args = next(iter(entry.ground_truth[0].items()))
    reply = json.dumps({"name": name, "parameters": {k: v[0] for k, v in args.items() if v[0] != ""}})
    assert verdict(entry, reply, "chat-template") == verdict(entry, reply, "json")


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


def test_the_tools_sent_to_a_server_are_bfcls(source):
    for category in bfcl_data.CATEGORIES:
        for entry in entries(source, category):
            assert formats.openai_tools(entry.functions) == bfcl_openai_tools(entry.functions), entry.id


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


def _server_call(name: str, args: dict) -> str:
    return json.dumps({"content": "", "tool_calls": [{name.replace(".", "_"): json.dumps(args)}]})


def _json_call(name: str, args: dict) -> str:
    return json.dumps({"name": name, "parameters": args})


def _py_call(name: str, args: dict) -> str:
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def replies(entry: bfcl_data.Entry, fmt: str) -> dict[str, str]:
    """Correct, wrong (name, value, type, missing, extra) and malformed replies to one case."""
    write = {"json": _json_call, "server": _server_call}.get(fmt, _py_call)
    out = {"prose": "I cannot help with that.", "empty": "", "truncated": '{"name": "f", "parameters": {'
           if fmt == "json" else "[f(a=1", "list-of-nothing": "[]"}
    calls = [(name, _first_values(args)) for answer in (entry.ground_truth or ()) for name, args in answer.items()]
    if not calls:  # relevance: call the first function with no arguments
        calls = [(entry.functions[0]["name"], {})]
    name, args = calls[0]
    joined = {"json": lambda parts: "; ".join(parts),
              "server": lambda parts: json.dumps({"content": "", "tool_calls": [c for p in parts for c in json.loads(p)[
                  "tool_calls"]]})}.get(fmt, lambda parts: "[" + ", ".join(parts) + "]")
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
    if fmt == "server":
        out["prose"] = json.dumps({"content": "I cannot help with that.", "tool_calls": []})
        out["bad-arguments"] = json.dumps({"content": "", "tool_calls": [{name.replace(".", "_"): "{not json"}]})
        out["dotted-name"] = json.dumps({"content": "", "tool_calls": [{name: json.dumps(args)}]})
    elif fmt == "json":
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


@pytest.mark.parametrize("fmt", ["json", "pythonic", "server"])
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


@pytest.mark.slow
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


# -- multi-turn: BFCL's simulated APIs, called without eval, judged by BFCL's checker


@pytest.mark.slow
def test_multi_turn_conversations_offer_bfcls_functions(source):
    for category in mt.CATEGORIES:
        ours = mt.load_multi_turn(source, category)
        theirs = bfcl_entries(category)
        assert [c.id for c in ours] == [t["id"] for t in theirs]
        for c, t in zip(ours, theirs):
            assert list(c.functions) == t["function"], c.id
            assert {str(k): list(v) for k, v in c.held_out.items()} == (t.get("missed_function") or {}), c.id


def _keywords(call: str) -> str:
    """A ground-truth call text with its positional arguments left out (as a decoder reads a reply)."""
    import ast

    node = ast.parse(call, mode="eval").body
    return f"{ast.unparse(node.func)}(" + ", ".join(ast.unparse(k) for k in node.keywords) + ")"


def conversation_replies(c: mt.Conversation, fmt: str) -> dict[str, list[list[str]]]:
    """Right, wrong and malformed replies to every turn of a conversation."""
    def step(calls):
        if fmt == "json":
            import ast

            objs = []
            for call in calls:
                node = ast.parse(call, mode="eval").body
                objs.append(json.dumps({"name": ast.unparse(node.func),
                                        "parameters": {k.arg: ast.literal_eval(k.value) for k in node.keywords}}))
            return "; ".join(objs) if len(objs) > 1 else (objs[0] if objs else "[]")
        return "[" + ", ".join(calls) + "]"

    gt = [list(t) for t in c.ground_truth]
    out = {
        "as-given": [[step(t), "Done."] if t else ["I cannot do that."] for t in gt],
        "keywords-only": [[step([_keywords(x) for x in t]), "Done."] if t else ["No."] for t in gt],
        "one-step-per-call": [[step([x]) for x in t] + ["Done."] if t else ["No."] for t in gt],
        "prose": [["I would rather not."] for _ in gt],
        "cut-short": [[step(t)] for t in gt[:-1]],
        "first-call-dropped": [[step(t[1:]) if t else "No."] for t in gt],
        "wrong-argument": [[step([x.replace("'", "'x", 1) for x in t])] if t else ["No."] for t in gt],
        "calls-in-the-wrong-turn": [["No."]] + [[step(t)] for t in gt[:-1]],
    }
    return out


@pytest.mark.parametrize("fmt", ["pythonic", "json"])
@pytest.mark.slow
def test_every_multi_turn_verdict_equals_bfcls(source, fmt):
    seen: dict[str, int] = {}
    passed = 0
    for category in mt.CATEGORIES:
        for c in mt.load_multi_turn(source, category)[:4]:
            for kind, replies in conversation_replies(c, fmt).items():
                ours = mt.check_conversation(c, replies, fmt)
                theirs = bfcl_multi_turn_verdict(c, replies, fmt)
                assert ours["valid"] == theirs["valid"], (c.id, kind, ours, theirs)
                if not ours["valid"]:
                    assert ours["error_type"] == theirs["error"]["error_type"], (c.id, kind, ours, theirs)
                    seen[ours["error_type"]] = seen.get(ours["error_type"], 0) + 1
                passed += ours["valid"]
    assert passed > 0  # some replies are right, not only wrong ones
    assert {"multi_turn:force_terminated", "multi_turn:empty_turn_model_response"} <= set(seen), seen
    assert any(k.startswith("multi_turn:instance_state") or k.startswith("multi_turn:execution_response")
               for k in seen), seen


def test_a_dialogue_runs_the_calls_on_its_apis_and_moves_through_the_turns(source):
    c = mt.load_multi_turn(source, "multi_turn_base")[0]
    d = mt.Dialogue.start(c, "pythonic")
    assert d.messages == [dict(m) for m in c.turns[0]]
    assert d.answer("[cd(folder='document'), mkdir(dir_name='temp')]") is True
    assert [m["role"] for m in d.messages[-3:]] == ["assistant", "tool", "tool"]
    assert d.messages[-2] == {"role": "tool", "name": "cd(folder='document')",
                              "content": '{"current_working_directory": "document"}'}
    assert d.answer("The folder is ready.") is True and d.turn == 1  # no call: the next user turn
    assert d.messages[-1] == dict(c.turns[1][0])
    for _ in c.turns[1:]:
        last = d.answer("Nothing to do.")
    assert last is False and len(d.replies) == len(c.turns) and d.force_quit is False
    # the calls changed the APIs' state: the checker sees the same conversation as BFCL does
    assert mt.check_conversation(c, d.replies, "pythonic")["valid"] == bfcl_multi_turn_verdict(c, d.replies, "pythonic")["valid"]


def test_a_turn_that_never_stops_calling_is_cut_off_as_bfcl_cuts_it(source):
    c = mt.load_multi_turn(source, "multi_turn_base")[0]
    d = mt.Dialogue.start(c, "pythonic")
    steps = 0
    while d.answer("[ls()]"):
        steps += 1
    assert steps == mt.MAX_STEPS and d.force_quit is True and len(d.replies) == 1


@pytest.mark.parametrize("reply,result", [
    ("[__import__('os').system('touch MARK')]", "Error during execution: name"),
    # a call as an argument is its text (as BFCL's decoder gives it), a string passed to ls
    ("[ls(a=__import__('os').system('touch MARK'))]", '{"current_directory_content"'),
    ("[cd(folder=open('MARK', 'w').name)]", None),  # an attribute is no value: no call decoded, the turn ends
    ("[exit()]", "Error during execution: Function call exit is not allowed."),
])
def test_a_multi_turn_call_that_would_run_code_runs_nothing(source, tmp_path, monkeypatch, reply, result):
    monkeypatch.chdir(tmp_path)
    c = mt.load_multi_turn(source, "multi_turn_base")[0]
    d = mt.Dialogue.start(c, "pythonic")
    d.answer(reply)
    assert not (tmp_path / "MARK").exists()
    results = [m["content"] for m in d.messages if m["role"] == "tool"]
    assert results[0].startswith(result) if result else (results == [] and d.turn == 1)
    assert mt.check_conversation(c, [[reply]] * len(c.turns), "pythonic")["valid"] is False
    assert not (tmp_path / "MARK").exists()


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


def test_plan_counts_each_prompts_bytes_and_the_replies(source):
    from llama_zoo.registry.catalog import load_catalog

    spec = load_catalog().get("llama-3.1-8b-instruct")
    ctx = Context(spec=spec, options=suite.info.resolve_options({"category": "simple_python,irrelevance",
                                                                 "max_new_tokens": 100}),
                  tokenizer=None, context=4096, limit=10)
    work = suite.work(ctx)
    chosen = entries(source, "simple_python", 10) + entries(source, "irrelevance", 10)
    prompt_bytes = sum(len(formats.llama31_json_prompt(list(e.question), e.functions).encode()) for e in chosen)
    assert work.sequences == 20 and work.generated == 2000
    assert work.scored == int(prompt_bytes / 4.0) and "20 cases" in work.basis


# -- shadow runs: Llama 3.1 (json), 3.2 and 4 (pythonic) through store, report and compare


@pytest.fixture(scope="module")
def shadow_runs(tmp_path_factory, shared, source):
    db = tmp_path_factory.mktemp("bfcl") / "b.db"
    tok = ("--tokenizer", str(shared / "tokenizers" / "llama3_1"))
    runs = {}
    for model, extra in (("llama-3.1-8b-instruct", tok), ("llama-3.2-1b-instruct", tok),
                         ("llama-4-scout-17b-16e-instruct", ())):
        out = zoo("eval", "--model", model, "--suite", "bfcl", "--shadow", *extra, "--category", "simple_python,irrelevance",
                  "--limit", "3", "--max-new-tokens", "6", "--context", "4096", "--format", "json", db=db)
        assert out.returncode == 0, out.stderr
        runs[model] = json.loads(out.stdout)
    # a conversation of each format (its prompts hold every API's documentation, ~8K tokens: one each)
    for model in ("llama-3.1-8b-instruct", "llama-3.2-1b-instruct"):
        out = zoo("eval", "--model", model, "--suite", "bfcl", "--shadow", *tok, "--category", "multi_turn_base",
                  "--limit", "1", "--max-new-tokens", "6", "--context", "16384", "--format", "json", db=db)
        assert out.returncode == 0, out.stderr
        runs[f"{model} multi-turn"] = json.loads(out.stdout)
    return db, runs


@pytest.mark.slow
def test_shadow_runs_are_stored_reported_and_compared(shadow_runs, tmp_path):
    db, runs = shadow_runs
    from llama_zoo.results.store import Store

    store = Store.open(str(db))
    formats_seen = {}
    for model, outcome in runs.items():
        metrics = outcome["metrics"]
        samples = list(store.iter_samples(outcome["run_id"]))
        formats_seen[model] = store.get(outcome["run_id"])["options"]["tool_format"]
        if model.endswith("multi-turn"):
            assert {"accuracy", "category/multi_turn_base/accuracy"} <= set(metrics)
            (s,) = samples
            # every turn was asked (a random model's reply calls nothing, which ends each turn)
            assert s["input_ref"] == "multi_turn_base_0" and len(json.loads(s["output"])) == len(json.loads(s["target"]))
            assert s["scores"]["passed"] is False and s["scores"]["error_type"] == "multi_turn:empty_turn_model_response"
            continue
        assert {"accuracy", "category/simple_python/accuracy", "category/irrelevance/accuracy"} <= set(metrics)
        assert metrics["accuracy"]["n"] == 6
        assert sorted(s["input_ref"] for s in samples) == sorted(
            [f"simple_python_{i}" for i in range(3)] + [f"irrelevance_{i}" for i in range(3)])
    assert formats_seen == {"llama-3.1-8b-instruct": "json", "llama-3.2-1b-instruct": "pythonic",
                            "llama-4-scout-17b-16e-instruct": "pythonic", "llama-3.1-8b-instruct multi-turn": "json",
                            "llama-3.2-1b-instruct multi-turn": "pythonic"}
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


# -- a server that parses the calls itself (tools=)


@pytest.mark.slow
def test_a_server_given_tools_parses_the_calls_and_they_are_scored_as_bfcl_scores_them(smollm2_gguf, source, tmp_path):
    """llama-cpp-python's server with its function-calling chat format (a grammar constrains the
    calls) and the real SmolLM2: the run stores the server's tool calls and BFCL's verdict on each."""
    pytest.importorskip("llama_cpp.server.app", reason="the server needs llama-cpp-python[server] (a dev extra)")
    from llama_zoo.results.store import Store
    from tests.llama_cpp_server import KEY, llama_cpp_server

    db = tmp_path / "s.db"
    with llama_cpp_server(smollm2_gguf, "--chat_format", "chatml-function-calling") as url:
        out = zoo("eval", "--model", str(smollm2_gguf), "--backend", "openai", "--base-url", url, "--suite", "bfcl",
                  "--tool-format", "server", "--category", "simple_python,irrelevance", "--limit", "3",
                  "--max-new-tokens", "64", "--format", "json", db=db, env={"LLAMA_ZOO_API_KEY": KEY, "OPENAI_API_KEY": None})
    assert out.returncode == 0, out.stderr
    outcome = json.loads(out.stdout)
    store = Store.open(str(db))
    assert store.get(outcome["run_id"])["options"]["tool_format"] == "server"
    by_id = {e.id: e for c in ("simple_python", "irrelevance") for e in entries(source, c, 3)}
    samples = list(store.iter_samples(outcome["run_id"]))
    assert len(samples) == 6
    for s in samples:
        assert set(json.loads(s["output"])) == {"content", "tool_calls"}
        assert s["scores"]["passed"] == bfcl_verdict(by_id[s["input_ref"]], s["output"], "server")["valid"]
    # SmolLM2 answers these in prose when the call is not forced (BFCL sends no tool_choice): no call
    # is no pass in simple_python and a pass in irrelevance
    assert all(s["scores"]["passed"] == (s["scores"]["category"] == "irrelevance") for s in samples
               if not json.loads(s["output"])["tool_calls"])


def test_a_servers_tool_calls_are_what_is_scored(source, tmp_path):
    """The tool_calls of a chat completion, as llama-cpp-python's server sends them when a call is made
    (its reply to simple_python_0 with the call forced, dots and all), through the openai backend to
    BFCL's verdict. A stand-in server replays that reply: the real one makes no call unforced, and
    vLLM's parsers cannot run here."""
    import http.server
    import threading

    entry = entries(source, "simple_python", 1)[0]
    calls = [{"id": "call__0", "type": "function", "function": {"name": "calculate_triangle_area",
                                                                  "arguments": '{ "base":10, "height":5 }'}}]
    seen = []

    class Reply(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps({"model": "stand-in", "usage": {"completion_tokens": 12}, "choices": [
                {"message": {"role": "assistant", "content": None, "tool_calls": calls}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Reply)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        from llama_zoo.backends.base import GenerateRequest
        from llama_zoo.backends.openai_api import OpenAIBackend
        from llama_zoo.backends.weights import WeightsSource
        from llama_zoo.registry.catalog import load_catalog

        spec = load_catalog().get("llama-3.1-8b-instruct")
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        backend = OpenAIBackend(spec, WeightsSource("server", f"{url} stand-in"), options={"base_url": url, "timeout": 10})
        request = GenerateRequest((), messages=(("user", "area?"),), tools=json.dumps(formats.openai_tools(entry.functions)))
        reply = backend.generate([request])[0].texts[0]
    finally:
        httpd.shutdown()
    assert seen[0]["tools"] == formats.openai_tools(entry.functions)
    assert json.loads(reply) == {"content": "", "tool_calls": [{"calculate_triangle_area": '{ "base":10, "height":5 }'}]}
    assert verdict(entry, reply, "server")["valid"] is True
    assert bfcl_verdict(entry, reply, "server") == {"valid": True}


# -- bad input: one line each, nothing stored


@pytest.mark.parametrize("model,args,message", [
    ("llama-3.1-8b-instruct", ("--category", "simple_cobol"), "--category simple_cobol: no such BFCL category"),
    ("llama-3.1-8b-instruct", ("--category", "web_search"), "web_search is not run by llama-zoo yet"),
    ("llama-2-7b", ("--tokenizer", "LLAMA2"), "llama-2-7b has no tool-call format and its tokenizer no chat template"),
    ("llama-3.1-8b-instruct", ("--predictions-file", "UNKNOWN"), "id 'simple_python_9999' is no case of the run's categories"),
    ("llama-3.1-8b-instruct", ("--dataset", "/no/such/dir"), "--dataset /no/such/dir: no BFCL_v4_<category>.json there"),
    ("llama-3.1-8b-instruct", ("--tool-format", "server"), "--tool-format server sends tools= to an OpenAI-compatible"),
    ("llama-3.1-8b-instruct", ("--category", "multi_turn_base", "--limit", "1"),
     "multi_turn_base_0: its prompt and reply need 7,833 tokens, over --context 2,048"),
    ("llama-3.1-8b-instruct", ("--category", "multi_turn_base", "--tool-format", "pythonic", "--context", "16384",
                               "--predictions-file", "BADTURNS"), "a multi-turn result is a list of turns"),
])
def test_bad_input_is_one_line_and_stores_nothing(model, args, message, shared, tmp_path, source):
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"id": "simple_python_9999", "result": "[]"}) + "\n")
    bad_turns = tmp_path / "turns.jsonl"
    bad_turns.write_text(json.dumps({"id": "multi_turn_base_0", "result": "not a list of turns"}) + "\n")
    args = tuple({"UNKNOWN": str(unknown), "LLAMA2": str(shared / "tokenizers" / "llama2"),
                  "BADTURNS": str(bad_turns)}.get(a, a) for a in args)
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
