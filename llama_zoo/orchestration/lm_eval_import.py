"""``llama-zoo import lm-eval PATH``: lm-evaluation-harness output (``results_*.json`` and the
``samples_<task>_*.jsonl`` written beside it with ``--log_samples``) stored as runs of the suites
``lm-eval:TASK``, so a team's past results sit in the same leaderboards and comparisons.

A run per task: its metrics as lm-eval reported them (value and stderr; a 95% bootstrap interval
over documents added where the per-document values average to the reported value), its documents
as samples keyed as llama-zoo's own lm-eval runs key them (``doc <id>``, the same ``doc_hash``s,
so ``compare`` pairs the two), and its provenance in the run's ``runner`` record (model args, git
hash, versions, date, the file). Importing the same output again finds the runs already stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.lm_eval_tasks.suite import PREFIX, dataset_hash, number

NOT_METRICS = ("alias", "name", "sample_len", "sample_count")


@dataclass
class Imported:
    task: str
    suite: str
    run_id: str
    model_id: str
    cached: bool
    samples: int
    headline: str | None
    value: float | None


def find_results(path: Path) -> list[Path]:
    if path.is_file():
        if path.name.startswith("results") and path.suffix == ".json":
            return [path]
        raise LlamaZooError(f"{path} is not lm-eval output: expected a results_*.json file or a directory of them")
    if not path.is_dir():
        raise LlamaZooError(f"{path}: no such file or directory")
    found = sorted(path.rglob("results*.json"))
    if not found:
        raise LlamaZooError(f"{path} is not lm-eval output: no results_*.json in it (lm-eval writes them with "
                            "--output_path, and the samples with --log_samples)")
    return found


def _read_results(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LlamaZooError(f"{path} is not lm-eval output: {type(exc).__name__}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or "configs" not in data:
        raise LlamaZooError(f"{path} is not lm-eval output: no 'results' and 'configs' in it")
    return data


def _samples(results_file: Path, task: str) -> dict[int, dict[str, Any]]:
    """The task's logged documents, one per doc id, every filter's metric values merged."""
    stamp = results_file.stem.removeprefix("results").lstrip("_")
    candidates = sorted(results_file.parent.glob(f"samples_{task}_{stamp}.jsonl"))  # this run's, no other's
    if not candidates:
        return {}
    docs: dict[int, dict[str, Any]] = {}
    for n, line in enumerate(candidates[-1].read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise LlamaZooError(f"{candidates[-1]}:{n}: not a JSON line") from None
        if not isinstance(row, dict) or "doc_id" not in row or "doc_hash" not in row:
            raise LlamaZooError(f"{candidates[-1]}:{n}: not an lm-eval sample (no doc_id and doc_hash)")
        doc = docs.setdefault(int(row["doc_id"]), {"row": row, "metrics": {}, "filtered": {}})
        for metric in row.get("metrics", []):
            doc["metrics"][f"{metric},{row.get('filter', 'none')}"] = row.get(metric)
        doc["filtered"][row.get("filter", "none")] = row.get("filtered_resps")
    return docs


def _model_args(config: dict[str, Any]) -> dict[str, Any]:
    args = config.get("model_args") or {}
    if isinstance(args, str):
        args = dict(part.split("=", 1) for part in args.split(",") if "=" in part)
    return args


def model_of(config: dict[str, Any], given: str | None) -> str:
    """The model a results file measured: ``--model`` where given; else its ``pretrained`` path (a
    checkpoint directory: the id llama-zoo gives it) or hub id (the registry's id where it holds one)."""
    from llama_zoo.registry.checkpoint import find_model

    args = _model_args(config)
    if not given and ({"peft", "delta"} & set(args) or str(args.get("pretrained", "")).startswith(".")):
        raise LlamaZooError("the lm-eval output's model is an adapter or a relative path "
                            f"({', '.join(f'{k}={v}' for k, v in args.items() if k in ('pretrained', 'peft', 'delta'))}): "
                            "give --model")
    ref = given or args.get("pretrained") or args.get("model")
    if not ref:
        raise LlamaZooError("the lm-eval output names no model (no pretrained= in its model_args): give --model")
    try:
        return find_model(str(ref), None)[0].id
    except LlamaZooError:
        if given:
            raise
        return str(ref)  # a hub model the registry does not hold, under lm-eval's name for it


def _headline(task_results: dict[str, Any], higher: dict[str, bool]) -> tuple[str | None, bool]:
    for key in task_results:
        if "," in key and "_stderr," not in key and key.split(",")[0] not in NOT_METRICS:
            return key, not higher.get(key.split(",")[0], True)
    return None, False


def import_output(path: str, store, model: str | None = None, seed: int = 0) -> list[Imported]:
    from llama_zoo.results.identity import RunConfig

    imported = []
    for results_file in find_results(Path(path).expanduser()):
        data = _read_results(results_file)
        config = data.get("config") or {}
        model_id = model_of(config, model)
        for task, task_config in data["configs"].items():
            task_results = data["results"].get(task, {})
            docs = _samples(results_file, task)
            head, lower = _headline(task_results, (data.get("higher_is_better") or {}).get(task, {}))
            ordered = [docs[i] for i in sorted(docs)]
            options = {"task": task, "task_version": (data.get("versions") or {}).get(task),
                       "lm_eval": data.get("lm_eval_version"), "num_fewshot": (data.get("n-shot") or {}).get(task),
                       "apply_chat_template": bool(data.get("chat_template")), "limit": config.get("limit"),
                       "headline": {"metric": head, "lower_is_better": lower},
                       "task_hash": (data.get("task_hashes") or {}).get(task),
                       "imported_from": f"{results_file.name}"}
            run_config = RunConfig(
                model_id=model_id, spec_hash="", suite=f"{PREFIX}:{task}", suite_version="1",
                backend="lm-eval", weights_source="imported",
                weights_ref=str(_model_args(config).get("pretrained") or model_id), weights_revision=config.get("model_revision"),
                dtype=str(config.get("model_dtype") or _model_args(config).get("dtype") or "") or None,
                dataset_name=task_config.get("dataset_path"),
                dataset_hash=dataset_hash([d["row"]["doc_hash"] for d in ordered]) if ordered else None,
                options=options, seed=config.get("random_seed"))
            handle = store.begin(run_config, n_samples=len(ordered))
            if not handle.cached:
                with handle:
                    for doc in ordered:
                        row = doc["row"]
                        handle.add(int(row["doc_id"]), input=_prompt(row), input_ref=f"doc {row['doc_id']}",
                                   target=None if row.get("target") is None else str(row["target"]),
                                   output=json.dumps(row.get("resps"), ensure_ascii=False),
                                   scores={"metrics": doc["metrics"], "score": number(doc["metrics"].get(head)),
                                           "doc_hash": row.get("doc_hash"), "filtered": doc["filtered"]})
                    handle.flush()
                    metrics = _metrics(task_results, ordered, seed)
                    metrics.sort(key=lambda m: m.name != head)
                    handle.complete(metrics, runner={
                        "imported_from": str(results_file), "model": config.get("model"),
                        "model_args": _model_args(config), "git_hash": data.get("git_hash"),
                        "lm_eval_version": data.get("lm_eval_version"),
                        "transformers_version": data.get("transformers_version"), "date": data.get("date"),
                        "model_sha": config.get("model_sha"), "batch_size": config.get("batch_size"), "model_source": data.get("model_source"),
                        "device": config.get("device")})
            value = task_results.get(head) if head else None
            imported.append(Imported(task, f"{PREFIX}:{task}", handle.run_id, model_id, handle.cached, len(ordered), head, number(value)))
    return imported


def _metrics(task_results: dict[str, Any], docs: list[dict[str, Any]], seed: int) -> list:
    """lm-eval's reported values and stderr, and our 95% interval where the per-document values
    average to the reported value (a mean)."""
    from llama_zoo.suites.core.stats import bootstrap_ratio_ci
    from llama_zoo.results.store import MetricValue

    out = []
    for key, value in task_results.items():
        name, _, filter_key = key.partition(",")
        if not filter_key or name.endswith("_stderr") or name in NOT_METRICS or number(value) is None:
            continue
        per_doc = [number(d["metrics"].get(key)) for d in docs]
        ci = None
        if per_doc and None not in per_doc and abs(sum(per_doc) / len(per_doc) - number(value)) < 1e-9:
            ci = bootstrap_ratio_ci(per_doc, [1.0] * len(per_doc), lambda x: x, seed=seed)
        out.append(MetricValue(key, number(value), number(task_results.get(f"{name}_stderr,{filter_key}")),
                               ci[0] if ci else None, ci[1] if ci else None,
                               task_results.get("sample_len") or len(docs) or None))
    return out


def _prompt(row: dict[str, Any]) -> str | None:
    args = row.get("arguments")
    if isinstance(args, dict) and args:  # as the harness writes it: {"gen_args_0": {"arg_0": context, ...}}
        first = next(iter(args.values()))
        return first.get("arg_0") if isinstance(first, dict) else None
    if isinstance(args, list) and args and isinstance(args[0], (list, tuple)):
        return args[0][0]
    return None
