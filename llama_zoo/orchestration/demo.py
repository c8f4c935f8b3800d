"""What ``llama-zoo demo`` runs: shadow models of several families through every suite that
evaluates quality, small enough for a CPU in a few minutes, and the comparison its report shows."""

from __future__ import annotations

from llama_zoo.orchestration.loop import RunRequest

JOBS = (
    *(RunRequest(m, "perplexity", limit=3, context=256) for m in ("llama-2-7b", "llama-3.2-1b", "code-llama-7b")),
    *(RunRequest(m, "humaneval", {"max_new_tokens": 24}, limit=4) for m in ("code-llama-7b", "llama-3.2-1b")),
    *(RunRequest("code-llama-7b", "humaneval-infilling", {"subset": s, "fim_mode": f, "max_new_tokens": 16}, limit=4)
      for s in ("single-line", "multi-line") for f in ("psm", "spm")),
)
COMPARISON = ("llama-2-7b", "code-llama-7b", "perplexity")  # A, B, suite


def label(job: RunRequest) -> str:
    return " · ".join([job.model, job.suite, *(str(v) for k, v in job.suite_options.items() if k != "max_new_tokens")])
