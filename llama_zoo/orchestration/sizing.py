"""What a model x suite matrix will need, before anything loads: per cell, weights and KV-cache
memory for the dtype and context, how many GPUs of a kind that takes, the forward FLOPs per token,
and an estimated time. Registry arithmetic (``registry.derive``: the figures ``models show``
prints) and the suite's own estimate of its work (``Suite.work``).

Memory needed is ``derive.fit_on_gpu``'s: ``(weights + the larger of the bf16 KV cache for
context x batch tokens and one forward pass's activations over them) x 1.1``, the 10% standing for
the runtime; GPUs are that over one GPU's memory, rounded up. A cell needing more GPUs than one
node holds (8) is marked.

Time is the suite's tokens over a throughput: a ``bench`` run in the store for the same model,
context and dtype on that GPU kind where there is one (measured), else an assumed utilisation
of the GPU's data-sheet peak, said as such: scoring and prefill at ``ASSUMED_MFU`` of its FLOP/s,
decoding memory-bound (each step reads the weights once for the batch) at ``ASSUMED_MBU`` of its
bandwidth.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from llama_zoo.errors import LlamaZooError
from llama_zoo.registry.derive import (DTYPE_BYTES, GPU_SPEED, GPUS, fit_on_gpu, flops_per_token,
                                       kv_cache_bytes_per_token, param_count, weight_bytes)

OVERHEAD = 0.10
NODE_GPUS = 8
ASSUMED_MFU = 0.40  # a well-batched transformers or vLLM prefill; lm-eval-style scoring reaches about this
ASSUMED_MBU = 0.60  # decoding: the share of memory bandwidth a good kernel stack sustains
QUANTIZE_OPTIONS = ("fp8", "int8", "int4")  # eval's --quantize, in the order of the quality they keep
TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass(frozen=True)
class Throughput:
    """A measured rate: a completed ``bench`` run of the same shape."""

    score_tokens_per_s: float
    generate_tokens_per_s: float
    run_id: str
    device: str


@dataclass(frozen=True)
class CellPlan:
    model: str
    suite: str
    dtype: str
    context: int
    batch: int
    params: int | None
    weights_bytes: float | None
    kv_cache_bytes: float | None
    needed_bytes: float | None
    gpu: str
    gpus: int | None
    flops_per_token: float | None
    fits: bool
    why_not: str | None
    scored_tokens: int | None = None
    generated_tokens: int | None = None
    seconds: float | None = None
    time_basis: str | None = None  # "measured: bench run ..." or "assumed: ..." or why there is no estimate
    quantized_gpus: dict[str, int] | None = None  # --quantize option -> GPUs, where it needs fewer than dtype

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gpu_kind(name: str) -> str:
    """A GPU name from the registry's table, case-insensitively (``h100-80gb`` is ``H100-80GB``)."""
    for known in GPUS:
        if known.lower() == name.lower():
            return known
    raise LlamaZooError(f"unknown GPU {name!r}; known: {', '.join(GPUS)}")


def plan_cell(spec, suite: str, *, context: int, gpu: str, dtype: str = "bf16", batch: int = 1, work=None,
              measured: Throughput | None = None) -> CellPlan:
    """One cell's memory and GPUs, and its time where ``work`` (the suite's ``Work``) is known."""
    if dtype not in DTYPE_BYTES:
        raise LlamaZooError(f"unknown dtype {dtype!r}; one of {', '.join(DTYPE_BYTES)}")
    count = param_count(spec)
    weights = weight_bytes(spec, dtype)
    fit = fit_on_gpu(spec, gpu, context, batch=batch, dtype=dtype, overhead=OVERHEAD)  # as `models show` has it
    if fit is None:
        return CellPlan(spec.id, suite, dtype, context, batch, count.total if count else None, weights, None, None, gpu,
                        None, None, False, f"{spec.id} has no architecture to plan for")
    kv = kv_cache_bytes_per_token(spec, "bf16", context) * context * batch
    needed = fit.needed_bytes
    gpus = math.ceil(needed / GPUS[gpu])
    why = None
    if spec.max_context and context > spec.max_context:
        why = f"context {context:,} exceeds the model's {spec.max_context:,} positions"
    elif gpus > NODE_GPUS:
        why = f"needs {gpus} x {gpu}, more than one {NODE_GPUS}-GPU node"
    flops = flops_per_token(spec, context)
    timing = _time(work, measured, flops, weights, gpu, gpus, batch)
    return CellPlan(spec.id, suite, dtype, context, batch, count.total if count else None, weights, kv, needed, gpu,
                    gpus, flops, why is None, why, work.scored if work else None, work.generated if work else None,
                    *timing, _quantized(spec, gpu, context, batch, gpus))


def _quantized(spec, gpu: str, context: int, batch: int, gpus: int) -> dict[str, int]:
    """GPUs per ``--quantize`` option (weights in that format, the KV cache in bf16), where fewer."""
    out = {}
    for option in QUANTIZE_OPTIONS:
        fit = fit_on_gpu(spec, gpu, context, batch=batch, dtype=option, overhead=OVERHEAD)
        fewer = math.ceil(fit.needed_bytes / GPUS[gpu])
        if fewer < gpus:
            out[option] = fewer
    return out


def _time(work, measured: Throughput | None, flops: float | None, weights: float, gpu: str, gpus: int,
          batch: int) -> tuple[float | None, str]:
    if work is None:
        return None, "no estimate: the suite does not say how many tokens it runs"
    if measured is not None:
        seconds = work.scored / measured.score_tokens_per_s
        if work.generated:
            seconds += work.generated / measured.generate_tokens_per_s
        return seconds, f"measured: bench run {measured.run_id} on {measured.device}"
    if flops is None:
        return None, "no estimate: no FLOPs per token for this architecture"
    peak, bandwidth = GPU_SPEED[gpu]
    seconds = work.scored * flops / (peak * gpus * ASSUMED_MFU)
    if work.generated:
        rows = max(1, min(batch, work.sequences or 1))  # sequences decoded side by side
        steps = work.generated / rows
        seconds += steps * weights / (bandwidth * gpus * ASSUMED_MBU)
    return seconds, (f"assumed: {ASSUMED_MFU:.0%} of {peak / 1e12:,.0f} TFLOP/s, decoding at {ASSUMED_MBU:.0%} "
                     f"of {bandwidth / 1e12:.2f} TB/s, per GPU")


def measured_throughput(store, model: str, context: int, dtype: str, gpu: str) -> Throughput | None:
    """The newest completed ``bench`` run of ``model`` (full size: random weights, not a shadow) at
    ``context`` in ``dtype`` on a GPU of the kind (its chip name in the recorded device), or None."""
    # "RTX4090" is "NVIDIA GeForce RTX 4090", "L4" is not "L40S": the chip as a word, a space allowed before its digits
    chip = re.compile(r"\b" + re.sub(r"([a-z])(\d)", r"\1 ?\2", gpu.split("-")[0].lower()) + r"\b")
    for run in store.completed_runs(suite="bench", model=model):
        device = (run.get("device") or {}).get("gpu") or ""
        rates = {name: m["value"] for name, m in run["metrics"].items()}
        if (run["weights_source"] == "random" and chip.search(device.lower()) and (run.get("options") or {}).get("context") == context
                and run.get("dtype") == TORCH_DTYPES.get(dtype, dtype)
                and {"score_tokens_per_s", "generate_new_tokens_per_s"} <= rates.keys()):
            return Throughput(rates["score_tokens_per_s"], rates["generate_new_tokens_per_s"], run["id"], device)
    return None


def gpus_for_request(request, suite: str, gpu: str) -> int:
    """The GPUs one run asks a cluster for: one for a shadow model; vLLM's ``--tensor-parallel``, or
    the power of two ``derive.tensor_parallel_size`` gives (what vLLM will demand); else what the
    model needs here in its dtype (``--quantize`` where given)."""
    from llama_zoo.registry.checkpoint import find_model
    from llama_zoo.registry.derive import tensor_parallel_size

    if request.shadow:
        return 1
    if request.tensor_parallel:
        return request.tensor_parallel
    spec, _ = find_model(request.model, request.base)
    context = request.context or min(2048, spec.max_context or 2048)
    dtype = request.quantize or {"float32": "fp32", "float16": "fp16"}.get(request.dtype, "bf16")
    from llama_zoo.backends import BACKENDS

    if "tensor_parallel" in BACKENDS.get(request.backend).info.placement:  # vLLM: a power of two dividing the heads
        size = tensor_parallel_size(spec, context, GPUS[gpu], dtype=dtype)
        if size is None:
            raise LlamaZooError(f"{spec.id} fits no power-of-two tensor-parallel size on {gpu} in {dtype}")
        return size
    planned = plan_cell(spec, suite, context=context, gpu=gpu, dtype=dtype)
    if planned.gpus is None:
        raise LlamaZooError(planned.why_not or f"{spec.id}: no memory figure to plan GPUs from")
    return planned.gpus
