"""The needle suite: prompts of exact length in the real Llama 2, 3 and 3.1 tokenizers with the
needle at its depth, RULER's string match on golden cases, effective length, predictions files,
shadow runs of Llama 3.1 and Llama 4 through store, report and compare, and bad input."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from llama_zoo.suites.core.base import Context
from llama_zoo.suites.long_context import haystack as hay
from llama_zoo.suites.long_context.needle import (Grid, cells, effective_length, effective_length_ci, match_all,
                                                  match_part, metrics_of, suite)
from tests.zoo import zoo

# one xdist worker for the module: the shadow runs are made once, by the module fixture `shadow_runs`
pytestmark = pytest.mark.xdist_group("needle")


def tokenizer(shared, name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(shared / "tokenizers" / name)


def plan(spec_id: str, tok, **options):
    from llama_zoo.registry.catalog import load_catalog

    spec = load_catalog().get(spec_id)
    ctx = Context(spec=spec, options=suite.info.resolve_options(options), tokenizer=tok,
                  context=options.pop("context", spec.max_context))
    return suite.plan(ctx)


# -- exact lengths, needles at their depths


@pytest.mark.parametrize("model,tok_name,haystack", [
    ("llama-2-7b", "llama2", "stdlib-docs"),  # SentencePiece, a continuation
    ("llama-3-8b-instruct", "llama3", "stdlib-docs"),  # tiktoken BPE in its chat template
    ("llama-3.1-8b-instruct", "llama3_1", "noise"),
    ("llama-3.1-8b", "llama3_1", "stdlib-docs"),
])
def test_prompts_have_their_length_and_needles_their_depth(shared, model, tok_name, haystack):
    tok = tokenizer(shared, tok_name)
    lengths = (300, 777, 1500, 4000)
    depths = (0, 7.5, 25, 50, 80, 100)
    made = plan(model, tok, lengths=",".join(map(str, lengths)), depths=",".join(map(str, depths)), haystack=haystack,
                needles=2 if "instruct" in model else 1, context=4096)
    assert len(made.items) == len(lengths) * len(depths)
    assert made.options["chat"] is ("instruct" in model)
    stream = hay.token_stream(tok, hay.load_haystack(haystack), max(lengths))
    sentence = stream.longest_sentence()
    for item in made.items:
        task, request = item.data, item.requests[0]
        real, target = len(request.prompt), task.cell.length
        assert abs(real - target) <= 0.01 * target, (task.cell, real)
        assert tuple(request.prompt) == tuple(task.built.ids)
        # the rendered text is what was encoded, and each needle is in it, before the question
        assert all(n.sentence in request.text for n in task.cell.needles)
        # the needle's token position is its depth, within one sentence of the haystack
        haystack_tokens = task.built.context_span[1] - task.built.context_span[0]
        for depth in task.built.depths:
            assert abs(depth - task.cell.depth) <= 100 * sentence / haystack_tokens + 0.5, (task.cell, task.built.depths)
        # decoding the tokens at the needle's position gives the needle
        at = task.built.needle_tokens[0]
        assert tok.decode(request.prompt[at:at + 8]).strip().startswith("One of the special")
    exact = sum(len(i.requests[0].prompt) == i.data.cell.length for i in made.items)
    assert exact >= 0.75 * len(made.items)  # most are exact; the rest a seam's merge away (within 1%)


def test_the_samples_store_length_prompt_tokens_and_depth(shared):
    made = plan("llama-3.1-8b", tokenizer(shared, "llama3_1"), lengths="500", depths="40", context=1024)
    item = made.items[0]
    sample = suite.sample(item.index, item.data, "The number is " + item.data.cell.needles[0].value)
    assert sample.scores["length"] == 500 and sample.scores["depth"] == 40
    assert sample.scores["prompt_tokens"] == len(item.requests[0].prompt)
    assert sample.scores["score"] == 1 and sample.scores["passed"] is True
    assert sample.input_ref == "L500/d40/0"


def test_a_file_haystack_is_not_repeated_and_is_long_enough_or_refused(shared, tmp_path):
    tok = tokenizer(shared, "llama3_1")
    text = tmp_path / "essay.txt"
    text.write_text("Cats sleep a lot. Dogs bark at night.\n\nBirds sing in the morning. " * 40)
    made = plan("llama-3.1-8b", tok, lengths="400", depths="50", haystack=str(text), context=1024)
    assert made.items[0].data.built.copies == 1 and made.dataset_name == str(text.resolve())
    from llama_zoo.errors import LlamaZooError

    with pytest.raises(LlamaZooError, match="too short for length 900"):
        plan("llama-3.1-8b", tok, lengths="900", depths="50", haystack=str(text), context=1024)


def test_needles_come_from_the_seed_and_the_cell_alone():
    g = Grid((1000, 2000), (0.0, 50.0))
    a, b = cells(g, 3, 2, seed=7), cells(g, 3, 2, seed=7)
    assert a == b and len(a) == 8
    assert cells(g, 3, 2, seed=8) != a
    for cell in a:
        assert len({n.key for n in cell.needles}) == 3 and all(len(n.value) == 7 for n in cell.needles)


# -- scoring as RULER scores


GOLDEN = [  # (outputs, answers per output, string_match_all, string_match_part)
    (["The special magic number is 1234567."], [["1234567"]], 1.0, 1.0),
    (["It is 1234568"], [["1234567"]], 0.0, 0.0),
    (["  answer: ABC-def  "], [["abc-DEF"]], 1.0, 1.0),  # case-insensitive
    (["1111111 and 3333333"], [["1111111", "2222222", "3333333"]], 2 / 3, 2 / 3),
    (["1111111", "nothing"], [["1111111"], ["2222222"]], 0.5, 0.5),
    (["1111111", "2222222 3333333"], [["1111111", "9"], ["2222222", "3333333"]], 0.75, 0.5),
    (["\x00 7654321\x1f"], [["7654321"]], 1.0, 1.0),
    (["12345\n67"], [["1234567"]], 0.0, 0.0),  # a break inside the number is no match
]


@pytest.mark.parametrize("outputs,answers,every,part", GOLDEN)
def test_string_match_is_rulers(outputs, answers, every, part):
    assert match_all(outputs, answers) == pytest.approx(every)
    assert match_part(outputs, answers) == pytest.approx(part)


@pytest.mark.parametrize("outputs,answers,every,part", GOLDEN)
def test_string_match_equals_lm_evals_ruler(outputs, answers, every, part):
    try:
        ruler = importlib.import_module("lm_eval.tasks.ruler.common_utils")
    except ImportError:
        pytest.skip("lm-eval's RULER tasks are not installed")
    cleaned = ruler.postprocess_pred(outputs)
    assert match_all(outputs, answers) == pytest.approx(ruler.string_match_all(cleaned, answers))
    assert match_part(outputs, answers) == pytest.approx(ruler.string_match_part(cleaned, answers))


# -- metrics


def test_effective_length_is_the_last_length_of_the_passing_run_from_the_start():
    assert effective_length({1000: 0.9, 2000: 0.86, 4000: 0.5, 8000: 0.95}, 0.856) == 2000
    assert effective_length({1000: 0.9, 2000: 0.8, 4000: 0.9}, 0.856) == 1000
    assert effective_length({1000: 0.5, 2000: 1.0}, 0.856) == 0
    assert effective_length({1000: 0.856}, 0.856) == 1000  # at the threshold counts


def test_effective_length_interval_is_made_of_grid_lengths():
    values = {1000: np.ones(20), 2000: np.array([1.0] * 17 + [0.0] * 3), 4000: np.zeros(20)}
    low, high = effective_length_ci(values, 0.856, seed=0)
    assert low in (0, 1000, 2000, 4000) and high in (0, 1000, 2000, 4000) and low <= 2000 <= high
    assert high < 4000


def test_metrics_overall_per_length_per_depth_and_cells():
    scores = [{"length": L, "depth": d, "score": s, "needles": 1}
              for L, d, s in [(1000, 0.0, 1), (1000, 100.0, 1), (2000, 0.0, 1), (2000, 100.0, 0)]]
    got = {m["name"]: m for m in metrics_of(scores, seed=0, threshold=0.856)}
    assert got["score"]["value"] == 0.75 and got["score"]["n"] == 4
    assert got["length/1000/score"]["value"] == 1 and got["length/2000/score"]["value"] == 0.5
    assert got["depth/0/score"]["value"] == 1 and got["depth/100/score"]["value"] == 0.5
    assert got["effective_length"]["value"] == 1000
    assert [2000, 100.0, 0.0, 1] in got["score"]["extra"]["cells"]


def test_work_for_plan_is_the_prompts_tokens():
    ctx = Context(spec=None, options=suite.info.resolve_options({}), tokenizer=None, context=8192)
    work = suite.work(ctx)
    lengths = np.linspace(2000, 8192 - 32, 10).round()
    assert work.scored == pytest.approx(sum(lengths) * 11, abs=20) and work.sequences == 110
    assert work.generated == 110 * 32


# -- predictions made elsewhere


def test_predictions_file_is_scored_without_a_model(tmp_path):
    g = Grid((1000, 2000), (0.0, 100.0))
    lines = []
    for cell in cells(g, 2, 1, seed=3):
        values = [n.value for n in cell.needles]
        answer = {1000: f"{values[0]} and {values[1]}", 2000: f"only {values[0]}"}[cell.length]
        lines.append(json.dumps({"id": cell.ref, "answer": answer}))
    path = tmp_path / "predictions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    db = tmp_path / "p.db"
    out = zoo("eval", "--model", "llama-3.1-8b-instruct", "--suite", "needle", "--lengths", "1000,2000", "--depths", "0,100",
              "--needles", "2", "--seed", "3", "--predictions-file", str(path), "--format", "json", db=db)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)["metrics"]
    assert metrics["length/1000/score"]["value"] == 1.0 and metrics["length/2000/score"]["value"] == 0.5
    assert metrics["score"]["value"] == 0.75 and metrics["effective_length"]["value"] == 1000
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "L999/d0/0", "answer": "x"}) + "\n")
    out = zoo("eval", "--model", "llama-3.1-8b-instruct", "--suite", "needle", "--lengths", "1000", "--predictions-file",
              str(bad), db=db)
    assert out.returncode == 2 and "is no cell of the grid" in out.stderr


# -- shadow runs through store, report and compare


@pytest.fixture(scope="module")
def shadow_runs(tmp_path_factory, shared):
    db = tmp_path_factory.mktemp("needle") / "n.db"
    runs = {}
    # Llama 4's tokenizer is not in ../shared: its shadow run reads the byte-level stand-in (one token a byte)
    for model, extra in (("llama-3.1-8b", ("--tokenizer", str(shared / "tokenizers" / "llama3_1"))),
                         ("llama-4-scout-17b-16e", ())):
        out = zoo("eval", "--model", model, "--suite", "needle", "--shadow", *extra, "--lengths", "512,768",
                  "--depths", "0,25,50,75,100", "--context", "1024", "--max-new-tokens", "8", "--format", "json", db=db)
        assert out.returncode == 0, out.stderr
        runs[model] = json.loads(out.stdout)
    return db, runs


@pytest.mark.slow
def test_shadow_runs_are_stored_with_every_metric(shadow_runs):
    db, runs = shadow_runs
    for model, outcome in runs.items():
        metrics = outcome["metrics"]
        assert {"score", "length/512/score", "length/768/score", "depth/0/score", "depth/100/score",
                "effective_length"} <= set(metrics), model
        assert metrics["score"]["n"] == 10
    from llama_zoo.results.store import Store

    store = Store.open(str(db))
    samples = list(store.iter_samples(runs["llama-3.1-8b"]["run_id"]))
    assert {s["input_ref"] for s in samples} >= {"L512/d0/0", "L768/d100/0"}
    for s in samples:
        assert abs(s["scores"]["prompt_tokens"] - s["scores"]["length"]) <= 0.01 * s["scores"]["length"]


@pytest.mark.slow
def test_report_draws_shadow_heatmaps_in_the_shadow_section_only(shadow_runs, tmp_path):
    db, runs = shadow_runs
    out = zoo("report", "--suite", "needle", "-o", str(tmp_path / "r.html"), db=db)
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "r.html").read_text()
    section = html[html.index('id="suite-needle"'):]
    shadow = section.index('id="code-paths-needle"')
    assert "<svg" not in section[:shadow]  # no shadow run is drawn as a measurement
    apart = section[shadow:]
    for model, outcome in runs.items():
        assert f"score by length and depth: {model} (run {outcome['run_id']}) — shadow weights: not a measurement" in apart
    assert "length 768 · depth 25% · score" in apart and "(n=1)" in apart  # a cell's hover
    assert "score against prompt length (shadow and random runs: not measurements)" in apart


@pytest.mark.slow
def test_compare_pairs_the_cells_of_two_shadow_runs(shadow_runs):
    db, runs = shadow_runs
    out = zoo("compare", runs["llama-3.1-8b"]["run_id"], runs["llama-4-scout-17b-16e"]["run_id"], "--format", "json", db=db)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["shared_samples"] == 10
    tests = {r["metric"]: r["test"] for r in got["rows"]}
    assert tests["all needles found"].startswith("McNemar exact") and tests["score"] == "paired bootstrap"


def test_charts_never_draw_a_shadow_run_as_a_measurement():
    from llama_zoo.reports import charts

    def row(model, measured):
        metrics = {"score": {"value": 0.5, "extra": {"cells": [[1000, 0.0, 1.0, 2], [1000, 100.0, 0.0, 2]]}},
                   "length/1000/score": {"value": 0.5, "ci_low": 0.0, "ci_high": 1.0, "n": 4}}
        return {"run": {"model_id": model, "id": model + "-run", "weights_source": "hub" if measured else "shadow"},
                "metrics": metrics, "measured": measured}

    rows = [row("real-model", True), row("toy-model", False)]
    main = charts.heatmap(rows, "score") + charts.by_length(rows, "score")
    apart = charts.heatmap(rows, "score", measured=False) + charts.by_length(rows, "score", measured=False)
    assert "real-model" in main and "toy-model" not in main
    assert "toy-model (shadow)" in apart and "real-model" not in apart
    assert 'data-tip="real-model · length 1,000 · depth 100% · score 0 (n=2)"' in main


# -- bad input: one line each, nothing stored


@pytest.mark.parametrize("model,args,message", [
    ("llama-2-7b", ("--lengths", "5000"), "--lengths 5000: over llama-2-7b's 4,096-token window (spec.max_context)"),
    ("llama-3.1-8b", ("--lengths", "2048", "--context", "1024"), "over what the run's --context leaves for a prompt"),
    ("llama-3.1-8b", ("--lengths", "900", "--context", "1024", "--haystack", "SHORT"), "too short for length 900"),
    ("llama-3.1-8b", ("--lengths", "512", "--depths", "0,120"), "--depths 120: a depth is a percentage of the haystack"),
    ("llama-3.1-8b", ("--lengths", "512", "--needles", "0"), "--needles must be at least 1, not 0"),
    ("llama-3.1-8b", ("--lengths", "5x"), "--lengths 5x: give token counts"),
    ("llama-3.1-8b", ("--lengths", "512", "--haystack", "/no/such/file.txt"), "--haystack /no/such/file.txt: no such file"),
])
def test_bad_input_is_one_line_and_stores_nothing(model, args, message, shared, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Only a few sentences here. Nothing more.\n")
    args = tuple(str(short) if a == "SHORT" else a for a in args)
    db = tmp_path / "b.db"
    out = zoo("eval", "--model", model, "--suite", "needle", "--shadow", "--tokenizer", str(shared / "tokenizers" / "llama3_1"),
              *args, db=db)
    assert out.returncode == 2, out.stdout
    assert message in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    from llama_zoo.results.store import Store

    assert Store.open(str(db)).counts()["runs"] == 0
