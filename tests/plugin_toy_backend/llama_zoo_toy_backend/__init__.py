"""A third-party backend in one module: a byte bigram model with add-k smoothing, counted from a
fixed text when the runner is built. It scores token windows and generates greedily, so suites
that build those requests (perplexity, for one) run on it end to end; it computes on the CPU in
float64 and needs nothing beyond llama-zoo.

Its tokenizer is its own (one token per UTF-8 byte, then BOS and EOS): a token backend declares
``inputs=TOKENS`` and hands the loop, through ``load_tokenizer``, the tokenizer suites build their
requests with. It has no weights of a real model, so it runs only as a stand-in (``--shadow``)."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.options import Option
from llama_zoo.backends.base import TOKENS, BackendInfo, GenerateRequest, Generation, TokenWindow, cut_at_stop

TRAINING_TEXT = (
    "The llama is a domesticated South American camelid, widely used as a meat and pack animal by Andean "
    "cultures since the pre-Columbian era. Llamas are social animals and live with others as a herd. "
    "Their wool is soft and contains only a small amount of lanolin. Llamas can learn simple tasks after "
    "a few repetitions. When using a pack, they can carry about 25 to 30 percent of their body weight "
    "for 8 to 13 km. The name llama was adopted by European settlers from native Peruvians.\n"
    "def add(a, b):\n    return a + b\n\n"
    "A language model assigns a probability to every sequence of tokens; perplexity is the exponential "
    "of the mean negative log-likelihood of a text under the model, so lower is better.\n"
)
BOS, EOS = 256, 257


class ByteTokenizer:
    """One token per UTF-8 byte (ids 0-255), BOS 256 and EOS 257: the methods suites call."""

    bos_token_id, eos_token_id, pad_token_id = BOS, EOS, None
    chat_template = None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([BOS] if add_special_tokens else []) + list(text.encode("utf-8"))

    def __call__(self, text: str, add_special_tokens: bool = True) -> "_Encoding":
        return _Encoding(self.encode(text, add_special_tokens))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def get_vocab(self) -> dict[str, int]:
        return {**{f"<0x{i:02X}>": i for i in range(256)}, "<s>": BOS, "</s>": EOS}

    def __len__(self) -> int:
        return 258


class _Encoding:
    def __init__(self, ids: list[int]):
        self.input_ids = ids


class ByteBigramBackend:
    info = BackendInfo(
        name="toy", summary="A toy plug-in backend: a byte bigram model counted from a fixed text (CPU, float64).",
        inputs=TOKENS, answers=frozenset({TokenWindow, GenerateRequest}), chunk_requests=32,
        options=(Option("toy_smoothing", 0.5, "Add-k smoothing of the bigram counts.", minimum=0.001),),
        identity_options=("toy_smoothing",),  # it changes every score: part of the run's identity
    )

    @classmethod
    def resolve(cls, device: str, dtype: str) -> tuple[str, str]:
        if device not in ("auto", "cpu") or dtype not in ("auto", "float64"):
            raise LlamaZooError("--backend toy computes on the CPU in float64: drop --device and --dtype")
        return "cpu", "float64"

    @classmethod
    def load_tokenizer(cls, spec, source, tokenizer: str | None = None) -> tuple[Any, str]:
        if source.kind != "shadow":
            raise LlamaZooError("--backend toy has no weights of a real model: pass --shadow")
        if tokenizer:
            raise LlamaZooError("--backend toy tokenizes bytes itself: drop --tokenizer")
        return ByteTokenizer(), "toy:bytes"

    def __init__(self, spec, source, *, device: str = "auto", dtype: str = "auto", batch_size: int | None = None,
                 max_length: int | None = None, tokenizer: str | None = None,
                 loaded_tokenizer: tuple[Any, str] | None = None, options: dict[str, Any] | None = None):
        self.smoothing = self.info.resolve_options(options or {})["toy_smoothing"]
        self.spec, self.source, self.model_id = spec, source, spec.id
        self.max_length = max_length or spec.max_context or 2048
        self.tokenizer, self.tokenizer_source = loaded_tokenizer or self.load_tokenizer(spec, source, tokenizer)
        ids = self.tokenizer.encode(TRAINING_TEXT) + [EOS]
        self.pairs = Counter(zip(ids, ids[1:]))
        self.firsts = Counter(ids[:-1])
        self.vocabulary = len(self.tokenizer)

    def logprob(self, previous: int, token: int) -> float:
        """log P(token | previous), add-k smoothed over the whole vocabulary."""
        k = self.smoothing
        return math.log((self.pairs[previous, token] + k) / (self.firsts[previous] + k * self.vocabulary))

    def loglikelihood_rolling(self, windows: Sequence[TokenWindow]) -> list[list[float]]:
        out = []
        for w in windows:
            seq = list(w.context) + list(w.targets)
            first = len(w.context)
            out.append([self.logprob(seq[i - 1], seq[i]) for i in range(first, len(seq))])
        return out

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        """Greedy: the most frequent successor of the last token (the lowest id on a tie); the n
        completions of a request are the same."""
        out = []
        for req in requests:
            tokens: list[int] = []
            last = req.prompt[-1]
            while len(tokens) < req.max_new_tokens:
                last = max(range(self.vocabulary), key=lambda t: (self.pairs[last, t], -t))
                if last in req.stop_token_ids and not req.ignore_eos:
                    break
                tokens.append(last)
            text = self.tokenizer.decode(tokens)
            text = text if req.ignore_eos else cut_at_stop(text, req.stop_strings)
            out.append(Generation(texts=[text] * req.n, new_tokens=[len(tokens)] * req.n,
                                  tokens=[list(tokens) for _ in range(req.n)]))
        return out

    def provenance(self) -> dict[str, Any]:
        return {"backend": self.info.name, "weights_source": self.source.kind, "smoothing": self.smoothing,
                "training_text_sha256": hashlib.sha256(TRAINING_TEXT.encode()).hexdigest(),
                "tokenizer_source": self.tokenizer_source, "dtype": "float64", "device_name": "cpu"}
