"""``--device-map``: a model spread over the machine's GPUs (and, past them, the CPU), layer by
layer, by accelerate: whole decoder layers per device (transformers' ``_no_split_modules``), in
order (``sequential``: fill GPU 0 first) or evened out (``auto``/``balanced``).

A checkpoint gets its map from ``from_pretrained(device_map=...)``; a model built in memory (a
shadow, random weights) from ``device_map_for`` and ``accelerate.dispatch_model``. Inputs go to
the first device; accelerate's hooks carry activations from device to device.
"""

from __future__ import annotations

from typing import Any

STRATEGIES = ("auto", "balanced", "sequential")


def device_map_for(model, strategy: str, max_memory: dict[Any, float] | None = None, dtype=None) -> dict[str, Any]:
    """Module name -> device for ``model`` (it may sit on the meta device) within ``max_memory``
    (device -> bytes; default: what accelerate finds free)."""
    from accelerate import infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    no_split = list(getattr(model, "_no_split_modules", None) or [])
    if strategy in ("auto", "balanced"):
        max_memory = get_balanced_memory(model, max_memory=max_memory, no_split_module_classes=no_split, dtype=dtype)
    return infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split, dtype=dtype)


def dispatch(model, strategy: str):
    """An in-memory model spread over the visible GPUs; with one GPU, whole on it."""
    import torch

    if torch.cuda.device_count() < 2:
        return model.to("cuda")
    from accelerate import dispatch_model

    return dispatch_model(model, device_map=device_map_for(model, strategy, dtype=model.dtype))


def devices_used(model) -> list[str]:
    """The devices a loaded model's parameters sit on, for the run's provenance."""
    mapped = getattr(model, "hf_device_map", None)
    if mapped:
        return [str(d) for d in dict.fromkeys(mapped.values())]
    return sorted({str(p.device) for p in model.parameters()})
