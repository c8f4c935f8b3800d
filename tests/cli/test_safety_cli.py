"""The guard and prompt-guard suites end to end on CPU: shadow Llama Guard 1, 2, 3 1B and 4 and
Prompt Guard 1 and 2 (real transformers classes, tiny width) land in the store, the report (a
leaderboard per suite, sorted by its headline) and ``compare``; bad input is one line."""

from __future__ import annotations

import json

import pytest

from tests.zoo import data_env

# one xdist worker for the module: every shadow classifier is run once, by the module fixture `store`
pytestmark = pytest.mark.xdist_group("safety-cli")

LIMIT = "50"  # XSTest's first 50 prompts: 25 safe homonyms, then 25 unsafe contrasts


GUARDS = [
    ("llama-guard-7b", ("--tokenizer", "llama2")),  # Guard 1's long prompt needs a real tokenizer within 2,048 positions
    ("llama-guard-2-8b", ("--tokenizer", "llama3")),
    ("llama-guard-3-1b", ()),
    ("llama-guard-4-12b", ()),
]


@pytest.fixture(scope="module")
def store(zoo, tmp_path_factory, shared):
    """Every shadow classifier run once into one database."""
    db = tmp_path_factory.mktemp("safety") / "r.db"
    outcomes = {}
    for model, extra in GUARDS:
        extra = tuple(str(shared / "tokenizers" / a) if a.startswith("llama") else a for a in extra)
        out = zoo("eval", "--model", model, "--suite", "guard", "--dataset", "xstest", "--shadow", "--limit", LIMIT,
                  *extra, "--format", "json", db=db, env=data_env(shared))
        assert out.returncode == 0, out.stderr
        outcomes[model] = json.loads(out.stdout)
    for model in ("prompt-guard-86m", "prompt-guard-2-86m", "prompt-guard-2-22m"):
        out = zoo("eval", "--model", model, "--suite", "prompt-guard", "--shadow", "--limit", "40", "--format", "json",
                  db=db, env=data_env(shared))
        assert out.returncode == 0, out.stderr
        outcomes[model] = json.loads(out.stdout)
    return db, outcomes


@pytest.mark.slow
def test_shadow_classifiers_complete_and_are_stored(zoo, store, shared):
    db, outcomes = store
    for model, _ in GUARDS:
        metrics = outcomes[model]["metrics"]
        assert {"f1", "precision", "recall", "fpr", "auprc", "auroc", "renormalized_auprc"} <= set(metrics), model
        assert metrics["auprc"]["n"] == int(LIMIT) and 0.0 <= metrics["auprc"]["value"] <= 1.0
    for model in ("prompt-guard-86m", "prompt-guard-2-86m", "prompt-guard-2-22m"):
        metrics = outcomes[model]["metrics"]
        assert {"auroc", "recall_at_1pct_fpr", "tpr@0.5", "fpr@0.5", "tpr@0.9", "fpr@0.9"} <= set(metrics), model
        # the default set mixes four sources, each scored on its own
        assert {"source/jailbreaks-in-the-wild/tpr@0.5", "source/cyberseceval-mitre-frr/fpr@0.5"} <= set(metrics)
    assert "jailbreak_score_auroc" in outcomes["prompt-guard-86m"]["metrics"]  # Prompt Guard 1's second score
    assert "jailbreak_score_auroc" not in outcomes["prompt-guard-2-86m"]["metrics"]
    runs = json.loads(zoo("runs", "list", "--format", "json", db=db, env=data_env(shared)).stdout)
    assert len(runs) == 7 and {r["status"] for r in runs} == {"completed"} and {r["weights_source"] for r in runs} == {"shadow"}
    shown = json.loads(zoo("runs", "show", outcomes["llama-guard-3-1b"]["run_id"], "--format", "json", db=db, env=data_env(shared)).stdout)
    assert shown["options"]["prompt_format"] == "guard-3" and shown["options"]["categories"].split(",")[-1] == "S13"
    assert shown["dataset_name"] == "xstest" and shown["options"]["verdict_token_ids"]["single_tokens"] is False  # byte stand-in


@pytest.mark.slow
def test_report_has_a_leaderboard_per_suite_sorted_by_its_headline(zoo, store, shared):
    db, outcomes = store
    report = zoo("report", "--format", "md", db=db, env=data_env(shared)).stdout
    for suite, headline, higher in (("guard", "f1", True), ("prompt-guard", "auroc", True)):
        section = report.split(f"### {suite}\n", 1)[1].split("###", 1)[0]
        header, _, *rows = [line for line in section.splitlines() if line.startswith("|")]
        column = [c.strip() for c in header.strip("|").split("|")].index(headline)
        values = [float(r.strip("|").split("|")[column].split()[0]) for r in rows]
        assert len(values) == (4 if suite == "guard" else 3)
        assert values == sorted(values, reverse=higher)


@pytest.mark.slow
def test_compare_uses_mcnemar_on_verdicts_and_a_paired_bootstrap(zoo, store, shared):
    db, outcomes = store
    for a, b, statistic in (("llama-guard-3-1b", "llama-guard-4-12b", "auprc"), ("prompt-guard-86m", "prompt-guard-2-22m", "auroc")):
        out = zoo("compare", outcomes[a]["run_id"], outcomes[b]["run_id"], "--format", "json", db=db, env=data_env(shared))
        assert out.returncode == 0, out.stderr
        rows = {r["metric"]: r for r in json.loads(out.stdout)["rows"]}
        assert rows["accuracy at 0.5"]["test"].startswith("McNemar exact")
        assert rows[statistic]["test"] == "paired bootstrap"
        assert rows[statistic]["b"] == pytest.approx(outcomes[b]["metrics"][statistic]["value"])


@pytest.mark.parametrize("args,message", [
    (("--model", "llama-3.1-8b", "--suite", "guard"), "llama-3.1-8b has no safety taxonomy"),
    (("--model", "prompt-guard-86m", "--suite", "guard"), "Prompt Guard models run in the prompt-guard suite"),
    (("--model", "llama-guard-3-1b", "--suite", "prompt-guard"), "llama-guard-3-1b is not a Prompt Guard classifier"),
    (("--model", "llama-guard-3-1b", "--suite", "guard", "--categories", "S1,S99"), "--categories: unknown category 'S99'"),
    (("--model", "llama-guard-3-1b", "--suite", "guard", "--exclude-categories", "O1"), "--exclude-categories: unknown category 'O1'"),
    (("--model", "llama-guard-3-1b", "--suite", "guard", "--role", "agent"), "--role agent classifies responses"),
    (("--model", "llama-guard-3-1b", "--suite", "guard", "--dataset", "UNLABELLED"), "has no label"),
    (("--model", "llama-guard-3-1b", "--suite", "guard", "--dataset", "no-such-set"), "no dataset 'no-such-set'"),
    (("--model", "llama-guard-3-1b", "--suite", "guard", "--policy", "/no/policy.yaml"), "--policy /no/policy.yaml: no such file"),
    (("--model", "llama-3.2-1b", "--suite", "perplexity", "--predictions-file", "PREDICTIONS"), "the perplexity suite takes none"),
])
def test_bad_input_is_one_line(zoo, args, message, shared, tmp_path):
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("prompt\nHow do I bake bread?\n")
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"id": "1", "unsafe_score": 0.5}\n')
    args = tuple(str(unlabelled) if a == "UNLABELLED" else str(predictions) if a == "PREDICTIONS" else a for a in args)
    if "--predictions-file" not in args:
        args += ("--shadow",)
    db = tmp_path / "r.db"
    out = zoo("eval", *args, db=db, env=data_env(shared))
    assert out.returncode == 2, out.stdout
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert json.loads(zoo("runs", "list", "--format", "json", db=db, env=data_env(shared)).stdout) == []
