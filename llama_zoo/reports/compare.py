"""Paired comparison of two runs on the samples they share: is the difference real?

Pass/fail outcomes (code suites) get McNemar's exact test; perplexity metrics (ratios of sums over
documents or chunks) get a paired bootstrap over the shared units. Differences are B minus A.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sqlalchemy import select

from llama_zoo.errors import LlamaZooError
from llama_zoo.evals.stats import mcnemar, paired_bootstrap
from llama_zoo.results.orm import Run

# transforms of mean NLL per unit counted; numpy functions, so they serve scalars and arrays alike
PERPLEXITY_METRICS = (
    ("token_perplexity", "tokens", np.exp),
    ("word_perplexity", "words", np.exp),
    ("byte_perplexity", "bytes", np.exp),
    ("bits_per_byte", "bytes", lambda x: x / np.log(2)),
)


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
    query = select(Run.id, Run.suite).where(Run.model_id == model_id, Run.status == "completed")
    if suite:
        query = query.where(Run.suite == suite)
    with store.engine.connect() as conn:
        runs = conn.execute(query.order_by(Run.created_at.desc())).all()
    if not runs:
        raise LlamaZooError(f"no completed run of {model_id}" + (f" in suite {suite}" if suite else ""))
    suites = {r.suite for r in runs}
    if len(suites) > 1:
        raise LlamaZooError(f"{model_id} has runs in several suites ({', '.join(sorted(suites))}): give --suite")
    return store.get(runs[0].id)


def _keyed(store, run_id: str) -> dict[str, dict[str, Any]]:
    """Samples keyed by what they are about: the input reference (with its repeat number, for
    several samples per task), so two runs pair up even if stored in another order."""
    seen: dict[str, int] = {}
    keyed = {}
    for sample in store.iter_samples(run_id):
        ref = sample["input_ref"] or str(sample["idx"])
        seen[ref] = seen.get(ref, -1) + 1
        keyed[f"{ref}#{seen[ref]}"] = sample["scores"] or {}
    return keyed


def compare(store, a_ref: str, b_ref: str, suite: str | None = None, seed: int = 0) -> dict[str, Any]:
    a, b = resolve(store, a_ref, suite), resolve(store, b_ref, suite)
    if a["suite"] != b["suite"]:
        raise LlamaZooError(f"runs {a['id']} ({a['suite']}) and {b['id']} ({b['suite']}) are from different suites")
    if a["dataset_hash"] != b["dataset_hash"]:
        raise LlamaZooError(f"runs {a['id']} and {b['id']} scored different data ({a['dataset_name']} vs {b['dataset_name']})")
    sa, sb = _keyed(store, a["id"]), _keyed(store, b["id"])
    shared = [k for k in sa if k in sb]
    if len(shared) < 2:
        raise LlamaZooError(f"runs {a['id']} and {b['id']} share {len(shared)} samples; a paired comparison needs two or more")
    rows = []
    if "passed" in sa[shared[0]]:
        d = mcnemar([bool(sa[k]["passed"]) for k in shared], [bool(sb[k]["passed"]) for k in shared])
        pa = sum(bool(sa[k]["passed"]) for k in shared) / len(shared)
        rows.append(_row("pass rate", pa, pa + d.estimate, d))
    elif "logprob" in sa[shared[0]]:
        for name, count, transform in PERPLEXITY_METRICS:
            args = ([-sa[k]["logprob"] for k in shared], [sa[k][count] for k in shared],
                    [-sb[k]["logprob"] for k in shared], [sb[k][count] for k in shared])
            d = paired_bootstrap(*args, transform=transform, seed=seed)
            value_a = float(transform(sum(args[0]) / sum(args[1])))
            rows.append(_row(name, value_a, value_a + d.estimate, d))
    else:
        raise LlamaZooError(f"suite {a['suite']} has no paired comparison yet")
    return {"a": _about(a), "b": _about(b), "shared_samples": len(shared), "rows": rows}


def _row(metric: str, a: float, b: float, d) -> dict[str, Any]:
    return {"metric": metric, "a": a, "b": b, "difference": d.estimate, "ci_low": d.ci_low, "ci_high": d.ci_high,
            "p_value": d.p_value, "n": d.n, "test": d.test, "significant": d.p_value < 0.05}


def _about(run: dict[str, Any]) -> dict[str, Any]:
    return {k: run[k] for k in ("id", "model_id", "suite", "weights_source", "dataset_name")}
