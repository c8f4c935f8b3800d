"""The perplexity suite: how well a model predicts a text, under three protocols.

- ``gptq``: the test set joined with blank lines, tokenised once (BOS included), cut into
  context-length chunks, the tail dropped; every token of a chunk but the first is scored. This is
  the protocol behind published Llama perplexities (WikiText-2, 2048 context).
- ``rolling``: lm-eval's ``loglikelihood_rolling``, document by document: the tokenizer's own
  encoding (a Llama tokenizer's BOS included, as lm-eval 0.4 does), conditioned on one BOS prefix,
  cut into disjoint windows of the context length, each conditioned on one token of history.
- ``sliding``: per document, overlapping windows moved by ``stride``: every token is scored once,
  with at least context - stride tokens of history after the first window.

Token perplexity depends on the tokenizer; word and byte perplexity and bits per byte normalise
by the words and UTF-8 bytes of the original text (as lm-eval counts them), which is what makes
models with 32K and 128K vocabularies comparable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.base import (BYTES_PER_TOKEN, Chart, Context, Emit, Item, Option, PairedBootstrap, Plan, Ratio,
                                  Sample, SuiteInfo, Work, require_language_model)
from llama_zoo.suites.core.stats import bootstrap_ratio_ci
from llama_zoo.backends.base import TokenWindow

SUITE = "perplexity"
SUITE_VERSION = "1"
PROTOCOLS = ("gptq", "rolling", "sliding")
KEEP_INPUT_CHARS = 20_000  # longer documents are stored by reference only


def count_words(text: str) -> int:
    return len(re.split(r"\s+", text))


def count_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass(frozen=True)
class Unit:
    """What is scored and stored as one sample: a document, or a chunk under ``gptq``."""

    index: int
    ref: str
    text: str  # what words and bytes are counted from
    windows: list[TokenWindow]

    @property
    def tokens(self) -> int:
        return sum(len(w.targets) for w in self.windows)


def rolling_windows(tokens: Sequence[int], prefix: int, max_len: int) -> list[TokenWindow]:
    """Disjoint windows covering ``tokens``: the first conditioned on ``prefix``, each later one on
    the single token before it (context_len=1 in lm-eval's terms)."""
    if not tokens:
        return []
    first = min(max_len, len(tokens))
    windows = [TokenWindow([prefix], list(tokens[:first]))]
    done = first
    while done < len(tokens):
        n = min(len(tokens) - done, max_len)
        end = done + n
        history = tokens[end - max_len - 1:end - 1]
        windows.append(TokenWindow(list(history[:len(history) - (n - 1)]), list(tokens[end - n:end])))
        done = end
    return windows


def sliding_windows(tokens: Sequence[int], prefix: int, max_len: int, stride: int) -> list[TokenWindow]:
    seq = [prefix, *tokens]
    windows, scored_to = [], 1  # seq[0] is the prefix: never a target
    for begin in range(0, len(seq) - 1, stride):
        end = min(begin + max_len + 1, len(seq))  # the model reads seq[begin:end-1]
        first = max(scored_to, begin + 1)
        if first < end:
            windows.append(TokenWindow(seq[begin:first], seq[first:end]))
            scored_to = end
        if end == len(seq):
            break
    return windows


def prefix_token(tokenizer) -> int:
    if tokenizer.bos_token_id is not None:
        return tokenizer.bos_token_id
    return tokenizer.eos_token_id


def build_units(protocol: str, texts: Sequence[str], tokenizer, context: int, stride: int | None = None,
                limit: int | None = None) -> list[Unit]:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    if protocol == "gptq":
        ids = tokenizer("\n\n".join(texts)).input_ids
        chunks = len(ids) // context
        units = []
        for i in range(chunks if limit is None else min(chunks, limit)):
            chunk = ids[i * context:(i + 1) * context]
            units.append(Unit(i, f"chunk {i}", tokenizer.decode(chunk[1:]), [TokenWindow([chunk[0]], chunk[1:])]))
        return units
    prefix = prefix_token(tokenizer)
    units = []
    for i, text in enumerate(texts if limit is None else texts[:limit]):
        if protocol == "rolling":
            windows = rolling_windows(tokenizer(text).input_ids, prefix, context)
        else:
            tokens = tokenizer(text, add_special_tokens=False).input_ids
            windows = sliding_windows(tokens, prefix, context, stride or context // 2)
        if windows:
            units.append(Unit(i, f"document {i}", text, windows))
    return units


def unit_sample(unit: Unit, logprobs: Iterable[Sequence[float]]) -> Sample:
    """What is stored for one unit; the metrics are computed from these alone (so a resumed run
    gives the same numbers as an uninterrupted one)."""
    total = float(sum(sum(window) for window in logprobs))
    return Sample(unit.index, input=unit.text if len(unit.text) <= KEEP_INPUT_CHARS else None, input_ref=unit.ref,
                  scores={"logprob": total, "tokens": unit.tokens, "words": count_words(unit.text),
                          "bytes": count_bytes(unit.text)})


def metrics(scores: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Token, word and byte perplexity and bits per byte, each with a 95% bootstrap CI over units."""
    nll = np.array([-s["logprob"] for s in scores])
    out = []
    for name, key, transform in (
        ("token_perplexity", "tokens", np.exp),
        ("word_perplexity", "words", np.exp),
        ("byte_perplexity", "bytes", np.exp),
        ("bits_per_byte", "bytes", lambda x: x / math.log(2)),
    ):
        counts = np.array([s[key] for s in scores], dtype=np.float64)
        value = float(transform(nll.sum() / counts.sum()))
        ci = bootstrap_ratio_ci(nll, counts, transform, seed=seed)
        out.append({"name": name, "value": value, "ci_low": ci[0] if ci else None,
                    "ci_high": ci[1] if ci else None, "n": len(scores),
                    "extra": {"nll": float(nll.sum()), key: int(counts.sum())}})
    return out


# --------------------------------------------------------------------------- the suite


class PerplexitySuite:
    info = SuiteInfo(
        name=SUITE, version=SUITE_VERSION, meant_for="generalist",
        summary="How well a model predicts a text: token, word and byte perplexity and bits per byte.",
        headline="word_perplexity", lower_is_better=True,
        setup_keys=("protocol", "context", "stride", "limit"),
        paired=PairedBootstrap((
            Ratio("token_perplexity", "-logprob", "tokens", "exp"),
            Ratio("word_perplexity", "-logprob", "words", "exp"),
            Ratio("byte_perplexity", "-logprob", "bytes", "exp"),
            Ratio("bits_per_byte", "-logprob", "bytes", "bits"),
        )),
        charts=(Chart("metric_vs_params", "word_perplexity", log_y=True),),
        datasets="stdlib-docs (built in; default), wikitext-2 (hub), or a .txt/.jsonl file or directory",
        options=(
            Option("protocol", "rolling", "gptq (published Llama numbers), rolling (lm-eval's), or sliding.",
                   choices=PROTOCOLS),
            Option("stride", None, "Sliding protocol: tokens between window starts (default context/2).", type=int, minimum=1),
        ),
    )

    def check(self, spec, options) -> None:
        require_language_model(spec, SUITE)

    def plan(self, ctx: Context) -> Plan:
        from llama_zoo.suites.perplexity.corpora import load_documents

        protocol, context = ctx.options["protocol"], ctx.context
        if protocol == "sliding" and ctx.options["stride"] is not None and not 0 < ctx.options["stride"] <= context:
            raise LlamaZooError(f"--stride must be between 1 and the context ({context})")
        docs = load_documents(ctx.dataset, ctx.dataset_revision)
        stride = (ctx.options["stride"] or context // 2) if protocol == "sliding" else None
        units = build_units(protocol, docs.texts, ctx.tokenizer, context, stride, ctx.limit)
        if not units:
            raise LlamaZooError(f"{docs.name}: nothing to score with a {context}-token context")
        options: dict[str, Any] = {"protocol": protocol}
        if stride:
            options["stride"] = stride
        return Plan(docs.name, docs.revision, docs.content_hash,
                    [Item(u.index, tuple(u.windows), u) for u in units], options)

    def work(self, ctx: Context) -> Work | None:
        """The corpus's bytes over ``BYTES_PER_TOKEN`` (a hub corpus is not fetched to plan: no
        estimate); a sliding window scores each token ``context / stride`` times."""
        from llama_zoo.suites.perplexity.corpora import WIKITEXT, load_documents

        if ctx.dataset == WIKITEXT:
            return None
        docs = load_documents(ctx.dataset)
        size = sum(len(t.encode()) for t in ctx.first(docs.texts))
        tokens = size / BYTES_PER_TOKEN
        if ctx.options["protocol"] == "sliding":
            tokens *= ctx.context / (ctx.options["stride"] or ctx.context // 2)
        return Work(round(tokens), 0, 0, f"{docs.name}: {size:,} bytes / {BYTES_PER_TOKEN:g} per token")

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        for item, logprobs in zip(items, answers):
            emit(unit_sample(item.data, logprobs))

    def metrics(self, samples, seed: int, runner=None, state=None) -> list[dict[str, Any]]:
        return metrics([s["scores"] for s in samples], seed=seed)


suite = PerplexitySuite()
