"""``llama-zoo bench``: how fast a model shape scores and generates on this machine.

Scoring: batches of random-token windows through the runner's chunked log-probability path;
model-FLOP utilisation against the measured dense matmul peak of the device in the same dtype.
Generation: a batch of random prompts, a fixed number of new tokens each (no early stop),
prefill included. Figures are stored as a ``bench`` run with full provenance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from llama_zoo.errors import LlamaZooError
from llama_zoo.registry import derive
from llama_zoo.registry.catalog import load_catalog, spec_hash

SUITE_VERSION = "1"


@dataclass
class BenchOptions:
    model: str
    random_weights: bool = False
    shadow: bool = False
    context: int = 2048
    batch: int = 8
    gen_batch: int = 32
    prompt_tokens: int = 128
    new_tokens: int = 256
    iters: int = 5
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    db: str | None = None


def matmul_peak_flops(device: str, dtype, size: int = 4096, repeats: int = 10) -> float:
    """Measured dense matmul throughput: the ceiling model-FLOP utilisation is quoted against."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    import torch

    from llama_zoo.results.identity import RunConfig
    from llama_zoo.results.store import MetricValue, Store
    from llama_zoo.runners.base import TokenWindow
    from llama_zoo.runners.hf import HFRunner
    from llama_zoo.runners.loading import choose_source, has_language_model_head, tokenizer_hash

    spec = load_catalog().get(opts.model)
    if not (opts.random_weights or opts.shadow):
        raise LlamaZooError("bench measures speed, not quality: pass --random-weights (full size) or --shadow (tiny)")
    if not has_language_model_head(spec):
        raise LlamaZooError(f"{spec.id} has no language-model head to benchmark")
    if opts.context > (spec.max_context or opts.context):
        raise LlamaZooError(f"--context {opts.context} exceeds {spec.id}'s {spec.max_context} positions")
    source = choose_source(spec, shadow=opts.shadow, random_weights=opts.random_weights, seed=opts.seed)
    runner = HFRunner(spec, source, device=opts.device, dtype=opts.dtype, batch_size=opts.batch, max_length=opts.context)
    device, vocab = runner.device, runner.head.weight.shape[0]
    gen = torch.Generator().manual_seed(opts.seed)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    # scoring
    rows = torch.randint(3, vocab, (opts.batch, opts.context), generator=gen).tolist()
    windows = [TokenWindow(r[:1], r[1:]) for r in rows]
    runner.loglikelihood_rolling(windows)  # warm-up (and CUDA kernel selection)
    _sync(device)
    start = time.perf_counter()
    for _ in range(opts.iters):
        runner.loglikelihood_rolling(windows)
    _sync(device)
    score_s = (time.perf_counter() - start) / opts.iters
    scored = opts.batch * (opts.context - 1)
    tokens_per_s = scored / score_s
    # average position of a scored token is context/2: attention cost at that position
    model_flops = (derive.flops_per_token(spec, opts.context // 2) if source.kind == "random"
                   else _shadow_flops(runner.model, opts.context))
    peak = matmul_peak_flops(device, runner.dtype)
    mfu = model_flops * tokens_per_s / peak

    # generation
    prompts = torch.randint(3, vocab, (opts.gen_batch, opts.prompt_tokens), generator=gen).to(device)
    kwargs: dict[str, Any] = dict(max_new_tokens=opts.new_tokens, min_new_tokens=opts.new_tokens, do_sample=False,
                                  pad_token_id=0, attention_mask=torch.ones_like(prompts))
    if device == "cuda":
        kwargs["cache_implementation"] = "static"  # with a compiled decode step
    runner.model.generate(prompts, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
    _sync(device)
    start = time.perf_counter()
    out = runner.model.generate(prompts, **kwargs)
    _sync(device)
    gen_s = time.perf_counter() - start
    new_tokens = (out.shape[1] - opts.prompt_tokens) * opts.gen_batch
    results = {
        "score_tokens_per_s": tokens_per_s,
        "mfu": mfu,
        "matmul_peak_tflops": peak / 1e12,
        "model_gflops_per_token": model_flops / 1e9,
        "generate_new_tokens_per_s": new_tokens / gen_s,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else None,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "dtype": str(runner.dtype).removeprefix("torch."),
    }

    config = RunConfig(model_id=spec.id, spec_hash=spec_hash(spec), suite="bench", suite_version=SUITE_VERSION,
                       backend="hf", weights_source=source.kind, weights_hash=source.content_hash,
                       tokenizer_hash=tokenizer_hash(runner.tokenizer), dtype=results["dtype"],
                       options={k: getattr(opts, k) for k in ("context", "batch", "gen_batch", "prompt_tokens",
                                                             "new_tokens", "iters")}, seed=opts.seed)
    store = Store.open(opts.db)
    with store.begin(config, force=True, batch_size=opts.batch) as run:  # a measurement is never a cache hit
        run.complete([MetricValue(k, float(v)) for k, v in results.items() if isinstance(v, (int, float))],
                     tokens_per_s=tokens_per_s)
    results["run_id"] = run.run_id
    return results


def _shadow_flops(model, context: int) -> float:
    """FLOPs per token of the loaded shadow (which has no registry entry of its size): its matmul
    weights (the output projection counted even when tied) and attention at mid-context."""
    params = sum(p.numel() for p in model.parameters())
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    matmul = params - embed.numel() + (head.numel() if head is embed else 0)
    text = model.config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2.0 * matmul + 4.0 * text.num_hidden_layers * (context // 2) * text.num_attention_heads * head_dim
