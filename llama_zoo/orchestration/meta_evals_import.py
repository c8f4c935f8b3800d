"""``llama-zoo import meta-evals DATASET --benchmark B``: Meta's own per-sample results (the rows of
``meta-llama/<Model>-evals``) stored as a completed run of the model they are of, in the suite
``meta-evals:B``, so Meta's numbers sit in leaderboards beside ours and ``compare`` pairs our run
with Meta's row by row.

The run's samples are keyed as the suite keys its own (``input_question_hash``, else ``row N``),
``passed`` is Meta's ``is_correct`` and the output Meta's ``output_prediction_text[0]``; its dataset
hash is the suite's, and its metrics the suite's definitions computed from ``is_correct``. Its weights
source is ``published`` (and its backend ``meta``), so its identity is never one of our runs'.
Importing the same rows again finds the run already stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.meta_evals.data import EvalsData, benchmark, load
from llama_zoo.suites.meta_evals.suite import PREFIX, SUITE_VERSION, accuracy_metrics, headline_of, row_scores

BACKEND = "meta"
WEIGHTS_SOURCE = "published"


@dataclass
class Imported:
    suite: str
    run_id: str
    model_id: str
    cached: bool
    samples: int
    headline: str
    value: float | None
    dataset: str


def model_of(repo: str, given: str | None):
    """The registry model an evals dataset is of: ``--model``, else its hub id without ``-evals``."""
    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.registry.checkpoint import find_model

    if given:
        return find_model(given, None)[0]
    hub_id = repo.rstrip("/").removesuffix("-evals")
    try:
        return load_catalog().get(hub_id)
    except LlamaZooError:
        raise LlamaZooError(f"{repo} is not the evals dataset of a registry model ({hub_id} is unknown): give --model") from None


def _repo(dataset: str) -> tuple[str, str | None]:
    """The evals dataset's hub id, and a local snapshot directory where DATASET names one."""
    path = Path(dataset).expanduser()
    if path.is_dir():
        return f"{path.parent.name}/{path.name}", str(path)
    return dataset, None


def import_evals(dataset: str, bench_name: str, store, model: str | None = None, dataset_file: str | None = None,
                 seed: int = 0) -> Imported:
    from llama_zoo.registry.catalog import spec_hash
    from llama_zoo.results.identity import RunConfig
    from llama_zoo.results.store import MetricValue

    bench = benchmark(bench_name)
    repo, snapshot = _repo(dataset)
    spec = model_of(repo, model)
    data = load(repo, bench.name, dataset_file or snapshot, flag="--dataset-file")
    method = bench.method(data.pretrain)
    options: dict[str, Any] = {"benchmark": bench.name, "evals_dataset": repo, "kind": method.kind,
                               "average": bench.average, "limit": None, "imported_from": data.name}
    if method.kind == "generate":  # what Meta generated with, as its rows record it
        options["max_new_tokens"] = data.rows[0].max_gen_len or method.max_new_tokens
    config = RunConfig(
        model_id=spec.id, spec_hash=spec_hash(spec), suite=f"{PREFIX}:{bench.name}", suite_version=SUITE_VERSION,
        backend=BACKEND, weights_source=WEIGHTS_SOURCE, weights_ref=spec.hf_repo or spec.id,
        dataset_name=data.name, dataset_revision=data.revision, dataset_hash=data.content_hash, options=options)
    handle = store.begin(config, n_samples=len(data.rows))
    if not handle.cached:
        with handle:
            _store(handle, data)
            metrics = accuracy_metrics([row_scores(r, r.meta_correct, r.meta_parsed) for r in data.rows], bench, seed)
            handle.complete([MetricValue(**m) for m in metrics], runner={
                "backend": BACKEND, "weights_source": WEIGHTS_SOURCE, "evals_dataset": repo,
                "imported_from": data.name, "revision": data.revision})
    head = headline_of(bench)
    value = next((m["value"] for m in store.get(handle.run_id)["metrics"] if m["name"] == head), None)
    return Imported(f"{PREFIX}:{bench.name}", handle.run_id, spec.id, handle.cached, len(data.rows), head, value, data.name)


def _store(handle, data: EvalsData) -> None:
    for row in data.rows:
        handle.add(row.index, input_ref=row.ref, input=row.prompt, target=row.gold, output=row.meta_output,
                   scores=row_scores(row, row.meta_correct, row.meta_parsed))
    handle.flush()
