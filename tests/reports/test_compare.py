"""``llama-zoo compare`` on stored runs: McNemar for pass/fail, paired bootstrap for perplexity."""

from __future__ import annotations

import dataclasses

import pytest

from llama_zoo.reports.compare import compare
from llama_zoo.results.identity import RunConfig
from llama_zoo.results.store import Store

BASE = RunConfig(model_id="code-llama-7b", spec_hash="s", suite="humaneval", suite_version="1", backend="hf",
                 weights_source="external", dataset_name="human-eval", dataset_hash="d")


def store_run(store, config, samples):
    with store.begin(config) as run:
        for i, (ref, scores) in enumerate(samples):
            run.add(i, input_ref=ref, scores=scores)
        run.complete()
    return run.run_id


@pytest.fixture
def store(tmp_path):
    return Store.open(str(tmp_path / "r.db"))


def test_pass_fail_runs_use_mcnemar(store):
    from statsmodels.stats.contingency_tables import mcnemar

    a_passes = [True] * 30 + [False] * 20 + [True] * 2 + [False] * 12
    b_passes = [True] * 30 + [False] * 20 + [False] * 2 + [True] * 12
    refs = [f"HumanEval/{i}" for i in range(len(a_passes))]
    a = store_run(store, BASE, [(r, {"passed": p}) for r, p in zip(refs, a_passes)])
    b = store_run(store, dataclasses.replace(BASE, model_id="code-llama-13b"),
                  [(r, {"passed": p}) for r, p in reversed(list(zip(refs, b_passes)))])  # another order: paired by task
    result = compare(store, a, b)
    row = result["rows"][0]
    assert result["shared_samples"] == 64 and row["metric"] == "pass rate"
    assert row["difference"] == pytest.approx(10 / 64)
    assert row["p_value"] == pytest.approx(mcnemar([[30, 2], [12, 20]], exact=True).pvalue)
    assert row["significant"]


def test_perplexity_runs_use_a_paired_bootstrap_and_models_resolve_to_their_newest_run(zoo, store, tmp_path):
    config = dataclasses.replace(BASE, model_id="llama-2-7b", suite="perplexity", weights_source="shadow")
    docs = [(f"document {i}", t) for i, t in enumerate([120, 300, 80, 500, 210])]
    store_run(store, config, [(ref, {"logprob": -2.0 * t, "tokens": t, "words": t // 2, "bytes": 4 * t}) for ref, t in docs])
    store_run(store, dataclasses.replace(config, model_id="llama-3.1-8b"),
              [(ref, {"logprob": -1.8 * t, "tokens": t, "words": t // 2, "bytes": 4 * t}) for ref, t in docs])
    result = compare(store, "llama-2-7b", "meta-llama/Llama-3.1-8B")
    rows = {r["metric"]: r for r in result["rows"]}
    assert rows["token_perplexity"]["a"] == pytest.approx(2.718281828 ** 2.0)
    assert rows["token_perplexity"]["difference"] == pytest.approx(2.718281828 ** 1.8 - 2.718281828 ** 2.0)
    assert rows["bits_per_byte"]["ci_high"] < 0 and rows["bits_per_byte"]["p_value"] < 0.05

    md = zoo("compare", "llama-2-7b", "llama-3.1-8b", "--format", "md", db=tmp_path / "r.db")
    assert md.returncode == 0 and "| word_perplexity |" in md.stdout
    bad = zoo("compare", "llama-2-7b", "code-llama-34b", db=tmp_path / "r.db")
    assert bad.returncode == 2 and "no completed run of code-llama-34b" in bad.stderr


def test_runs_of_different_suites_or_data_are_refused(store):
    from llama_zoo.errors import LlamaZooError

    a = store_run(store, BASE, [("HumanEval/0", {"passed": True}), ("HumanEval/1", {"passed": False})])
    b = store_run(store, dataclasses.replace(BASE, seed=1, dataset_hash="other"),
                  [("HumanEval/0", {"passed": True}), ("HumanEval/1", {"passed": True})])
    with pytest.raises(LlamaZooError, match="different data"):
        compare(store, a, b)
