"""From ``llama-zoo eval`` options to a stored run: check, look up the cache, load, score, store.

This is the one place that joins the registry, a runner, a suite and the results store; the CLI
only parses options and draws progress.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from llama_zoo.errors import LlamaZooError
from llama_zoo.registry.catalog import load_catalog, spec_hash
from llama_zoo.registry.schema import ModelSpec

SUITES = ("perplexity", "humaneval", "humaneval-infilling")
CODE_SUITES = ("humaneval", "humaneval-infilling")
BACKENDS = ("hf", "vllm")


@dataclass
class EvalOptions:
    model: str
    suite: str = "perplexity"
    dataset: str | None = None
    dataset_revision: str | None = None
    protocol: str = "rolling"
    context: int | None = None
    stride: int | None = None
    limit: int | None = None
    shadow: bool = False
    random_weights: bool = False
    weights: str | None = None
    revision: str | None = None
    tokenizer: str | None = None
    backend: str = "hf"
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int | None = None
    seed: int = 0
    force: bool = False
    db: str | None = None
    # code suites
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    samples_file: str | None = None
    subset: str = "single-line"
    fim_mode: str = "psm"


@dataclass
class Outcome:
    run_id: str
    cached: bool
    resumed: bool
    metrics: list[dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)
    units: int = 0
    scored_tokens: int = 0
    wall_s: float = 0.0


Progress = Callable[[int, int, int], None]  # (units done, units total, tokens scored so far)


def check(spec: ModelSpec, opts: EvalOptions) -> int:
    """Everything that can be checked before loading anything; returns the context length."""
    from llama_zoo.runners.loading import has_language_model_head

    if opts.suite not in SUITES:
        raise LlamaZooError(f"unknown suite {opts.suite!r}; suites: {', '.join(SUITES)}")
    if opts.backend not in BACKENDS:
        raise LlamaZooError(f"unknown backend {opts.backend!r}; backends: {', '.join(BACKENDS)}")
    if opts.backend == "vllm":
        from llama_zoo.runners.vllm import import_vllm

        import_vllm()
    if opts.samples_file:
        if opts.suite not in CODE_SUITES:
            raise LlamaZooError("--samples-file scores completions made elsewhere: it goes with a code suite")
        if opts.shadow or opts.random_weights or opts.weights:
            raise LlamaZooError("--samples-file loads no model: drop --shadow, --random-weights and --weights")
        return 0
    if not has_language_model_head(spec):
        what = "has no published architecture" if spec.architecture is None else "has no language-model head"
        raise LlamaZooError(f"{spec.id} {what}; the {opts.suite} suite needs one")
    if opts.suite == "humaneval-infilling" and not (spec.tokenizer and spec.tokenizer.fim):
        raise LlamaZooError(f"{spec.id} cannot fill in the middle (no FIM tokens: it was not trained to infill); "
                            "humaneval-infilling needs Code Llama 7B, 13B or 70B (base or Instruct)")
    if opts.suite == "humaneval-infilling" and opts.fim_mode not in spec.tokenizer.fim.modes:
        raise LlamaZooError(f"{spec.id} supports FIM modes {', '.join(spec.tokenizer.fim.modes)}, not {opts.fim_mode!r}")
    if opts.samples < 1 or (opts.samples > 1 and opts.temperature <= 0):
        raise LlamaZooError("--samples N > 1 needs sampling: give --temperature T > 0")
    limit = spec.max_context or 2048
    context = opts.context or min(2048, limit)
    if context > limit:
        raise LlamaZooError(f"--context {context} exceeds {spec.id}'s {limit} positions")
    if opts.protocol == "sliding" and opts.stride is not None and not 0 < opts.stride <= context:
        raise LlamaZooError(f"--stride must be between 1 and the context ({context})")
    if opts.limit is not None and opts.limit < 1:
        raise LlamaZooError("--limit must be at least 1")
    return context


def evaluate(opts: EvalOptions, progress: Progress | None = None) -> Outcome:
    spec = load_catalog().get(opts.model)
    context = check(spec, opts)
    if opts.suite in CODE_SUITES:
        return evaluate_code(spec, opts, context, progress)
    return evaluate_perplexity(spec, opts, context, progress)


def evaluate_perplexity(spec: ModelSpec, opts: EvalOptions, context: int, progress: Progress | None = None) -> Outcome:
    from llama_zoo.evals import perplexity
    from llama_zoo.evals.corpora import load_documents
    from llama_zoo.results.identity import RunConfig
    from llama_zoo.results.store import MetricValue, Store
    from llama_zoo.runners.loading import choose_source, load_tokenizer, tokenizer_hash

    docs = load_documents(opts.dataset, opts.dataset_revision)
    source = choose_source(spec, shadow=opts.shadow, random_weights=opts.random_weights, weights=opts.weights,
                           revision=opts.revision, seed=opts.seed)
    tokenizer, tokenizer_source = load_tokenizer(spec, source, opts.tokenizer)
    device, dtype = _resolved_device(opts)
    stride = (opts.stride or context // 2) if opts.protocol == "sliding" else None
    options = {"protocol": opts.protocol, "context": context, "limit": opts.limit, "tokenizer_source": tokenizer_source,
               "device": device}
    if stride:
        options["stride"] = stride
    if source.config_differences:
        options["weights_config_differences"] = source.config_differences
    config = RunConfig(
        model_id=spec.id, spec_hash=spec_hash(spec), suite=perplexity.SUITE, suite_version=perplexity.SUITE_VERSION,
        backend=opts.backend, weights_source=source.kind, weights_ref=source.ref, weights_revision=source.revision,
        weights_hash=source.content_hash, tokenizer_hash=tokenizer_hash(tokenizer), dtype=dtype,
        dataset_name=docs.name, dataset_revision=docs.revision, dataset_hash=docs.content_hash,
        options=options, seed=opts.seed)

    units = perplexity.build_units(opts.protocol, docs.texts, tokenizer, context, stride, opts.limit)
    if not units:
        raise LlamaZooError(f"{docs.name}: nothing to score with a {context}-token context")
    store = Store.open(opts.db)
    handle = store.begin(config, force=opts.force, batch_size=opts.batch_size, n_samples=len(units), flush_every=16)
    if handle.cached:
        return _finished(store, handle.run_id, cached=True, resumed=False)

    with handle:
        runner = _runner(spec, source, opts, context, (tokenizer, tokenizer_source))
        start, scored = time.perf_counter(), 0
        todo = [u for u in units if u.index not in handle.done]
        done_before = len(units) - len(todo)
        group = max(1, opts.batch_size or 8)
        for i in range(0, len(todo), group):
            batch = todo[i:i + group]
            windows = [w for u in batch for w in u.windows]
            logprobs = runner.loglikelihood_rolling(windows)
            pos = 0
            for unit in batch:
                handle.add(unit.index, **perplexity.unit_sample(unit, logprobs[pos:pos + len(unit.windows)]))
                pos += len(unit.windows)
                scored += unit.tokens
            if progress:
                progress(done_before + i + len(batch), len(units), scored)
        handle.flush()
        elapsed = time.perf_counter() - start
        stored = [s["scores"] for s in store.iter_samples(handle.run_id)]
        values = [MetricValue(**m) for m in perplexity.metrics(stored, seed=opts.seed)]
        handle.complete(values, tokens_per_s=scored / elapsed if elapsed > 0 else None)
    outcome = _finished(store, handle.run_id, cached=False, resumed=handle.resumed)
    outcome.provenance = runner.provenance()
    outcome.scored_tokens, outcome.wall_s = scored, elapsed
    return outcome


def evaluate_code(spec: ModelSpec, opts: EvalOptions, context: int, progress: Progress | None = None) -> Outcome:
    import hashlib

    from llama_zoo.evals.code import humaneval, infilling
    from llama_zoo.evals.code.sandbox import isolation_report
    from llama_zoo.results.identity import RunConfig
    from llama_zoo.results.store import MetricValue, Store
    from llama_zoo.runners.loading import WeightsSource, choose_source, load_tokenizer, tokenizer_hash

    infill = opts.suite == "humaneval-infilling"
    if infill:
        problems = infilling.load_tasks(opts.subset, humaneval.load_problems(), opts.dataset)
        suite, suite_version, build = infilling.SUITE, infilling.SUITE_VERSION, infilling.program
    else:
        problems = humaneval.load_problems(opts.dataset)
        suite, suite_version, build = humaneval.SUITE, humaneval.SUITE_VERSION, humaneval.program
    task_ids = list(problems.tasks)[: opts.limit] if opts.limit else list(problems.tasks)
    options: dict[str, Any] = {"limit": opts.limit, "sandbox": isolation_report()}
    if infill:
        options.update(subset=opts.subset, fim_mode=opts.fim_mode)
    if opts.samples_file:
        external = humaneval.read_samples_file(opts.samples_file)
        digest = hashlib.sha256(open(opts.samples_file, "rb").read()).hexdigest()
        source, tok_hash = WeightsSource("external", ref=opts.samples_file, content_hash=digest), None
        unknown = sorted({t for t, _ in external} - set(problems.tasks))
        if unknown:
            raise LlamaZooError(f"{opts.samples_file} names tasks not in {problems.name}: {', '.join(unknown[:3])}")
        wanted = set(task_ids) if opts.limit else None
        pairs = [(t, c) for t, c in external if wanted is None or t in wanted]
        if not pairs:
            raise LlamaZooError(f"{opts.samples_file} has no samples for the first {opts.limit} tasks")
        options["samples_file"] = opts.samples_file
    else:
        source = choose_source(spec, shadow=opts.shadow, random_weights=opts.random_weights, weights=opts.weights,
                               revision=opts.revision, seed=opts.seed)
        tokenizer, tokenizer_source = load_tokenizer(spec, source, opts.tokenizer)
        tok_hash = tokenizer_hash(tokenizer)
        options["device"], resolved_dtype = _resolved_device(opts)
        options.update(samples=opts.samples, temperature=opts.temperature, top_p=opts.top_p,
                       max_new_tokens=opts.max_new_tokens, tokenizer_source=tokenizer_source, context=context,
                       instruct=spec.capabilities.instruct)
        pairs = [(t, "") for t in task_ids for _ in range(opts.samples)]  # completions filled in below
    config = RunConfig(
        model_id=spec.id, spec_hash=spec_hash(spec), suite=suite, suite_version=suite_version,
        backend=opts.backend, weights_source=source.kind, weights_ref=source.ref, weights_revision=source.revision,
        weights_hash=source.content_hash, tokenizer_hash=tok_hash, dtype=None if opts.samples_file else resolved_dtype,
        dataset_name=problems.name, dataset_revision=problems.revision, dataset_hash=problems.content_hash,
        options=options, seed=opts.seed)
    store = Store.open(opts.db)
    handle = store.begin(config, force=opts.force, batch_size=opts.batch_size, n_samples=len(pairs), flush_every=32)
    if handle.cached:
        return _finished(store, handle.run_id, cached=True, resumed=False)
    with handle:
        start = time.perf_counter()
        todo = [i for i in range(len(pairs)) if i not in handle.done]
        if not opts.samples_file and todo:
            runner = _runner(spec, source, opts, options["context"], (tokenizer, tokenizer_source))
            pairs = _complete(runner, spec, problems, pairs, todo, opts)
        needed = {t: problems.tasks[t] for t in {pairs[i][0] for i in todo}}
        limits = humaneval.canonical_limits(humaneval.Problems(problems.name, problems.revision, needed), build=build)
        def stored(k: int, outcome) -> None:
            i = todo[k]
            task_id, completion = pairs[i]
            task = problems.tasks[task_id]
            extra = {"detail": outcome.detail} if outcome.detail else {}
            if infill:
                extra["suffix"] = task["suffix"]
            handle.add(i, input=task["prompt"], input_ref=task_id, output=completion,
                       target=task.get("canonical_solution"),
                       scores={"passed": outcome.passed, "outcome": outcome.outcome, "duration_s": round(outcome.duration_s, 4)},
                       extra=extra or None)
            if progress:
                progress(len(handle.done), len(pairs), 0)

        humaneval.score(problems, [pairs[i] for i in todo], limits, on_done=stored, build=build)
        handle.flush()
        results = [(s["input_ref"], bool(s["scores"]["passed"])) for s in store.iter_samples(handle.run_id)]
        handle.complete([MetricValue(**m) for m in humaneval.metrics(results, seed=opts.seed)])
    outcome = _finished(store, handle.run_id, cached=False, resumed=handle.resumed)
    outcome.wall_s = time.perf_counter() - start
    return outcome


def _complete(runner, spec: ModelSpec, problems, pairs, todo, opts: EvalOptions) -> list[tuple[str, str]]:
    """Generate the completions still missing: base models continue the prompt, instruct models
    answer in their chat template and the code is taken from the reply."""
    from llama_zoo.evals.code import humaneval
    from llama_zoo.runners.base import GenerateRequest

    tokenizer = runner.tokenizer
    pairs = list(pairs)
    by_task: dict[str, list[int]] = {}
    for i in todo:
        by_task.setdefault(pairs[i][0], []).append(i)
    instruct = spec.capabilities.instruct and getattr(tokenizer, "chat_template", None)
    infill = opts.suite == "humaneval-infilling"
    for task_id, indices in by_task.items():
        task = problems.tasks[task_id]
        prompt = task["prompt"]
        if infill:
            from llama_zoo.evals.code import infilling

            fim = spec.tokenizer.fim
            ids = infilling.fim_prompt(tokenizer, fim, prompt, task["suffix"], opts.fim_mode, bos=tokenizer.bos_token_id)
            stops = ()
        elif instruct:
            message = f"Complete the following Python function. Reply with the whole function in a code block.\n\n```python\n{prompt}```"
            ids = tokenizer.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True)
            stops: tuple[str, ...] = tuple(spec.tokenizer.stop_strings) if spec.tokenizer else ()
        else:
            ids = tokenizer(prompt).input_ids
            stops = humaneval.STOP_STRINGS
        eos = spec.tokenizer.eos_token_id if spec.tokenizer else None
        stop_ids = [*(eos if isinstance(eos, list) else [eos] if eos is not None else [])]
        if infill:
            stop_ids.insert(0, spec.tokenizer.fim.eot)
        request = GenerateRequest(list(ids), max_new_tokens=opts.max_new_tokens, stop_strings=stops,
                                  stop_token_ids=tuple(stop_ids), temperature=opts.temperature, top_p=opts.top_p,
                                  n=len(indices), seed=opts.seed + indices[0])  # each task's own stream
        generation = runner.generate([request])[0]
        for k, i in enumerate(indices):
            if infill:
                completion = infilling.decode_middle(tokenizer, generation.tokens[k], spec.tokenizer.fim.eot)
            elif instruct:
                completion = humaneval.extract_code(generation.texts[k])
            else:
                completion = humaneval.cut_at_stops(generation.texts[k])
            pairs[i] = (task_id, completion)
    return pairs


def _resolved_device(opts: EvalOptions) -> tuple[str, str]:
    """The device and dtype a run will really use: part of its identity (bf16 on a GPU and fp32 on a
    CPU give different numbers, so neither may be a cache hit for the other)."""
    if opts.backend == "vllm":
        return "cuda", opts.dtype
    from llama_zoo.runners.hf import pick_device, pick_dtype

    device = pick_device(opts.device)
    return device, str(pick_dtype(opts.dtype, device)).removeprefix("torch.")


def _runner(spec: ModelSpec, source, opts: EvalOptions, context: int, tokenizer):
    if opts.backend == "vllm":
        from llama_zoo.runners.vllm import VLLMRunner

        return VLLMRunner(spec, source, dtype=opts.dtype, max_length=context)
    from llama_zoo.runners.hf import HFRunner

    return HFRunner(spec, source, device=opts.device, dtype=opts.dtype, batch_size=opts.batch_size,
                    max_length=context, loaded_tokenizer=tokenizer)


def _finished(store, run_id: str, *, cached: bool, resumed: bool) -> Outcome:
    run = store.get(run_id)
    return Outcome(run_id=run_id, cached=cached, resumed=resumed, metrics=run["metrics"], units=run["samples_stored"],
                   provenance={k: run[k] for k in ("weights_source", "weights_ref", "backend", "dtype")})
