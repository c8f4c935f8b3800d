"""What a model x suite matrix will need, before anything loads: per cell, weights and KV-cache
memory for the dtype and context, how many GPUs of a kind that takes, and the forward FLOPs per
token. Registry arithmetic only (``registry.derive``): the figures are the ones ``models show``
prints.

Memory needed is ``derive.fit_on_gpu``'s: ``(weights + bf16 KV cache x context x batch) x 1.1``,
the 10% standing for activations and the runtime; GPUs are that over one
GPU's memory, rounded up. Spreading a model over several GPUs needs ``--device-map auto`` or tensor
parallelism, which are not built yet; a cell needing more GPUs than one node holds (8) is marked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from llama_zoo.errors import LlamaZooError
from llama_zoo.registry.derive import (DTYPE_BYTES, GPUS, fit_on_gpu, flops_per_token, kv_cache_bytes_per_token,
                                       param_count, weight_bytes)

OVERHEAD = 0.10
NODE_GPUS = 8


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gpu_kind(name: str) -> str:
    """A GPU name from the registry's table, case-insensitively (``h100-80gb`` is ``H100-80GB``)."""
    for known in GPUS:
        if known.lower() == name.lower():
            return known
    raise LlamaZooError(f"unknown GPU {name!r}; known: {', '.join(GPUS)}")


def plan_cell(spec, suite: str, *, context: int, gpu: str, dtype: str = "bf16", batch: int = 1) -> CellPlan:
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
    return CellPlan(spec.id, suite, dtype, context, batch, count.total if count else None, weights, kv, needed, gpu,
                    gpus, flops_per_token(spec, context), why is None, why)
