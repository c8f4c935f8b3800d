"""Suites ``lm-eval:TASK``: any lm-evaluation-harness task (MMLU, ARC, HellaSwag, GSM8K, a task YAML
of your own) through llama-zoo's loop: its backends load and batch, its store keeps every document
as a sample and resumes, its reports and ``compare`` read the runs.

lm-eval does what it defines: the task's documents, few-shot contexts and prompts
(``build_all_requests``), its filters, per-document ``process_results`` and aggregations (stderr as
lm-eval computes it, 100,000 bootstrap resamples where it bootstraps). llama-zoo answers the
requests (``lm_eval_adapter``) and adds a 95% bootstrap interval over documents for metrics that
are means. Metric names are lm-eval's (``acc,none``: metric, filter); the headline is the task's
first metric under its first filter.

One name is registered, ``lm-eval:TASK``: it stands for every task (``SUITES`` resolves
``lm-eval:arc_easy`` through ``family.member``), and carries the options the CLI offers.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.local_data import local_dataset
from llama_zoo.suites.core.base import Context, Emit, Item, Option, PairedBootstrap, Plan, Ratio, Sample, SuiteInfo, eos_ids
PREFIX = "lm-eval"
BOOTSTRAP_ITERS = 100_000  # lm_eval.simple_evaluate's default
FEWSHOT_SEED = 1234  # lm_eval.simple_evaluate's default fewshot_random_seed

OPTIONS = (
    Option("num_fewshot", None, "lm-eval tasks: few-shot examples per prompt (default: the task's own, else 0).",
           type=int, minimum=0),
    Option("apply_chat_template", False, "lm-eval tasks: render prompts with the model's chat template, as lm-eval's "
           "--apply_chat_template does."),
    Option("lm_eval_include", None, "lm-eval tasks: a directory of your own task YAMLs (lm-eval's --include_path).",
           type=str),
)


def _info(name: str) -> SuiteInfo:
    return SuiteInfo(
        name=name, version="1", meant_for="generalist",
        summary="An lm-evaluation-harness task, answered by llama-zoo's backends; lm-eval's prompts, filters and metrics.",
        headline="", headline_option="headline", setup_keys=("num_fewshot", "apply_chat_template", "limit"),
        # each document's headline value: their mean is the headline of every task whose metric is a mean
        paired=PairedBootstrap(ratios=(Ratio("headline (mean over documents)", "score"),)),
        options=OPTIONS, needs_tokens=False,
        datasets="the task's own (lm-eval's dataset_path); the hub, or local files a task YAML names",
    )


class TaskFamily:
    """``lm-eval:TASK``: the options every lm-eval task takes, and each task as a suite."""

    info = _info(f"{PREFIX}:TASK")

    def member(self, task: str) -> "LmEvalSuite":
        return LmEvalSuite(task)

    def check(self, spec, options) -> None:  # ``--suite lm-eval:TASK`` typed as it is shown
        raise LlamaZooError("lm-eval:TASK stands for a task: give its name, e.g. --suite lm-eval:arc_easy")


family = TaskFamily()


# Task YAMLs llama-zoo ships: Meta's protocols where lm-eval has none (MMLU's macro average over
# subjects, ARC-Challenge scored on choice characters); always indexed, before the user's.
SHIPPED = Path(__file__).parent / "meta"


def task_manager(include: str | None, name: str):
    """lm-eval's task index: only the user's directory, or only the shipped one, where the task is
    there and stands alone (indexing lm-eval's own 14,000 task files takes seconds), else
    everything; each built once per process."""
    if include:
        if not Path(include).expanduser().is_dir():
            raise LlamaZooError(f"--lm-eval-include {include}: no such directory")
        own = _index(str(Path(include).expanduser()), False)
        if name in own.all_tasks:
            return own
    shipped = _index(None, False)
    if name in shipped.all_tasks and name not in shipped.all_groups:
        return shipped
    return _index(include, True)


@functools.lru_cache(maxsize=None)
def _index(include: str | None, defaults: bool):
    from lm_eval.tasks import TaskManager

    paths = [str(SHIPPED)] + ([include] if include else [])
    return TaskManager(include_path=paths, include_defaults=defaults)


def local_config(manager, name: str) -> dict[str, Any] | None:
    """The task's config with its ``dataset_path`` pointed at a local snapshot of that hub dataset
    under ``$LLAMA_ZOO_DATA``, where there is one (the hub otherwise); None when there is none."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = manager.task_index.get(name)
    if entry is None or not getattr(entry, "yaml_path", None):
        return None
    config = dict(load_yaml(entry.yaml_path, resolve_func=True))
    path = config.get("dataset_path")
    local = local_dataset(path) if isinstance(path, str) and not Path(path).is_absolute() else None
    if local is None:
        return None
    config["dataset_path"] = str(local)
    config["metadata"] = {**(config.get("metadata") or {}), "llama_zoo_local_copy_of": path}
    return config


@contextlib.contextmanager
def quiet_bars():
    """lm-eval's bar over documents as it builds requests, and datasets' as it reads files, would
    cut through the CLI's own (tqdm reads TQDM_DISABLE when it is imported, too early to help)."""
    import datasets
    import lm_eval.api.task as lm_eval_task

    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    bar, lm_eval_task.tqdm = lm_eval_task.tqdm, lambda iterable=None, *_, **__: iterable
    try:
        yield
    finally:
        lm_eval_task.tqdm = bar
        if shown:
            datasets.enable_progress_bars()


def leaf_tasks(name: str, include: str | None) -> list[str] | None:
    """The tasks of an lm-eval group or tag, leaves only, in the group's order (a tag's sorted);
    None for a task. Read from lm-eval's index: no data is loaded."""
    require_lm_eval()
    from lm_eval.tasks._index import Kind

    manager = task_manager(include, name)
    index = manager.task_index
    if name not in index or index[name].kind not in (Kind.GROUP, Kind.TAG):
        return None

    def leaves(entry_name: str, seen: tuple[str, ...]) -> list[str]:
        entry = index.get(entry_name)
        if entry is None or entry_name in seen:
            raise LlamaZooError(f"lm-eval group {name}: cannot resolve {entry_name!r} in lm-eval's task index")
        if entry.kind is Kind.TAG:
            members = sorted(entry.tags)
        elif entry.kind is Kind.GROUP:
            members = []
            for item in (entry.cfg or {}).get("task", []):
                member = item if isinstance(item, str) else item.get("task") if isinstance(item, dict) else None
                if not isinstance(member, str) or isinstance(item, dict) and set(item) - {"task"}:
                    raise LlamaZooError(f"lm-eval group {entry_name} defines a task inline; run its tasks by name")
                members.append(member)
        else:
            return [entry_name]
        return [leaf for member in members for leaf in leaves(member, (*seen, entry_name))]

    return list(dict.fromkeys(leaves(name, ())))


def require_lm_eval() -> None:
    import importlib.util

    if importlib.util.find_spec("lm_eval") is None:
        raise LlamaZooError("lm-eval tasks need lm-evaluation-harness: pip install 'llama-zoo[lm-eval]'")


def seed_as_lm_eval() -> None:
    """The seeds ``simple_evaluate`` sets before it loads tasks: a task that shuffles its documents
    or choices (GPQA's process_docs) builds the same ones here as there, run after run."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(1234)
    try:
        import torch

        torch.manual_seed(1234)
    except ImportError:
        pass


def load_task(name: str, include: str | None):
    """The lm-eval task object, or one line: unknown (with lm-eval's closest names), a group, or
    data (or a package) it cannot load."""
    require_lm_eval()
    from lm_eval.tasks import get_task_dict

    manager = task_manager(include, name)
    if name not in manager.all_tasks:
        close = difflib.get_close_matches(name, manager.all_tasks, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see 'lm-eval ls tasks' (or --lm-eval-include DIR)"
        raise LlamaZooError(f"unknown lm-eval task {name!r}{hint}")
    if name in manager.all_groups or name in manager.all_tags:
        raise LlamaZooError(f"lm-eval:{name} is a group of tasks: 'llama-zoo eval' runs it as its tasks, one run each")
    seed_as_lm_eval()
    try:
        with quiet_bars():
            tasks = get_task_dict([local_config(manager, name) or name], manager)
    except (ConnectionError, OSError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise LlamaZooError(f"lm-eval task {name} cannot load its data ({type(exc).__name__}: {first}); the hub is "
                            "unreachable or the files are missing: download the dataset under $LLAMA_ZOO_DATA/<its repo id> "
                                "or give a task YAML with local data_files") from None
    except ImportError as exc:  # a task's own dependency (ifeval's langdetect, say)
        raise LlamaZooError(f"lm-eval task {name} needs a package that is not installed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a malformed YAML, a template error: the task's, said in one line
        first = " ".join(str(exc).split())[:200]
        raise LlamaZooError(f"lm-eval task {name} cannot be built: {type(exc).__name__}: {first}") from None
    task = tasks.get("tasks", tasks)[name] if isinstance(tasks.get("tasks", tasks), dict) else tasks[name]
    return task


def doc_hash(doc: Any) -> str:
    """lm-eval's per-sample ``doc_hash``: the same document hashes the same in either tool."""
    from lm_eval.utils import handle_non_serializable, hash_string

    return hash_string(json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False))


def dataset_hash(doc_hashes: Sequence[str]) -> str:
    return hashlib.sha256("".join(doc_hashes).encode()).hexdigest()


def headline(task) -> tuple[str, bool]:
    """The task's first metric under its first filter, and whether lower is better."""
    metric = next(iter(task._metric_fn_list))
    return f"{metric},{task._filters[0].name}", not task.higher_is_better().get(metric, True)


@dataclass(frozen=True)
class Planned:
    """What ``score`` and ``metrics`` need from ``plan`` (the plan's ``state``): the task as built
    (its instances, filters and aggregations) and the adapter that turns answers into lm-eval's."""

    task: Any
    lm: Any


class LmEvalSuite:
    def __init__(self, task: str):
        self.task_name = task
        self.info = _info(f"{PREFIX}:{task}")
        # a cache of loaded tasks (loading reads lm-eval's index); each with its YAML's num_fewshot,
        # read before any option changes it
        self._loaded: dict[str | None, tuple[Any, int | None]] = {}

    def expands(self, options: dict[str, Any]) -> list[str] | None:
        """An lm-eval group or tag as the suites of its tasks (``lm-eval:mmlu`` is 57 runs)."""
        leaves = leaf_tasks(self.task_name, options.get("lm_eval_include"))
        return None if leaves is None else [f"{PREFIX}:{leaf}" for leaf in leaves]

    def check(self, spec, options) -> None:
        if not spec.text_arch:
            raise LlamaZooError(f"{spec.id} has no language model to answer lm-eval:{self.task_name}")

    def task(self, include: str | None) -> tuple[Any, int | None]:
        """The task, and the num_fewshot its own config sets."""
        if include not in self._loaded:
            task = load_task(self.task_name, include)
            self._loaded[include] = task, task.get_config("num_fewshot")
        return self._loaded[include]

    def plan(self, ctx: Context) -> Plan:
        from lm_eval import __version__ as lm_eval_version

        from llama_zoo.suites.lm_eval_tasks.adapter import ZooLM

        options = ctx.options
        task, own = self.task(options["lm_eval_include"])
        greedy_metrics = {"exact_match"} & set(task._metric_fn_list) if task.OUTPUT_TYPE == "multiple_choice" else set()
        if task.OUTPUT_TYPE == "loglikelihood" or greedy_metrics:
            raise LlamaZooError(f"lm-eval:{self.task_name} scores whether a continuation is the greedy one "
                                "(is_greedy), which llama-zoo's backends do not report")
        if options["num_fewshot"] is not None and own == 0:
            raise LlamaZooError(f"lm-eval:{self.task_name} fixes num_fewshot at 0 in its config; drop --num-fewshot")
        task.set_config(key="num_fewshot", value=options["num_fewshot"] if options["num_fewshot"] is not None
                        else own if own is not None else 0)
        task.set_fewshot_seed(seed=FEWSHOT_SEED)
        if ctx.tokenizer is None and task.OUTPUT_TYPE != "generate_until":
            raise LlamaZooError(f"lm-eval:{self.task_name} needs log-likelihoods, which a text-only backend does not "
                                "give; use --backend hf, llama.cpp or vllm")
        lm = ZooLM(ctx.tokenizer, ctx.context, stop_token_ids=eos_ids(ctx.spec) if ctx.spec else ())
        chat = bool(options["apply_chat_template"])
        if chat and ctx.tokenizer is None:
            raise LlamaZooError("--apply-chat-template renders prompts with the model's tokenizer; a text backend "
                                "has none here (the server applies its own template to chat requests)")
        if chat and not getattr(ctx.tokenizer, "chat_template", None):
            raise LlamaZooError(f"--apply-chat-template: {ctx.spec.id}'s tokenizer has no chat template")
        seed_as_lm_eval()
        with quiet_bars():  # few-shot examples as chat turns with a template: simple_evaluate's default
            task.build_all_requests(limit=ctx.limit, rank=0, world_size=1, apply_chat_template=chat,
                                    fewshot_as_multiturn=chat, chat_template=lm.apply_chat_template if chat else None,
                                    tokenizer_name=lm.tokenizer_name if chat else "")
        by_doc: dict[int, list] = {}
        for inst in task.instances:
            by_doc.setdefault(inst.doc_id, []).append(inst)
        items, hashes = [], []
        for doc_id, doc in task.doc_iterator(rank=0, limit=ctx.limit, world_size=1):
            instances = sorted(by_doc[doc_id], key=lambda i: i.idx)
            requests, counts = [], []
            for inst in instances:
                for k in range(inst.repeats):  # a sampled repeat draws under its own seed: resumable, reproducible
                    requests += lm.requests_for(inst.request_type, inst.args,
                                                     seed=_seed(ctx.seed, doc_id, inst.idx, k))
                counts.append(len(requests) - sum(counts))
            shared = lm.shared_context(requests) if all(i.repeats == 1 for i in instances) else None
            if shared is not None:  # one forward pass for the choices, as lm-eval's logits cache does
                requests, counts = [shared], None
            hashes.append(doc_hash(doc))
            items.append(Item(doc_id, tuple(requests), (doc, instances, counts)))
        metric, lower = headline(task)
        config = _stable({k: v for k, v in task.dump_config().items() if k != "metadata"})
        prompts = hashlib.sha256(json.dumps([_plain(i.args) for i in task.instances], default=str,
                                            sort_keys=True).encode()).hexdigest()
        plan_options = {
            "task": self.task_name, "task_version": task.VERSION if task.VERSION is not None else
            (task.config.metadata or {}).get("version"), "lm_eval": lm_eval_version,
            "task_config_hash": hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest(),
            # every prompt and continuation as built: few-shot draws, templates and the chat template included
            "prompts_hash": prompts,
            "num_fewshot": task.get_config("num_fewshot"), "apply_chat_template": chat,
            "headline": {"metric": metric, "lower_is_better": lower},
        }
        hub_path = (task.config.metadata or {}).get("llama_zoo_local_copy_of") or task.config.dataset_path
        source = hub_path + (f"/{task.config.dataset_name}" if task.config.dataset_name else "")
        return Plan(source, None, dataset_hash(hashes), items, plan_options, state=Planned(task, lm))

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        task, lm = ctx.state.task, ctx.state.lm
        metric_key = headline(task)[0]
        for item, replies in zip(items, answers):
            doc, instances, counts = item.data
            if counts is None:  # the choices shared one context: each candidate's log-probability is its answer
                replies, counts = [[value] for value in replies[0]], [1] * len(instances)
            at = 0
            for inst, count in zip(instances, counts):
                per_repeat = count // inst.repeats
                inst.resps = [lm.response(inst.request_type, inst.args, replies[at + k * per_repeat:at + (k + 1) * per_repeat])
                              for k in range(inst.repeats)]
                inst.filtered_resps = {}
                at += count
            for ensemble in task._filters:
                ensemble.apply(instances)
            values: dict[str, Any] = {}
            for key in instances[0].filtered_resps:
                for name, value in task.process_results(doc, [i.filtered_resps[key] for i in instances]).items():
                    values[f"{name},{key}"] = _plain(value)
            target = task.doc_to_target(doc)
            emit(Sample(
                item.index, input=instances[0].args[0], input_ref=f"doc {item.index}", target=str(target),
                output=json.dumps(_plain([i.resps for i in instances]), ensure_ascii=False),
                scores={"metrics": values, "score": number(values.get(metric_key)),
                        "doc_hash": doc_hash(doc), "filtered": _plain([i.filtered_resps for i in instances])},
            ))

    def metrics(self, samples, seed: int, runner=None, state: Planned | None = None) -> list[dict[str, Any]]:
        return aggregate(state.task, [s["scores"]["metrics"] for s in samples], seed)


def aggregate(task, per_doc: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """lm-eval's aggregation of each metric (and its stderr, as lm-eval computes it), the headline
    first; a metric that is a mean of numbers also gets a 95% bootstrap interval over documents."""
    from lm_eval.api.metrics import mean, stderr_for_metric

    from llama_zoo.suites.core.stats import bootstrap_ratio_ci

    raw: dict[str, list[Any]] = {}
    for values in per_doc:
        for key, value in values.items():
            raw.setdefault(key, []).append(value)
    first = headline(task)[0]
    out = []
    for key in sorted(raw, key=lambda k: k != first):
        name, _, _filter = key.partition(",")
        items = raw[key]
        agg = task.aggregation().get(name, mean)
        stderr_fn = stderr_for_metric(metric=agg, bootstrap_iters=min(BOOTSTRAP_ITERS, 100)
                                      if name in ("bleu", "chrf", "chrf++", "ter") else BOOTSTRAP_ITERS)
        # lm-eval's bootstrap (f1, bleu, ...) prints to stdout and forks a pool: keep our output ours
        with contextlib.redirect_stdout(sys.stderr), _env("DISABLE_MULTIPROC", "1"):
            stderr = stderr_fn(items) if stderr_fn and len(items) > 1 else None
        ci = None
        if agg is mean and all(isinstance(v, (int, float)) for v in items):
            ci = bootstrap_ratio_ci(items, np.ones(len(items)), lambda x: x, seed=seed)
        out.append({"name": key, "value": float(agg(items)), "stderr": None if stderr is None else float(stderr),
                    "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": len(items)})
    return out


@contextlib.contextmanager
def _env(name: str, value: str):
    import os

    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def _seed(seed: int, doc_id: int, idx: int, repeat: int) -> int:
    return int(hashlib.sha256(f"{seed}/{doc_id}/{idx}/{repeat}".encode()).hexdigest()[:8], 16)


def _stable(value: Any) -> Any:
    """A task config as the same text in every process and on every machine: functions by their
    module and name (not their address), local data files left to the dataset hash."""
    if isinstance(value, dict):
        return {str(k): _stable(v) for k, v in value.items() if k != "data_files"}
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return value


def _plain(value: Any) -> Any:
    """JSON-storable: tuples and arrays as lists, numpy numbers as Python numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def number(value: Any) -> float | None:
    """A per-document or aggregate lm-eval value as a float: numbers, numpy numbers, and numbers
    written as text (lm-eval's output files); None for anything else ("N/A", a tuple for corpus metrics)."""
    if isinstance(value, (int, float, bool, np.number)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
