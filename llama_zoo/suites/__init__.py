"""Evaluation suites: what is asked and how it is scored, looked up by name."""

from llama_zoo.plugins import PluginTable

# One line per suite; third-party suites register under the entry-point group below.
SUITES = PluginTable("suite", "llama_zoo.suites", {
    "perplexity": "llama_zoo.suites.perplexity.suite:suite",
    "humaneval": "llama_zoo.suites.code.humaneval:suite",
    "humaneval-infilling": "llama_zoo.suites.code.infilling:suite",
    "bench": "llama_zoo.suites.speed.bench:suite",
    "guard": "llama_zoo.suites.safety.guard:suite",
    "prompt-guard": "llama_zoo.suites.safety.prompt_guard:suite",
    "refusal": "llama_zoo.suites.safety.refusal:suite",
    "insecure-code": "llama_zoo.suites.safety.insecure_code:suite",
    "prompt-injection": "llama_zoo.suites.safety.prompt_injection:suite",
    "vqa": "llama_zoo.suites.vision.vqa:suite",
    "needle": "llama_zoo.suites.long_context.needle:suite",
    "bfcl": "llama_zoo.suites.tool_calling.bfcl:suite",
    "agentdojo": "llama_zoo.suites.tool_calling.agentdojo:suite",
    "lm-eval:TASK": "llama_zoo.suites.lm_eval_tasks.suite:family",
    "meta-evals:TASK": "llama_zoo.suites.meta_evals.suite:family",
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
