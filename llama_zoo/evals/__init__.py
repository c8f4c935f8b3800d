"""Evaluation suites: what is asked and how it is scored, looked up by name."""

from llama_zoo.plugins import PluginTable

# One line per suite; third-party suites register under the entry-point group below.
SUITES = PluginTable("suite", "llama_zoo.suites", {
    "perplexity": "llama_zoo.evals.perplexity:suite",
    "humaneval": "llama_zoo.evals.code.humaneval:suite",
    "humaneval-infilling": "llama_zoo.evals.code.infilling:suite",
    "bench": "llama_zoo.evals.speed:suite",
    "guard": "llama_zoo.evals.safety.guard:suite",
    "prompt-guard": "llama_zoo.evals.safety.prompt_guard:suite",
    "refusal": "llama_zoo.evals.safety.refusal:suite",
    "insecure-code": "llama_zoo.evals.safety.insecure_code:suite",
    "vqa": "llama_zoo.evals.vision.vqa:suite",
    "lm-eval:TASK": "llama_zoo.evals.lm_eval_tasks:family",
})
DEFAULT_SUITE = "perplexity"  # what `llama-zoo eval` runs without --suite


def suite_info(name: str):
    """A suite's description, or None for a suite whose plug-in is not installed here (its stored
    runs still show, unsorted and without a paired test)."""
    from llama_zoo.errors import LlamaZooError

    try:
        return SUITES.get(name).info
    except LlamaZooError:
        return None
