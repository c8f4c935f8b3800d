"""Speed facts for the bench suite: FLOPs per token, the device's measured matmul peak, peak memory."""

from __future__ import annotations

from typing import Any

from llama_zoo.backends.hf.common import without_autograd


class Timing:
    """``HFBackend``'s ``speed_facts``; the runner sets spec, source, model, device and dtype."""

    spec: Any
    source: Any
    model: Any
    device: str
    dtype: Any

    @without_autograd
    def speed_facts(self, context: int) -> dict[str, Any]:
        """Forward FLOPs per scored token at mid-context, the device's measured dense matmul peak in
        this dtype (the ceiling model-FLOP utilisation is quoted against) and peak GPU memory."""
        import torch

        from llama_zoo.registry import derive

        flops = (derive.flops_per_token(self.spec, context // 2) if self.source.kind == "random"
                 else _loaded_flops(self.model, context))
        return {"model_flops_per_token": flops, "matmul_peak_flops": _matmul_peak_flops(self.device, self.dtype),
                "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if self.device == "cuda" else None}



def _matmul_peak_flops(device: str, dtype, min_s: float = 1.0) -> float:
    """Dense square matmuls, ten at a time for at least ``min_s`` after a warm-up. 2048 on a CPU is
    large enough to reach its peak (4096 took ten seconds a run there), 4096 on a GPU."""
    import time

    import torch

    size = 4096 if device == "cuda" else 2048
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    start, repeats = time.perf_counter(), 0
    while not repeats or time.perf_counter() - start < min_s:
        for _ in range(10):  # a GPU is synchronised once per ten: its launch latency stays out of the peak
            a @ b
        _sync(device)
        repeats += 10
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _loaded_flops(model, context: int) -> float:
    """FLOPs per token of a loaded model that has no registry entry of its size (a shadow): its
    matmul weights (the output projection counted even when tied) and attention at mid-context."""
    params = sum(p.numel() for p in model.parameters())
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    matmul = params - embed.numel() + (head.numel() if head is embed else 0)
    text = model.config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2.0 * matmul + 4.0 * text.num_hidden_layers * (context // 2) * text.num_attention_heads * head_dim
