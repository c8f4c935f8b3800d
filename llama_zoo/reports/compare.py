"""Paired comparison of two runs on the samples they share: is the difference real?

Each suite declares its paired test: McNemar's exact test for pass/fail outcomes, a paired
bootstrap over shared units for ratio metrics (sums of negative log-probabilities over sums of
tokens, words or bytes, say). Differences are B minus A.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites import suite_info
from llama_zoo.suites.core.base import McNemar, PairedBootstrap, Ratio
from llama_zoo.suites.core.classification import STATISTICS
from llama_zoo.suites.core.stats import mcnemar, paired_bootstrap, paired_bootstrap_statistic
from llama_zoo.formatting import MIN_PAIRED_SAMPLES

# numpy functions, so they serve scalars and arrays alike
TRANSFORMS = {"identity": lambda x: x, "exp": np.exp, "bits": lambda x: x / np.log(2)}


def resolve(store, ref: str, suite: str | None = None) -> dict[str, Any]:
    """A run by id (or unique prefix), or the newest completed run of a model (in ``suite``)."""
    from llama_zoo.registry.catalog import load_catalog

    try:
        return store.get(ref)
    except LlamaZooError:
        pass
    try:
        model_id = load_catalog().get(ref).id
    except LlamaZooError:
        raise LlamaZooError(f"{ref!r} is neither a stored run nor a registry model") from None
    runs = store.list_runs(model=model_id, suite=suite, status="completed")
    if not runs:
        raise LlamaZooError(f"no completed run of {model_id}" + (f" in suite {suite}" if suite else ""))
    suites = {r["suite"] for r in runs}
    if len(suites) > 1:
        raise LlamaZooError(f"{model_id} has runs in several suites ({', '.join(sorted(suites))}): give --suite")
    return store.get(runs[0]["id"])


def keyed_samples(store, run_id: str, whole: bool = True) -> dict[str, Any]:
    """Samples keyed by what they are about: the input reference (with its repeat number, for
    several samples per task), so two runs pair up even if stored in another order. ``whole``:
    each sample's row; else its scores only (all a paired test reads)."""
    seen: dict[str, int] = {}
    keyed = {}
    for sample in store.iter_samples(run_id):
        ref = sample["input_ref"] or str(sample["idx"])
        seen[ref] = seen.get(ref, -1) + 1
        keyed[f"{ref}#{seen[ref]}"] = sample if whole else sample["scores"] or {}
    return keyed


def compare(store, a_ref: str, b_ref: str, suite: str | None = None, seed: int = 0) -> dict[str, Any]:
    a, b = resolve(store, a_ref, suite), resolve(store, b_ref, suite)
    check_pair(a, b)
    return paired(a, b, keyed_samples(store, a["id"], whole=False), keyed_samples(store, b["id"], whole=False), seed)


def check_pair(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Refused before any sample is read: runs of different suites, data or headlines, or a suite
    that declares no paired test."""
    if a["suite"] != b["suite"]:
        raise LlamaZooError(f"runs {a['id']} ({a['suite']}) and {b['id']} ({b['suite']}) are from different suites")
    if a["dataset_hash"] != b["dataset_hash"]:
        raise LlamaZooError(f"runs {a['id']} and {b['id']} scored different data ({a['dataset_name']} vs {b['dataset_name']})")
    info = suite_info(a["suite"])
    if info is None or not info.paired_tests:
        raise LlamaZooError(f"suite {a['suite']} declares no paired test" +
                            ("" if info else " (its plug-in is not installed here)"))
    if info.headline_option:  # a family's runs: the same headline on both sides, or no paired test
        heads = [(r.get("options") or {}).get(info.headline_option) for r in (a, b)]
        if heads[0] != heads[1]:
            raise LlamaZooError(f"runs {a['id']} and {b['id']} rank by different metrics ({heads[0]} vs {heads[1]})")


def paired(a: dict[str, Any], b: dict[str, Any], sa: dict[str, dict[str, Any]], sb: dict[str, dict[str, Any]],
           seed: int = 0) -> dict[str, Any]:
    """The suite's paired tests over the samples two checked runs share (``sa``, ``sb``: scores by key)."""
    shared = [k for k in sa if k in sb]
    if len(shared) < 2:
        raise LlamaZooError(f"runs {a['id']} and {b['id']} share {len(shared)} samples; a paired comparison needs two or more")
    rows = []
    for test in suite_info(a["suite"]).paired_tests:
        rows += _paired_rows(test, [sa[k] for k in shared], [sb[k] for k in shared], seed)
    return {"a": _about(a), "b": _about(b), "shared_samples": len(shared), "rows": rows}


def _paired_rows(test, a: list[dict[str, Any]], b: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    rows = []
    if isinstance(test, McNemar):
        d = mcnemar([bool(s[test.key]) for s in a], [bool(s[test.key]) for s in b])
        pa = sum(bool(s[test.key]) for s in a) / len(a)
        rows.append(_row(test.label, pa, pa + d.estimate, d))
    elif isinstance(test, PairedBootstrap):
        for ratio in test.ratios:
            transform = TRANSFORMS[ratio.transform]
            num_a, den_a = _sums(ratio, a)
            num_b, den_b = _sums(ratio, b)
            d = paired_bootstrap(num_a, den_a, num_b, den_b, transform=transform, seed=seed)
            value_a = float(transform(sum(num_a) / sum(den_a)))
            rows.append(_row(ratio.metric, value_a, value_a + d.estimate, d))
        for stat in test.statistics:
            statistic = STATISTICS[stat.metric]
            columns = [np.array([float(s[key]) for s in side]) for side in (a, b) for key in (stat.score, stat.label)]
            if np.isnan(statistic(columns[0], columns[1])) or np.isnan(statistic(columns[2], columns[3])):
                continue  # undefined on these samples (one class only): no row rather than a crash
            d = paired_bootstrap_statistic(statistic, *columns, seed=seed)
            value_a = float(statistic(columns[0], columns[1]))
            rows.append(_row(stat.metric, value_a, value_a + d.estimate, d))
    return rows


def _sums(ratio: Ratio, scores: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    sign, key = (-1.0, ratio.numerator[1:]) if ratio.numerator.startswith("-") else (1.0, ratio.numerator)
    if any(s.get(key) is None for s in scores):
        raise LlamaZooError(f"some samples have no number for {ratio.metric} (a corpus-level metric): no paired test")
    numerators = [sign * float(s[key]) for s in scores]
    denominators = [float(s[ratio.denominator]) if ratio.denominator else 1.0 for s in scores]
    return numerators, denominators


def _row(metric: str, a: float, b: float, d) -> dict[str, Any]:
    return {"metric": metric, "a": a, "b": b, "difference": d.estimate, "ci_low": d.ci_low, "ci_high": d.ci_high,
            "p_value": d.p_value, "n": d.n, "test": d.test,
            "significant": d.n >= MIN_PAIRED_SAMPLES and d.p_value < 0.05}


def _about(run: dict[str, Any]) -> dict[str, Any]:
    return {k: run[k] for k in ("id", "model_id", "suite", "weights_source", "dataset_name")}
