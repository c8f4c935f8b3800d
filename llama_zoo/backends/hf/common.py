"""What every part of the transformers runner shares: the device and dtype a run resolves to, and
autograd turned off around the runner's own calls only."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from llama_zoo.backends.base import BackendError

_Method = TypeVar("_Method", bound=Callable[..., Any])


def without_autograd(method: _Method) -> _Method:
    """Run ``method`` with autograd off: only around the runner's own work, so that the process (a
    test, a notebook, a training script that evaluates) keeps autograd as it had it."""
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return method(*args, **kwargs)

    return run  # type: ignore[return-value]


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendError("--device cuda: no CUDA device here")
    return device


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
