"""``--quantize int8|int4|fp8``: a checkpoint quantised as it loads, through the libraries made for
it, the way the Llama model cards run their biggest models on fewer GPUs (Llama 4 Scout in int4 on
one H100; Llama 3.1 405B in FP8 on one 8-GPU node).

- int8: bitsandbytes' LLM.int8() (``Linear8bitLt``): transformers' standard 8-bit path, outliers
  kept in 16 bits; CUDA and (bitsandbytes >= 0.45) CPU.
- int4: bitsandbytes' NF4 (``Linear4bit``, QLoRA's 4-bit format), compute in the run's dtype:
  the on-the-fly 4-bit path transformers documents for Llama 4 Scout; CUDA and CPU.
- fp8: torchao's float8 weights: with dynamic float8 activations on GPUs with FP8 tensor cores
  (compute capability 8.9+: H100, L4, RTX 4090), weight-only elsewhere (the CPU computes in
  bf16). Meta's own FP8 checkpoints (``Llama-3.1-405B-Instruct-FP8``) carry their scheme in their
  config (fbgemm's row-wise FP8) and load as they are, without this option.

The scheme is part of a run's identity (``quantize`` in its options): a quantised run is never a
cache hit for the unquantised one. Both libraries are the ``quantize`` extra.
"""

from __future__ import annotations

import warnings
from typing import Any

from llama_zoo.backends.base import BackendError

SCHEMES = ("int8", "int4", "fp8")
LIBRARY = {"int8": "bitsandbytes", "int4": "bitsandbytes", "fp8": "torchao"}


def check(scheme: str) -> None:
    """Refuse an unknown scheme or a missing library before anything loads."""
    if scheme not in SCHEMES:
        raise BackendError(f"--quantize {scheme!r}: one of {', '.join(SCHEMES)}")
    import importlib.util

    if importlib.util.find_spec(LIBRARY[scheme]) is None:
        raise BackendError(f"--quantize {scheme} needs {LIBRARY[scheme]}: pip install 'llama-zoo[quantize]'")


def fp8_activations(device: str) -> bool:
    """Dynamic FP8 activations need FP8 tensor cores (compute capability 8.9 or later)."""
    if device != "cuda":
        return False
    import torch

    return torch.cuda.get_device_capability() >= (8, 9)


def describe(scheme: str, device: str, backend: str = "hf") -> dict[str, str]:
    """The scheme as a run's identity records it: what changes the numbers, not library versions."""
    if backend == "vllm":  # vLLM's own in-flight schemes
        return {"scheme": scheme, "library": "vllm",
                "method": {"fp8": "dynamic per-tensor float8", "int4": "bitsandbytes NF4"}.get(scheme, scheme)}
    method = {"int8": "LLM.int8 (threshold 6.0)", "int4": "NF4, no double quantisation",
              "fp8": "float8 e4m3 weights, dynamic row-wise float8 activations" if fp8_activations(device)
              else "float8 e4m3 weights, weight-only"}[scheme]
    return {"scheme": scheme, "library": LIBRARY[scheme], "method": method}


def config(scheme: str, device: str, dtype) -> Any:
    """The transformers quantization config for ``from_pretrained``."""
    check(scheme)
    if scheme in ("int8", "int4"):
        from transformers import BitsAndBytesConfig

        if scheme == "int8":
            # LLM.int8 computes in fp16 whatever the run's dtype, and says so on every matmul
            warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, Float8WeightOnlyConfig, PerRow
    from transformers import TorchAoConfig

    if fp8_activations(device):
        return TorchAoConfig(Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
    return TorchAoConfig(Float8WeightOnlyConfig())
