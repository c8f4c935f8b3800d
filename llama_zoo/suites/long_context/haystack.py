"""Haystacks, needles, and prompts of an exact length in a model's own tokens.

A haystack is prose with its whitespace collapsed to single spaces (as RULER collapses its essays),
so sentence boundaries are simply the positions after ``. ``, ``! `` or ``? `` (and where the
original's paragraphs started). Three kinds:

- ``stdlib-docs`` (default): the Python standard library's module docstrings, the same built-in
  text the perplexity suite reads (PSF licence, on every machine). About 14,000 tokens, so longer
  prompts read it again from the start: the copies are counted in each sample.
- ``noise``: RULER's repeated filler ("The grass is green. ...").
- a file (``--haystack FILE``): the user's own text, never repeated; too short is an error.

How a prompt reaches an exact length ``L`` (``fit``): the haystack is tokenized once with the
model's tokenizer (token start offsets give, for any ``n``, the text of the first ``n`` haystack
tokens, and the token position of every sentence boundary). A prompt is built from the first ``n``
haystack tokens with the needles inserted at the sentence boundary nearest to depth ``d`` (by token
position, 0 = before the first sentence, 100 = after the last token), rendered (chat template or
continuation), and encoded whole; ``n`` is corrected by the difference from ``L`` and the prompt
built again until it has exactly ``L`` tokens; where that oscillates (a cut word merging otherwise),
the cuts a few tokens either side are tried, and where the seams' merges make ``L`` itself
unreachable the closest count is taken, which must be within 1%. The haystack's end is cut at a token,
as RULER cuts its essays at a word: only the needles sit on sentence boundaries.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError

BUILTIN = "stdlib-docs"
NOISE = "noise"
NOISE_TEXT = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
TOLERANCE = 0.01  # a prompt's real token count may differ from its target by this share at most
MAX_TRIES = 12
# a sentence ends at ., ! or ? (after any closing quote or bracket) followed by a space
SENTENCE_END = re.compile(r"[.!?][\"')\]]* ")


@dataclass(frozen=True)
class Haystack:
    name: str  # stdlib-docs, noise, or the file's absolute path
    revision: str | None
    text: str  # whitespace collapsed: sentences separated by single spaces
    repeats: bool  # the built-ins are read again from the start as often as a length needs; a file is not
    # where the original's paragraphs (blank-line separated) start: boundaries too, for text such as
    # docstrings, whose lists and code examples hold no full stop for hundreds of tokens
    paragraphs: tuple[int, ...] = ()

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def collapse(text: str) -> tuple[str, tuple[int, ...]]:
    """The text with its whitespace collapsed, and where each of its paragraphs starts in it."""
    parts = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    parts = [p for p in parts if p]
    starts, at = [], 0
    for p in parts:
        starts.append(at)
        at += len(p) + 1
    return " ".join(parts), tuple(starts)


def load_haystack(value: str | None) -> Haystack:
    """``stdlib-docs`` (default), ``noise``, or a text file (UTF-8; .txt, .md or anything else read as text)."""
    if value in (None, "", BUILTIN):
        from llama_zoo.suites.perplexity.corpora import stdlib_docs

        docs = stdlib_docs()
        text, paragraphs = collapse("\n\n".join(docs.texts))
        return Haystack(BUILTIN, docs.revision, text, repeats=True, paragraphs=paragraphs)
    if value == NOISE:
        return Haystack(NOISE, None, NOISE_TEXT, repeats=True)
    path = Path(value).expanduser()
    if not path.is_file():
        raise LlamaZooError(f"--haystack {value}: no such file (give {BUILTIN}, {NOISE} or a text file)")
    try:
        text, paragraphs = collapse(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise LlamaZooError(f"--haystack {value}: not UTF-8 text") from None
    if not text:
        raise LlamaZooError(f"--haystack {value}: no text")
    return Haystack(str(path.resolve()), None, text, repeats=False, paragraphs=paragraphs)


# -- needles


@dataclass(frozen=True)
class Needle:
    key: str
    value: str  # seven digits

    @property
    def sentence(self) -> str:
        return f"One of the special magic numbers for {self.key} is: {self.value}."


# Keys are an adjective and a noun (RULER draws random words too); 64 x 64 pairs are plenty for K needles.
ADJECTIVES = (
    "abundant", "agile", "amber", "ancient", "brave", "brisk", "calm", "candid", "cheerful", "clever", "cosmic", "crimson",
    "curious", "dapper", "daring", "dusty", "eager", "earnest", "elegant", "fancy", "fearless", "fierce", "frosty",
    "gentle", "gleaming", "golden", "graceful", "hidden", "humble", "icy", "jolly", "keen", "lively", "lucky", "mellow",
    "misty", "modest", "nimble", "noble", "odd", "patient", "polite", "proud", "quiet", "rapid", "rustic", "scarlet",
    "serene", "shiny", "silent", "silver", "sleepy", "smooth", "sturdy", "sunny", "swift", "tender", "tidy", "vivid",
    "wandering", "warm", "wise", "witty", "zealous",
)
NOUNS = (
    "anchor", "apricot", "badger", "balloon", "beacon", "bicycle", "blanket", "bridge", "candle", "canyon", "castle",
    "cellar", "chimney", "clover", "comet", "compass", "cottage", "crystal", "dolphin", "drum", "falcon", "feather",
    "fiddle", "forest", "fountain", "garden", "glacier", "harbor", "helmet", "island", "jacket", "kettle", "ladder",
    "lantern", "meadow", "mirror", "mountain", "needle", "orchard", "otter", "paddle", "parrot", "pebble", "pepper",
    "piano", "pillow", "planet", "pocket", "puzzle", "quarry", "rabbit", "ribbon", "river", "saddle", "sparrow", "spoon",
    "teapot", "thimble", "tiger", "tulip", "umbrella", "valley", "violin", "walnut",
)


def draw_needles(rng, count: int) -> tuple[Needle, ...]:
    """``count`` needles with distinct keys and distinct seven-digit values."""
    keys: list[str] = []
    while len(keys) < count:
        key = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
        if key not in keys:
            keys.append(key)
    values = rng.sample(range(1_000_000, 10_000_000), count)
    return tuple(Needle(k, str(v)) for k, v in zip(keys, values))


def joined(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def question(needles: Sequence[Needle]) -> tuple[str, str, str]:
    """(the instruction before the haystack, the question after it, the answer's first words)."""
    keys = joined([n.key for n in needles])
    if len(needles) == 1:
        return ("A special magic number is hidden within the following text. Make sure to memorize it. "
                "I will quiz you about the number afterwards.",
                f"What is the special magic number for {keys} mentioned in the provided text?",
                f"The special magic number for {keys} mentioned in the provided text is")
    return ("Some special magic numbers are hidden within the following text. Make sure to memorize them. "
            "I will quiz you about the numbers afterwards.",
            f"What are the special magic numbers for {keys} mentioned in the provided text?",
            f"The special magic numbers for {keys} mentioned in the provided text are")


# -- the haystack in the model's tokens


@dataclass(frozen=True)
class TokenStream:
    """A haystack's text (read ``copies`` times, for the built-ins) with the character offset where
    each of its tokens starts and the token position of each sentence boundary."""

    text: str
    starts: tuple[int, ...]
    boundaries: tuple[int, ...]  # character offsets of sentence starts (0 included)
    boundary_tokens: tuple[int, ...]  # the token position of each
    copies: int

    @property
    def tokens(self) -> int:
        return len(self.starts)

    def cut(self, n: int, chars: int = 0) -> str:
        """The text of the first ``n`` tokens (and ``chars`` characters of the next)."""
        end = self.starts[n] + chars if n < len(self.starts) else len(self.text)
        return self.text[:end].rstrip()

    def token_chars(self, n: int) -> int:
        """How many characters token ``n`` spans."""
        return (self.starts[n + 1] if n + 1 < len(self.starts) else len(self.text)) - self.starts[n]

    def longest_sentence(self) -> int:
        """The most tokens between two sentence boundaries: how far a needle may sit from its depth."""
        edges = (*self.boundary_tokens, self.tokens)
        return max(b - a for a, b in zip(edges, edges[1:]))


def token_starts(tokenizer, text: str) -> list[int]:
    """Where each token of ``text`` starts (a fast tokenizer's offsets; else spread evenly, which the
    fitting loop corrects, since it measures every prompt it builds)."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [int(start) for start, _ in enc["offset_mapping"]]
    except (NotImplementedError, TypeError, KeyError, ValueError):
        count = len(tokenizer(text, add_special_tokens=False).input_ids)
        return [round(i * len(text) / count) for i in range(count)]


def token_stream(tokenizer, haystack: Haystack, need: int) -> TokenStream:
    """The haystack in the tokenizer's tokens, read again from the start until it has ``need``
    tokens (a built-in) or as it is (a file: ``fit`` says when it is too short)."""
    starts = token_starts(tokenizer, haystack.text)
    copies = max(1, math.ceil((need + 1) / max(1, len(starts)))) if haystack.repeats else 1
    # each copy is tokenized as the first was (a seam may merge differently by a token; every prompt is measured)
    step = len(haystack.text) + 1
    text = " ".join([haystack.text] * copies)
    all_starts = tuple(s + k * step for k in range(copies) for s in starts)
    marks = [m.end() for m in SENTENCE_END.finditer(text)]
    marks += [p + k * step for k in range(copies) for p in (0, *haystack.paragraphs)]
    marks = sorted(set(marks))
    tokens = tuple(max(0, bisect.bisect_right(all_starts, c) - 1) if c else 0 for c in marks)
    return TokenStream(text, all_starts, tuple(marks), tokens, copies)


# -- prompts


@dataclass(frozen=True)
class PromptFormat:
    """How the model is asked: an instruct model's chat template (the answer's first words after the
    assistant header) or a continuation (a base model; BOS as its tokenizer adds it)."""

    tokenizer: Any
    chat: bool

    def render(self, body: str, answer_prefix: str) -> str:
        if not self.chat:
            return f"{body} {answer_prefix}"
        # transformers 5 returns a mapping when it tokenizes: render the text, then encode it
        rendered = self.tokenizer.apply_chat_template([{"role": "user", "content": body}], add_generation_prompt=True,
                                                      tokenize=False)
        return rendered + answer_prefix

    def encode(self, text: str) -> tuple[list[int], list[int] | None]:
        """The ids (special tokens as the format wants them) and where each token starts, if known."""
        special = not self.chat  # a rendered chat carries its own BOS
        try:
            enc = self.tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
            return list(enc["input_ids"]), [int(s) for s, _ in enc["offset_mapping"]]
        except (NotImplementedError, TypeError, KeyError, ValueError):
            return list(self.tokenizer(text, add_special_tokens=special).input_ids), None

    def tokens_before(self, text: str, position: int, starts: list[int] | None) -> int:
        """The token position at which character ``position`` of ``text`` falls."""
        if starts is not None:
            return max(0, bisect.bisect_right(starts, position) - 1)
        return len(self.encode(text[:position])[0])


@dataclass(frozen=True)
class Built:
    """A prompt of (about) the target length, and where its needles and haystack lie in its tokens."""

    text: str
    ids: tuple[int, ...]
    haystack_tokens: int  # haystack tokens asked for (n)
    needle_tokens: tuple[int, ...]  # the token position of each needle's start
    needles_end: int  # the token position just after the last needle
    context_span: tuple[int, int]  # the haystack with its needles, in token positions [start, end)
    copies: int  # how many times the haystack text was read to this length (built-ins)

    @property
    def depths(self) -> tuple[float, ...]:
        """Each needle's real depth: the share, in percent, of the haystack's own tokens (the needles'
        left out) that come before it."""
        start, end = self.context_span
        hay = end - start - (self.needles_end - self.needle_tokens[0])
        before = self.needle_tokens[0] - start  # the K needles sit together: the haystack before the first
        return tuple(round(100 * before / max(1, hay), 3) for _ in self.needle_tokens)


def place(stream: TokenStream, n: int, depth: float, end: int) -> int:
    """The character offset, in the first ``n`` haystack tokens (``end`` characters), of the
    sentence boundary nearest to ``depth`` percent by token position (the haystack's end counts as one)."""
    target = depth / 100 * n
    options = [(c, t) for c, t in zip(stream.boundaries, stream.boundary_tokens) if c < end] + [(end, n)]
    return min(options, key=lambda ct: (abs(ct[1] - target), ct[1]))[0]


def assemble(fmt: PromptFormat, stream: TokenStream, n: int, depth: float, needles: Sequence[Needle],
             chars: int = 0) -> Built:
    hay = stream.cut(n, chars)
    at = place(stream, n, depth, len(hay))
    hidden = " ".join(x.sentence for x in needles)
    context = " ".join(part for part in (hay[:at].rstrip(), hidden, hay[at:].lstrip()) if part)
    intro, ask, prefix = question(needles)
    body = f"{intro}\n{context}\n{ask}"
    text = fmt.render(body, prefix)
    ids, starts = fmt.encode(text)
    context_at = text.index(body) + len(intro) + 1
    first = context_at + context.index(hidden)
    marks = [first + len(hidden[:hidden.index(x.sentence)]) for x in needles]
    span = (fmt.tokens_before(text, context_at, starts), fmt.tokens_before(text, context_at + len(context), starts))
    return Built(text, tuple(ids), n, tuple(fmt.tokens_before(text, m, starts) for m in marks),
                 fmt.tokens_before(text, first + len(hidden), starts), span, stream.copies)


def fit(fmt: PromptFormat, stream: TokenStream, length: int, depth: float, needles: Sequence[Needle],
        haystack_name: str) -> Built:
    """The prompt of ``length`` tokens (see the module's docstring); a LlamaZooError where the
    haystack is too short or the length too small for the question alone."""
    bare = assemble(fmt, stream, 0, depth, needles)
    if len(bare.ids) > length:
        raise LlamaZooError(f"--lengths {length}: the question and needles alone take {len(bare.ids)} tokens")
    n = length - len(bare.ids)
    if n > stream.tokens:
        raise LlamaZooError(f"--haystack {haystack_name}: {stream.tokens:,} tokens of text, too short for length "
                            f"{length:,} (it needs about {n:,}); give a longer file or shorter --lengths")
    best, tried = bare, set()
    for _ in range(MAX_TRIES):
        tried.add(n)
        built = assemble(fmt, stream, n, depth, needles)
        diff = length - len(built.ids)
        if abs(diff) < abs(length - len(best.ids)):
            best = built
        if diff == 0:
            break
        step = n + diff if n + diff not in tried else n + (1 if diff > 0 else -1)
        if step in tried or not 0 <= step <= stream.tokens:
            break
        n = step
    if len(best.ids) != length:
        best = _closer(fmt, stream, length, depth, needles, best, tried)
    return _checked(best, length, haystack_name)


def _closer(fmt, stream, length, depth, needles, best: Built, tried: set[int]) -> Built:
    """Where one more haystack token adds two to the prompt (a cut word merges otherwise): the cuts
    a few tokens either side, then cuts inside a token, character by character."""
    base = best.haystack_tokens
    tries = [(near, 0) for near in (base + d for d in (1, -1, 2, -2)) if near not in tried and 0 <= near < stream.tokens]
    tries += [(n, c) for n in (base - 1, base) if 0 <= n < stream.tokens for c in range(1, min(stream.token_chars(n), 12))]
    for n, chars in tries:
        built = assemble(fmt, stream, n, depth, needles, chars)
        if abs(length - len(built.ids)) < abs(length - len(best.ids)):
            best = built
        if len(best.ids) == length:
            break
    return best


def _checked(best: Built, length: int, haystack_name: str) -> Built:
    if abs(len(best.ids) - length) > TOLERANCE * length:
        raise LlamaZooError(f"could not build a {length}-token prompt from --haystack {haystack_name} "
                            f"(closest: {len(best.ids)} tokens)")
    return best
