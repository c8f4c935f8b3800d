"""The protocol between suites and backends: a few request types, as in lm-eval.

Suites build requests from a dataset and score what comes back; they never import a backend.
Token ids travel, not text, wherever windows matter: a suite decides how a text is cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from llama_zoo.errors import LlamaZooError


class RunnerError(LlamaZooError):
    pass


@dataclass(frozen=True)
class TokenWindow:
    """Score ``targets`` given ``context``: the model reads context + targets[:-1] and predicts targets."""

    context: Sequence[int]
    targets: Sequence[int]

    def __post_init__(self) -> None:
        if not self.context or not self.targets:
            raise ValueError("a window needs at least one context token and one target")

    @property
    def length(self) -> int:
        return len(self.context) + len(self.targets) - 1


@dataclass(frozen=True)
class GenerateRequest:
    """Continue a prompt. Token backends read ``prompt`` (ids, special tokens included as the suite
    wants them); text backends read ``messages`` (a chat) or else ``text``."""

    prompt: Sequence[int]
    max_new_tokens: int = 256
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    ignore_eos: bool = False  # exactly max_new_tokens, no stop at all (speed measurements)
    text: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content) pairs


@dataclass(frozen=True)
class GenerateWithImageRequest:
    image: Any  # a PIL image
    prompt: str  # text with the model's image placeholder where the image goes
    generation: GenerateRequest = field(default_factory=lambda: GenerateRequest(prompt=()))


@dataclass(frozen=True)
class NextTokenRequest:
    """Log-probabilities of chosen next tokens after a prompt (Llama Guard's 'safe' / 'unsafe')."""

    prompt: Sequence[int]
    candidates: Sequence[int]


@dataclass(frozen=True)
class ClassifyRequest:
    """Class log-probabilities (natural log, softmax at temperature 1) of a sequence classifier
    (Prompt Guard) for one input of token ids, special tokens included as the suite wants them."""

    tokens: Sequence[int]


@dataclass(frozen=True)
class Generation:
    texts: list[str]  # n completions, stop strings cut off
    new_tokens: list[int]  # tokens generated for each
    tokens: list[list[int]] = field(default_factory=list)  # the generated ids, up to a stop token


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the first of ``stops`` it contains (all of it if none)."""
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text


# The runner method that answers each request type: the loop hands a runner all requests of one type at once.
METHOD_FOR: dict[type, str] = {
    TokenWindow: "loglikelihood_rolling",
    GenerateRequest: "generate",
    GenerateWithImageRequest: "generate_with_image",
    NextTokenRequest: "next_token_scores",
    ClassifyRequest: "classify",
}

TOKENS, TEXT = "tokens", "text"


@runtime_checkable
class Runner(Protocol):
    """What every backend offers. ``max_length`` is the longest window it scores.

    A backend class also declares, as class attributes, ``backend`` (its name), ``inputs``
    (``TOKENS``: it takes token ids and the run's tokenizer is the one it uses; ``TEXT``: it takes
    text and tokenizes on its own, like an OpenAI-compatible server), ``summary`` (one line for
    ``--help``), and offers ``resolve(device, dtype) -> (device, dtype)``, a classmethod that says
    what a run will really use without loading anything (both are part of a run's identity).
    """

    model_id: str
    max_length: int
    tokenizer: Any

    def loglikelihood_rolling(self, windows: Sequence[TokenWindow]) -> list[list[float]]:
        """Per-token log-probabilities of each window's targets (natural log)."""

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]: ...

    def generate_with_image(self, requests: Sequence[GenerateWithImageRequest]) -> list[Generation]: ...

    def next_token_scores(self, requests: Sequence[NextTokenRequest]) -> list[list[float]]: ...

    def classify(self, requests: Sequence[ClassifyRequest]) -> list[list[float]]: ...

    def provenance(self) -> dict[str, Any]:
        """What a run must record about how this model was loaded and run."""
