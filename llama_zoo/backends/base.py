"""The protocol between suites and backends: a few request types, as in lm-eval.

Suites build requests from a dataset and score what comes back; they never import a backend.
Token ids travel, not text, wherever windows matter: a suite decides how a text is cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.options import Option

if TYPE_CHECKING:
    from llama_zoo.registry.schema import ModelSpec


class BackendError(LlamaZooError):
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
    # OpenAI-style tools as JSON text, for a server that parses the calls itself (text backends);
    # the answer's text is then {"content": ..., "tool_calls": [{name: arguments JSON}, ...]}
    tools: str | None = None


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
PLACEMENTS = ("quantize", "device_map", "tensor_parallel")  # how a checkpoint is loaded and spread (RunRequest fields)


@dataclass(frozen=True)
class BackendInfo:
    """A backend described as data, as ``SuiteInfo`` describes a suite: the loop, the CLI and the
    docs read this and never probe the class.

    ``inputs``: ``TOKENS`` (it takes token ids, and the run's tokenizer is the one it uses) or
    ``TEXT`` (it tokenizes on its own, as an OpenAI-compatible server does: token-id suites refuse
    it and no tokenizer is loaded). ``answers``: the request types it has a method for (see
    ``METHOD_FOR``). ``server``: its weights are wherever a server serves them from (the class then
    offers ``weights_source(spec, options)``); otherwise the loop picks them (hub, --weights,
    --shadow, --random-weights). ``placement``: which of ``PLACEMENTS`` it takes; ``quantize``: the
    ``--quantize`` schemes it takes (each still checked by ``check_quantize`` where a library is
    needed). ``chunk_requests``: requests the loop hands over per call (``chunk_requests_on`` per
    resolved device where that differs). ``options``: its own typed options, refused for any other
    backend; ``identity_options`` names those that change results (part of the run's identity).
    """

    name: str
    summary: str
    inputs: str
    answers: frozenset[type]
    server: bool = False
    placement: frozenset[str] = frozenset()
    quantize: tuple[str, ...] = ()
    chunk_requests: int = 256
    chunk_requests_on: Mapping[str, int] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    identity_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.inputs not in (TOKENS, TEXT):
            raise ValueError(f"backend {self.name}: inputs must be {TOKENS!r} or {TEXT!r}, not {self.inputs!r}")
        unknown = {kind for kind in self.answers if kind not in METHOD_FOR} | (set(self.placement) - set(PLACEMENTS))
        if unknown:
            raise ValueError(f"backend {self.name}: unknown request types or placements {sorted(map(str, unknown))}")
        if bool(self.quantize) != ("quantize" in self.placement):
            raise ValueError(f"backend {self.name}: quantize schemes go with 'quantize' in placement")
        names = {o.name for o in self.options}
        if not set(self.identity_options) <= names:
            raise ValueError(f"backend {self.name}: identity_options {sorted(set(self.identity_options) - names)} "
                             "are not among its options")

    def chunk_for(self, device: str | None) -> int:
        return self.chunk_requests_on.get(device or "", self.chunk_requests)

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Its options, defaults filled in and each value checked; one it does not declare is refused
        (the loop names the backends that do take it, in its one-line message)."""
        mine = {o.name: o for o in self.options}
        for name in given:
            if name not in mine:
                raise LlamaZooError(f"{_flag(name)} is not an option of --backend {self.name}"
                                    + (f" (its options: {', '.join(o.flag for o in self.options)})" if self.options else ""))
        return {name: (option.default if given.get(name) is None else option.checked(given[name]))
                for name, option in mine.items()}

    def identity(self, resolved: Mapping[str, Any]) -> dict[str, Any]:
        """The options that change results, as the run's identity stores them."""
        return {name: resolved[name] for name in self.identity_options}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def ask(runner: "Backend", kind: type, requests: list[Any]) -> list[Any]:
    """The runner's answers to ``requests`` (all of type ``kind``), through the method for that type."""
    if kind is TokenWindow:
        return runner.loglikelihood_rolling(requests)
    if kind is GenerateRequest:
        return runner.generate(requests)
    if kind is GenerateWithImageRequest:
        return runner.generate_with_image(requests)
    if kind is NextTokenRequest:
        return runner.next_token_scores(requests)
    if kind is ClassifyRequest:
        return runner.classify(requests)
    raise TypeError(f"no runner method answers {kind.__name__}")


class Backend(Protocol):
    """What every backend offers: its description (``info``), what a run will use before anything
    loads (``resolve``, ``load_tokenizer``), the methods for the request types ``info.answers``
    names, and what it reports about how it ran (``provenance``).

    The loop builds one as ``Backend(spec, source, device=, dtype=, batch_size=, max_length=,
    tokenizer=, loaded_tokenizer=, options=, **placement)``: ``options`` its own options resolved
    (``info.resolve_options``), ``placement`` only the ``info.placement`` keywords the run sets.
    """

    info: ClassVar[BackendInfo]
    model_id: str
    max_length: int  # the longest window it scores
    tokenizer: Any  # the run's tokenizer (None for a text backend)

    @classmethod
    def resolve(cls, device: str, dtype: str) -> tuple[str, str]:
        """The device and dtype a run will really use, without loading anything (part of its identity)."""
        ...

    @classmethod
    def load_tokenizer(cls, spec: ModelSpec, source: Any, tokenizer: str | None = None) -> tuple[Any, str]:
        """The tokenizer that will run and where it came from (a token backend; ``tokenizer`` is --tokenizer)."""
        ...

    @classmethod
    def check_quantize(cls, scheme: str) -> None:
        """Refuse, before anything loads, a scheme of ``info.quantize`` it cannot run here (a library
        missing). Called only when ``info.placement`` holds ``quantize``."""
        ...

    def loglikelihood_rolling(self, windows: Sequence[TokenWindow]) -> list[list[float]]:
        """Per-token log-probabilities of each window's targets (natural log)."""
        ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]: ...

    def generate_with_image(self, requests: Sequence[GenerateWithImageRequest]) -> list[Generation]: ...

    def next_token_scores(self, requests: Sequence[NextTokenRequest]) -> list[list[float]]: ...

    def classify(self, requests: Sequence[ClassifyRequest]) -> list[list[float]]: ...

    def provenance(self) -> dict[str, Any]:
        """What a run must record about how this model was loaded and run."""
        ...


class ServerBackend(Backend, Protocol):
    """A backend whose ``info.server`` is true: the weights are the served model's."""

    @classmethod
    def weights_source(cls, spec: ModelSpec, options: Mapping[str, Any]) -> Any:
        """The server and the model it serves (a ``WeightsSource`` of kind ``server``), asked before a run starts."""
        ...
