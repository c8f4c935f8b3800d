"""Defences in the loop: what an attacked input passes through before the model sees it.
``--defense MODEL`` screens it with a Prompt Guard 1 or 2 model (the ``prompt-guard`` suite's
scores: the attack score of the most suspicious 512-token chunk); at ``--defense-threshold`` or
above the input is blocked, which counts as a refusal of that case. The defence's identity (the
model, its weights, the threshold) is part of the run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.options import Option

DEFENSE_OPTIONS = (
    Option("defense", None, "Screen each attacked input with a Prompt Guard model before the model sees it, e.g. "
           "prompt-guard-2-86m; a blocked input counts as a refusal.", type=str),
    Option("defense_threshold", 0.5, "Block an input whose attack score is at least this.", type=float, minimum=0.0,
           maximum=1.0),
    Option("defense_weights", None, "The defence's weights: hub, shadow or a checkpoint directory (default: shadow for "
           "a shadow run, else hub).", type=str),
)


@dataclass
class Screen:
    """``scores(texts)``: each text's attack score in [0, 1]; ``threshold`` blocks; ``identity`` names it."""

    identity: dict[str, Any]
    threshold: float
    scores: Callable[[Sequence[str]], list[float]] = field(repr=False)

    def blocks(self, score: float) -> bool:
        return score >= self.threshold


def open_defense(ctx: Any) -> Screen | None:
    """The run's defence, or None; one that is not a prompt-attack classifier is refused in one line."""
    from llama_zoo.suites.safety.prompt_guard import attack_scores, chunk_requests, labels_of

    o = ctx.options
    if not o.get("defense"):
        return None
    model = ctx.open_model(o["defense"], o.get("defense_weights"))
    safety = model.spec.capabilities.safety
    if safety is None or safety.role != "prompt-attack" or model.spec.architecture is None:
        raise LlamaZooError(f"--defense {model.spec.id} is not a classifier of prompt attacks: give a Prompt Guard "
                            "model, e.g. prompt-guard-2-86m")
    labels = labels_of(model.spec)
    positions = model.spec.max_context or 512

    def scores(texts: Sequence[str]) -> list[float]:
        chunked = [chunk_requests(model.tokenizer, text, positions) for text in texts]
        answers = iter(model.runner.classify([request for chunks in chunked for request in chunks]))
        return [max(attack_scores(next(answers), labels)["score"] for _ in chunks) for chunks in chunked]

    return Screen({"kind": "prompt-guard", **model.identity, "threshold": o["defense_threshold"]},
                  o["defense_threshold"], scores)
