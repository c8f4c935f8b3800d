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
from llama_zoo.suites.lm_eval_tasks import ruler
from llama_zoo.suites.core.local_data import download_hint, local_dataset
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
    Option("lm_eval_metadata", None, "lm-eval tasks: a JSON object handed to the task as lm-eval's --metadata "
           "(RULER: '{\"max_seq_lengths\": [4096, 8192]}'); a task that generates its own data also gets the "
           "evaluated model's tokenizer as \"tokenizer\" unless this names one.", type=str, metavar="JSON"),
)


def _info(name: str, check_data=None) -> SuiteInfo:
    return SuiteInfo(
        name=name, version="1", meant_for="generalist",
        summary="An lm-evaluation-harness task, answered by llama-zoo's backends; lm-eval's prompts, filters and metrics.",
        headline="", headline_option="headline", setup_keys=("num_fewshot", "apply_chat_template", "limit"),
        # each document's headline value: their mean is the headline of every task whose metric is a mean
        paired=PairedBootstrap(ratios=(Ratio("headline (mean over documents)", "score"),)),
        options=OPTIONS, needs_tokens=False,
        datasets="the task's own (lm-eval's dataset_path); the hub, or local files a task YAML names",
        check_data=check_data,
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

    from llama_zoo.suites.lm_eval_tasks.index_cache import cached_builds

    paths = [str(SHIPPED)] + ([include] if include else [])
    with cached_builds():  # parsed once per machine, not once per process (index_cache.py)
        return TaskManager(include_path=paths, include_defaults=defaults)


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    """``--lm-eval-metadata``: a JSON object, or one line saying why not."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LlamaZooError(f"--lm-eval-metadata is not JSON ({exc.msg} at character {exc.pos}): give an object, "
                            "e.g. '{\"max_seq_lengths\": [4096]}'") from None
    if not isinstance(value, dict):
        raise LlamaZooError(f"--lm-eval-metadata must be a JSON object, not {type(value).__name__}: "
                            "e.g. '{\"max_seq_lengths\": [4096]}'")
    return value


def task_config(manager, name: str, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """The task's config as lm-eval would build it, where llama-zoo changes it: ``dataset_path``
    pointed at a local snapshot of that hub dataset under ``$LLAMA_ZOO_DATA`` (the hub otherwise),
    and ``metadata`` merged over the YAML's own as lm-eval's TaskManager merges its ``metadata``
    (given here per task, so the cached index serves every run). None when neither applies: the
    task is built by name."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = manager.task_index.get(name)
    if entry is None or not getattr(entry, "yaml_path", None):
        return None
    config = dict(load_yaml(entry.yaml_path, resolve_func=True))
    path = config.get("dataset_path")
    local = local_dataset(path) if isinstance(path, str) and path and not Path(path).is_absolute() else None
    if local is None and not metadata:
        return None
    own = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    config["metadata"] = {**own, **(metadata or {})}
    if local is not None:
        config["dataset_path"] = str(local)
        config["metadata"]["llama_zoo_local_copy_of"] = path
    return config


def check_task_data(name: str, _dataset: str | None, _revision: str | None, options) -> None:
    """Before the model and tokenizer load: offline, a task whose hub dataset is neither under
    $LLAMA_ZOO_DATA nor in the hub's cache fails in one line at once (loading it would fail the
    same way after them). Read from the task's YAML; an unknown task is left to ``load_task``."""
    from llama_zoo.hub import offline_if_unreachable

    require_lm_eval()
    manager = task_manager(options.get("lm_eval_include"), name)
    entry = manager.task_index.get(name)
    if entry is None or not getattr(entry, "yaml_path", None):
        return
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(entry.yaml_path, resolve_func=False)
    if "custom_dataset" in config:  # it makes its own documents (generates_data)
        return
    path = config.get("dataset_path")
    if (not isinstance(path, str) or not path or Path(path).is_absolute() or Path(path).exists() or _builder(path)
            or local_dataset(path) is not None or _in_hub_cache(path) or not offline_if_unreachable()):
        return
    raise LlamaZooError(f"lm-eval task {name} cannot load its data: {path} is neither under $LLAMA_ZOO_DATA nor in the "
                        f"hub's cache, and the hub is offline; download it ({download_hint(path)}) or give a task "
                        "YAML with local data_files (--lm-eval-include DIR)")


def _builder(path: str) -> bool:
    """Whether ``path`` names one of ``datasets``' own loaders (``json``, ``csv``, ``parquet``...),
    which read the task's ``data_files`` and need no hub."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return path in _PACKAGED_DATASETS_MODULES


def _in_hub_cache(repo_id: str) -> bool:
    """Whether ``datasets`` or ``huggingface_hub`` keep a copy of hub dataset ``repo_id`` (it may load offline)."""
    import datasets.config
    from huggingface_hub import constants

    return (Path(datasets.config.HF_DATASETS_CACHE, repo_id.replace("/", "___")).exists()
            or Path(constants.HF_HUB_CACHE, "datasets--" + repo_id.replace("/", "--")).exists())


def generates_data(manager, name: str) -> bool:
    """Whether a task makes its own documents (a ``custom_dataset`` function, given the metadata as
    arguments: RULER); read from its YAML without importing the function."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = manager.task_index.get(name)
    if entry is None or not getattr(entry, "yaml_path", None):
        return False
    return "custom_dataset" in load_yaml(entry.yaml_path, resolve_func=False)


def task_metadata(name: str, include: str | None, given: dict[str, Any] | None,
                  tokenizer: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The metadata a task is built with, and the tokenizer llama-zoo supplied (None when it
    supplied none): a task that generates its own data sizes it with a tokenizer, by lm-eval's
    convention named under ``tokenizer`` or ``pretrained``; the user's wins."""
    require_lm_eval()
    requires_ruler(task_manager(include, name), name)  # what is missing is said before what is not given
    if given and (given.get("tokenizer") or given.get("pretrained")):
        return given, None
    if not generates_data(task_manager(include, name), name):
        return given, None
    source = str(getattr(tokenizer, "name_or_path", "") or "") if tokenizer is not None else ""
    if not source:
        raise LlamaZooError(f"lm-eval:{name} generates its documents sized by a tokenizer, and this run's has no "
                            "name lm-eval can load: give one with --lm-eval-metadata '{\"tokenizer\": \"<hub id or "
                            "directory>\"}' (or --tokenizer DIR)")
    return {**(given or {}), "tokenizer": source}, source


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


def load_task(name: str, include: str | None, metadata: dict[str, Any] | None = None, limit: int | None = None):
    """The lm-eval task object, built with ``metadata`` (lm-eval's --metadata), or one line:
    unknown (with lm-eval's closest names), a group, or data (or a package) it cannot load. A RULER
    task generates only the ``limit`` documents a run reads."""
    require_lm_eval()
    from lm_eval.tasks import get_task_dict

    manager = task_manager(include, name)
    if name not in manager.all_tasks:
        close = difflib.get_close_matches(name, manager.all_tasks, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see 'lm-eval ls tasks' (or --lm-eval-include DIR)"
        raise LlamaZooError(f"unknown lm-eval task {name!r}{hint}")
    if name in manager.all_groups or name in manager.all_tags:
        raise LlamaZooError(f"lm-eval:{name} is a group of tasks: 'llama-zoo eval' runs it as its tasks, one run each")
    ruler_task = requires_ruler(manager, name)
    try:
        with quiet_bars(), ruler.no_downloads() if ruler_task else contextlib.nullcontext():
            seed_as_lm_eval()
            config = task_config(manager, name, metadata)  # resolving a task's functions imports its modules
            tasks = _ruler_capped(manager, config, limit) if ruler_task and limit and config else None
            if tasks is None:
                tasks = get_task_dict([config or name], manager)
    except Exception as exc:  # noqa: BLE001 - said in one line below, by what failed
        raise _load_error(name, exc, ruler_task) from None
    task = tasks.get("tasks", tasks)[name] if isinstance(tasks.get("tasks", tasks), dict) else tasks[name]
    return task


def _ruler_capped(manager, config: dict[str, Any], limit: int) -> dict[str, Any] | None:
    """A RULER task's dict with only ``limit`` documents generated per length
    (``ruler.documents_capped``); None, with the seeds set again, where one came up short."""
    from lm_eval.tasks import get_task_dict

    build = config.get("custom_dataset")
    if not callable(build):
        return None
    try:
        return get_task_dict([{**config, "custom_dataset": ruler.documents_capped(build, limit)}], manager)
    except ruler.ShortOfDocuments:
        seed_as_lm_eval()  # built again whole, from the seeds lm-eval starts from
        return None


def requires_ruler(manager, name: str) -> bool:
    """Whether the task is one of lm-eval's RULER tasks, having checked the packages and data it needs."""
    if not ruler.is_ruler(manager.task_index.get(name)):
        return False
    ruler.require(name)
    return True


def _load_error(name: str, exc: Exception, ruler_task: bool) -> LlamaZooError:
    first = " ".join(str(exc).split())[:200]
    if ruler_task and (said := ruler.missing_download(name, f"{type(exc).__name__}: {first}")):
        return said
    if isinstance(exc, (ConnectionError, OSError)):
        return LlamaZooError(f"lm-eval task {name} cannot load its data ({type(exc).__name__}: {first}); the hub is "
                            "unreachable or the files are missing: download the dataset under $LLAMA_ZOO_DATA/<its repo id> "
                            "or give a task YAML with local data_files")
    if isinstance(exc, ImportError):  # a task's own dependency (ifeval's langdetect, say)
        return LlamaZooError(f"lm-eval task {name} needs a package that is not installed: {first}")
    # a malformed YAML, a template error: the task's
    return LlamaZooError(f"lm-eval task {name} cannot be built: {type(exc).__name__}: {first}")


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


def run_headline(task, docs: Sequence[Any]) -> tuple[str, bool, list[int] | None]:
    """The run's headline metric, whether lower is better, and, for a task that reports a metric
    per sequence length (RULER), the lengths its documents were made at: the headline is then that
    length's metric, or the mean over the lengths (``ruler.headline``), not the task's first
    metric (RULER's first is lm-eval's default length, -1 when it was not run)."""
    metric, lower = headline(task)
    if not ruler.per_length(list(task._metric_fn_list)):
        return metric, lower, None
    lengths = ruler.lengths_run(docs)
    return (ruler.headline(lengths, task._filters[0].name), False, lengths) if lengths else (metric, lower, None)


@dataclass(frozen=True)
class Planned:
    """What ``score`` and ``metrics`` need from ``plan`` (the plan's ``state``): the task as built
    (its instances, filters and aggregations), the adapter that turns answers into lm-eval's, the
    headline metric, and the sequence lengths of a per-length task (RULER; None otherwise)."""

    task: Any
    lm: Any
    headline: str = ""
    lengths: list[int] | None = None


class LmEvalSuite:
    def __init__(self, task: str):
        self.task_name = task
        self.info = _info(f"{PREFIX}:{task}", functools.partial(check_task_data, task))
        # a cache of loaded tasks (loading reads lm-eval's index), by include directory and metadata;
        # each with its YAML's num_fewshot, read before any option changes it
        self._loaded: dict[tuple[str | None, str], tuple[Any, int | None]] = {}

    def expands(self, options: dict[str, Any]) -> list[str] | None:
        """An lm-eval group or tag as the suites of its tasks (``lm-eval:mmlu`` is 57 runs)."""
        leaves = leaf_tasks(self.task_name, options.get("lm_eval_include"))
        return None if leaves is None else [f"{PREFIX}:{leaf}" for leaf in leaves]

    def check(self, spec, options) -> None:
        parse_metadata(options.get("lm_eval_metadata"))  # before anything loads or is stored
        if not spec.text_arch:
            raise LlamaZooError(f"{spec.id} has no language model to answer lm-eval:{self.task_name}")

    def task(self, include: str | None, metadata: dict[str, Any] | None = None,
             limit: int | None = None) -> tuple[Any, int | None]:
        """The task built with ``metadata`` (and, for RULER, ``limit`` documents), and the num_fewshot
        its own config sets."""
        key = include, json.dumps(metadata, sort_keys=True), limit
        if key not in self._loaded:
            task = load_task(self.task_name, include, metadata, limit)
            self._loaded[key] = task, task.get_config("num_fewshot")
        return self._loaded[key]

    def plan(self, ctx: Context) -> Plan:
        from lm_eval import __version__ as lm_eval_version

        from llama_zoo.suites.lm_eval_tasks.adapter import ZooLM

        options = ctx.options
        given = parse_metadata(options.get("lm_eval_metadata"))
        metadata, supplied = task_metadata(self.task_name, options["lm_eval_include"], given, ctx.tokenizer)
        is_ruler = requires_ruler(task_manager(options["lm_eval_include"], self.task_name), self.task_name)
        if is_ruler:
            ruler.check_context(self.task_name, metadata, ctx.context)
        task, own = self.task(options["lm_eval_include"], metadata, ctx.limit if is_ruler else None)
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
        items, hashes, docs = [], [], []
        for doc_id, doc in task.doc_iterator(rank=0, limit=ctx.limit, world_size=1):
            docs.append(doc)
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
        metric, lower, lengths = run_headline(task, docs)
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
        # only when given or supplied: runs stored before the option existed stay cache hits
        if given is not None:
            plan_options["lm_eval_metadata"] = given
        if supplied is not None:  # the tokenizer that sized generated documents: another one makes other documents
            plan_options["lm_eval_tokenizer"] = supplied
        if lengths is not None:
            plan_options["sequence_lengths"] = lengths
        hub_path = (task.config.metadata or {}).get("llama_zoo_local_copy_of") or task.config.dataset_path
        source = hub_path + (f"/{task.config.dataset_name}" if task.config.dataset_name else "")
        # a task that generates its documents (RULER) has no dataset: its name says so
        return Plan(source or f"generated:{self.task_name}", None, dataset_hash(hashes), items, plan_options,
                    state=Planned(task, lm, metric, lengths))

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        task, lm, metric_key = ctx.state.task, ctx.state.lm, ctx.state.headline
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
                scores={"metrics": values, "score": _doc_score(values, metric_key, ctx.state.lengths, task),
                        "doc_hash": doc_hash(doc), "filtered": _plain([i.filtered_resps for i in instances])},
            ))

    def metrics(self, samples, seed: int, runner=None, state: Planned | None = None) -> list[dict[str, Any]]:
        per_doc = [s["scores"]["metrics"] for s in samples]
        if state.lengths is not None:  # RULER: a metric per length run, its placeholders dropped
            return ruler.metrics(per_doc, state.task._filters[0].name, seed)
        return aggregate(state.task, per_doc, seed)


def _doc_score(values: dict[str, Any], metric_key: str, lengths: list[int] | None, task) -> float | None:
    """A document's headline value (what paired comparisons resample): for a per-length task, its
    score at its own length, whichever length the headline names."""
    if lengths is not None:
        return ruler.own_score(values, task._filters[0].name)
    return number(values.get(metric_key))


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
