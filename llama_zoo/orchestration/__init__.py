"""Orchestration: the one loop that takes any suite through any backend into the results store."""

from llama_zoo.orchestration.loop import Kept, Outcome, RunRequest, evaluate

__all__ = ["Kept", "Outcome", "RunRequest", "evaluate"]
