"""The ``needle`` suite: needles in a haystack at every length x depth of a grid (issue #25).

Each sample hides ``--needles K`` RULER-style needles ("One of the special magic numbers for
{key} is: {value}.", random adjective-noun keys and seven-digit values drawn from ``--seed`` and
the cell) at depth ``d`` of a haystack, in a prompt of exactly ``L`` of the model's own tokens
(``haystack.fit``), and asks for the number(s); the answer's first words are part of the prompt
(a continuation for base models, after the assistant header for instruct models). The K needles
sit together at the cell's depth, so depth keeps one meaning for every K (RULER's multi-query task
scatters them).

Scoring is RULER's string match (``string_match_all``): the share of the K answers that appear
in the output, case-insensitive, after RULER's clean-up of the output; for one needle that is 1
or 0. ``passed`` is whether all K were found (McNemar in ``compare``).

Metrics: ``score`` over all samples (its ``extra`` holds every cell's score and n, which the
report's heatmap draws), ``length/L/score`` and ``depth/d/score``, and ``effective_length``: the
largest grid length L such that every grid length <= L scores at least ``--threshold`` (RULER's
effective length; 0 when the shortest length already falls below). Every interval is a 95%
percentile bootstrap over samples; effective length's resamples samples within each length (the
lengths are the design, the samples in them are drawn), and its bounds are grid lengths.
"""

from __future__ import annotations

import random
import re
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from llama_zoo.backends.base import GenerateRequest
from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.base import (BYTES_PER_TOKEN, Chart, Context, Emit, Item, McNemar, Option, PairedBootstrap,
                                        Plan, Ratio, Sample, SuiteInfo, Work, eos_ids, require_language_model)
from llama_zoo.suites.core.prompting import chats
from llama_zoo.suites.core.records import keyed_predictions
from llama_zoo.suites.core.stats import rate_metric
from llama_zoo.suites.long_context.haystack import (BUILTIN, NOISE, Built, Needle, PromptFormat, draw_needles, fit,
                                                    load_haystack, question, token_stream)

SUITE = "needle"
SUITE_VERSION = "1"
# Llama 3.1's eval_details (NIH/Multi-needle): lengths evenly spaced from 2,000 to the window, ends included
CARD_FIRST_LENGTH, CARD_STEPS = 2000, 10
DEFAULT_DEPTHS = tuple(range(0, 101, 10))
DEFAULT_THRESHOLD = 0.856  # RULER's baseline: Llama-2-7B (chat) at 4K scores 85.6
RESAMPLES = 1000


# -- scoring as RULER scores (lm-eval's ruler/common_utils.py: postprocess_pred, string_match_all/part)


def clean(output: str) -> str:
    """RULER's clean-up of a prediction: control characters become line breaks, ends stripped."""
    return re.sub(r"[\x00-\x1f]", "\n", output.strip()).strip()


def found(output: str, answers: Sequence[str]) -> int:
    text = clean(output).lower()
    return sum(a.lower() in text for a in answers)


def match_all(outputs: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """RULER's ``string_match_all``: per output, the share of its answers found; averaged over outputs."""
    return sum(found(o, a) / len(a) for o, a in zip(outputs, answers)) / len(outputs)


def match_part(outputs: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """RULER's ``string_match_part``: the best output's share of its answers, over the number of outputs."""
    return max(found(o, a) / len(a) for o, a in zip(outputs, answers)) / len(outputs)


# -- the grid


@dataclass(frozen=True)
class Grid:
    lengths: tuple[int, ...]
    depths: tuple[float, ...]
    capped: str | None = None  # why the default lengths stop below the model's window


def parse_lengths(text: str) -> tuple[int, ...]:
    """``1024,2048`` or ``4k,8K`` (k = 1024, as RULER names its lengths)."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        m = re.fullmatch(r"(\d+)([kK]?)", part)
        if not m or int(m.group(1)) < 1:
            raise LlamaZooError(f"--lengths {text}: give token counts separated by commas, such as 1024,2048 or 4k,8k")
        out.append(int(m.group(1)) * (1024 if m.group(2) else 1))
    if not out:
        raise LlamaZooError("--lengths: give at least one length")
    return tuple(sorted(set(out)))


def parse_depths(text: str | None) -> tuple[float, ...]:
    if text is None:
        return tuple(float(d) for d in DEFAULT_DEPTHS)
    out = []
    for part in (p.strip().rstrip("%") for p in text.split(",") if p.strip()):
        try:
            depth = float(part)
        except ValueError:
            raise LlamaZooError(f"--depths {text}: give percentages separated by commas, such as 0,50,100") from None
        if not 0 <= depth <= 100:
            raise LlamaZooError(f"--depths {part}: a depth is a percentage of the haystack, from 0 to 100")
        out.append(depth)
    if not out:
        raise LlamaZooError("--depths: give at least one depth")
    return tuple(sorted(set(out)))


def card_lengths(top: int) -> tuple[int, ...]:
    """The card's grid: CARD_STEPS lengths evenly spaced from 2,000 to ``top``, both included."""
    return tuple(sorted({int(round(x)) for x in np.linspace(CARD_FIRST_LENGTH, top, CARD_STEPS)}))


def grid(options: dict[str, Any], window: int | None, room: int | None, model: str = "the model") -> Grid:
    """The lengths and depths a run asks for. ``window``: the model's positions (None: unknown);
    ``room``: the longest prompt the run's ``--context`` leaves room for with the answer (None: no
    model runs here, as with a predictions file)."""
    depths = parse_depths(options.get("depths"))
    if options.get("lengths"):
        lengths = parse_lengths(options["lengths"])
        for length in lengths:
            if window is not None and length > window:
                raise LlamaZooError(f"--lengths {length}: over {model}'s {window:,}-token window (spec.max_context)")
            if room is not None and length > room:
                # the answer's tokens need positions too (llama.cpp and vLLM refuse more than the context)
                raise LlamaZooError(f"--lengths {length}: over what the run's --context leaves for a prompt ({room:,} "
                                    f"tokens, with {options['max_new_tokens']} new tokens); give --context "
                                    f"{length + options['max_new_tokens']} or more")
        return Grid(lengths, depths)
    top = min(x for x in (window, room) if x is not None) if (window or room) else None
    if top is None:
        raise LlamaZooError("--lengths: the model's window is unknown; give the lengths")
    if top < CARD_FIRST_LENGTH:
        raise LlamaZooError(f"the card's lengths start at {CARD_FIRST_LENGTH:,} tokens, over the {top:,} prompt tokens this "
                            "run allows; give --lengths (and --context)")
    capped = None
    if window is not None and top < window:
        capped = (f"needle lengths capped at {top:,} tokens by --context (the card's grid goes up to {model}'s "
                  f"{window:,}-token window); give --context {window} for all of it")
    return Grid(card_lengths(top), depths, capped)


@dataclass(frozen=True)
class Cell:
    length: int
    depth: float
    repeat: int
    needles: tuple[Needle, ...]

    @property
    def ref(self) -> str:
        """The sample's id (what a predictions file names)."""
        return f"L{self.length}/d{self.depth:g}/{self.repeat}"


def cells(g: Grid, needles: int, per_cell: int, seed: int) -> list[Cell]:
    """Every (length, depth, repeat) with its needles, drawn from the seed and the cell alone (not the
    tokenizer): two models asked with one seed look for the same numbers, so their samples pair."""
    out = []
    for length in g.lengths:
        for depth in g.depths:
            for r in range(per_cell):
                rng = random.Random(f"needle:{seed}:{length}:{depth:g}:{r}")
                out.append(Cell(length, depth, r, draw_needles(rng, needles)))
    return out


@dataclass(frozen=True)
class Task:
    cell: Cell
    built: Built | None = None  # the prompt (None: scoring a predictions file)
    answer: str | None = None  # made elsewhere (--predictions-file)


def read_predictions(path: str, by_ref: dict[str, Cell]) -> list[Task]:
    """``{id, answer}`` lines, ``id`` being a cell of the grid (``L1024/d50/0``)."""
    tasks = []
    for n, ref, answer in keyed_predictions(path, "answer", (str,), "a string"):
        if ref not in by_ref:
            raise LlamaZooError(f"{path}:{n}: id {ref!r} is no cell of the grid (ids are L<length>/d<depth>/<repeat>, "
                                "e.g. L2000/d50/0; give the run's --lengths, --depths and --seed)")
        tasks.append(Task(by_ref[ref], answer=answer))
    return tasks


# -- metrics


def effective_length(scores: dict[int, float], threshold: float) -> int:
    """The largest grid length L such that every grid length <= L scores >= threshold (0: none)."""
    best = 0
    for length in sorted(scores):
        if scores[length] < threshold:
            break
        best = length
    return best


def effective_length_ci(values: dict[int, np.ndarray], threshold: float, seed: int) -> tuple[int, int] | None:
    """Percentile bootstrap bounds of the effective length, resampling samples within each length."""
    if sum(len(v) for v in values.values()) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = {L: v[rng.integers(0, len(v), size=(RESAMPLES, len(v)))].mean(axis=1) for L, v in values.items()}
    drawn = np.array([effective_length({L: m[i] for L, m in means.items()}, threshold) for i in range(RESAMPLES)])
    return int(np.percentile(drawn, 2.5, method="lower")), int(np.percentile(drawn, 97.5, method="higher"))


def threshold_of(value: float) -> float:
    """A threshold as a share; 85.6 (RULER writes percentages) is read as 0.856."""
    return value / 100 if value > 1 else value


def metrics_of(scores: Sequence[dict[str, Any]], seed: int, threshold: float) -> list[dict[str, Any]]:
    by_length: dict[int, list[float]] = {}
    by_depth: dict[float, list[float]] = {}
    by_cell: dict[tuple[int, float], list[float]] = {}
    for s in scores:
        by_length.setdefault(s["length"], []).append(s["score"])
        by_depth.setdefault(s["depth"], []).append(s["score"])
        by_cell.setdefault((s["length"], s["depth"]), []).append(s["score"])
    overall = rate_metric("score", [s["score"] for s in scores], seed)
    overall["extra"] = {"cells": [[L, d, float(np.mean(v)), len(v)] for (L, d), v in sorted(by_cell.items())],
                        "needles": scores[0]["needles"] if scores else None}
    out = [overall]
    out += [rate_metric(f"length/{L}/score", v, seed) for L, v in sorted(by_length.items())]
    out += [rate_metric(f"depth/{d:g}/score", v, seed) for d, v in sorted(by_depth.items())]
    arrays = {L: np.asarray(v, dtype=np.float64) for L, v in by_length.items()}
    value = effective_length({L: float(v.mean()) for L, v in arrays.items()}, threshold)
    ci = effective_length_ci(arrays, threshold, seed)
    out.append({"name": "effective_length", "value": float(value), "ci_low": ci[0] if ci else None,
                "ci_high": ci[1] if ci else None, "n": len(scores),
                "extra": {"threshold": threshold, "lengths": sorted(arrays)}})
    return out


# -- the suite


class NeedleSuite:
    info = SuiteInfo(
        name=SUITE, version=SUITE_VERSION,
        summary="Needles in a haystack at every length x depth (RULER's string match, effective length).",
        headline="score", setup_keys=("haystack", "needles", "context", "limit"), marks_target=True,
        paired=(McNemar("passed", "all needles found"), PairedBootstrap(ratios=(Ratio("score", "score"),))),
        charts=(Chart("heatmap", "score"), Chart("by_length", "score")),
        options=(
            Option("lengths", None, "Prompt lengths in the model's tokens, e.g. 1024,2048 or 4k,8k (default: the card's "
                   "10 steps from 2,000 to the model's window, capped by --context).", type=str),
            Option("depths", None, "Needle depths in percent of the haystack (default 0,10,...,100).", type=str),
            Option("needles", 1, "Needles per prompt (K): the answer is scored as the share of the K numbers found.",
                   type=int, minimum=1),
            Option("haystack", BUILTIN, f"{BUILTIN} (Python's own docs, built in), {NOISE} (RULER's repeated "
                   "sentences) or a text file.", type=str),
            Option("per_cell", 1, "Samples per (length, depth) cell, each with its own needles.", type=int, minimum=1),
            Option("threshold", DEFAULT_THRESHOLD, "Effective length: the longest length whose score stays at or above "
                   "this (0.856, RULER's Llama-2-7B at 4K; 85.6 reads as 0.856).", type=float, minimum=0.0),
            Option("max_new_tokens", 32, "Longest answer.", type=int, minimum=1),
        ),
        scores_predictions_file=True,
        datasets="the haystack is --haystack (stdlib-docs, noise or a text file)",
    )

    def check(self, spec, options) -> None:
        require_language_model(spec, SUITE)
        grid(options, spec.max_context, None, spec.id)

    def plan(self, ctx: Context) -> Plan:
        o = ctx.options
        external = ctx.predictions_file is not None
        room = None if external else ctx.context - o["max_new_tokens"]
        g = grid(o, ctx.spec.max_context, room, ctx.spec.id)
        haystack = load_haystack(o["haystack"])
        chosen = ctx.first(cells(g, o["needles"], o["per_cell"], ctx.seed))
        options: dict[str, Any] = {"lengths": list(g.lengths), "depths": list(g.depths), "needles": o["needles"],
                                   "per_cell": o["per_cell"], "haystack": haystack.name,
                                   "threshold": threshold_of(o["threshold"])}
        if external:
            options["predictions_file"] = ctx.predictions_file
            tasks = read_predictions(ctx.predictions_file, {c.ref: c for c in chosen})
            return Plan(haystack.name, haystack.revision, haystack.content_hash,
                        [Item(i, (), t) for i, t in enumerate(tasks)], options, state=options["threshold"])
        fmt = PromptFormat(ctx.tokenizer, chats(ctx))
        options.update(max_new_tokens=o["max_new_tokens"], chat=fmt.chat)
        stream = token_stream(ctx.tokenizer, haystack, max(c.length for c in chosen))
        items = []
        for i, cell in enumerate(chosen):
            built = fit(fmt, stream, cell.length, cell.depth, cell.needles, o["haystack"])
            request = GenerateRequest(built.ids, max_new_tokens=o["max_new_tokens"], temperature=0.0, seed=ctx.seed + i,
                                      stop_token_ids=eos_ids(ctx.spec),
                                      stop_strings=tuple(ctx.spec.tokenizer.stop_strings) if ctx.spec.tokenizer else (),
                                      text=built.text)
            items.append(Item(i, (request,), Task(cell, built)))
        if g.capped:  # said as the CLI says its notes, once the run is sure to go ahead; its lengths are stored with it
            print(f"note: {g.capped}", file=sys.stderr)
        return Plan(haystack.name, haystack.revision, haystack.content_hash, items, options, state=options["threshold"])

    def work(self, ctx: Context) -> Work | None:
        """Every prompt's tokens prefilled, ``max_new_tokens`` generated per prompt at most (``plan``
        knows no model: the default lengths stop at ``--context``)."""
        o = ctx.options
        try:
            g = grid(o, None, ctx.context - o["max_new_tokens"])
        except LlamaZooError:
            return None
        n = len(g.depths) * o["per_cell"]
        prompts = ctx.first([length for length in g.lengths for _ in range(n)])
        return Work(sum(prompts), len(prompts) * o["max_new_tokens"], len(prompts),
                    f"{len(g.lengths)} lengths x {len(g.depths)} depths x {o['per_cell']}: {sum(prompts):,} prompt tokens "
                    f"(exact, not bytes / {BYTES_PER_TOKEN:g}); {o['max_new_tokens']} new tokens each at most")

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        for item, answer in zip(items, answers):
            task: Task = item.data
            output = task.answer if task.answer is not None else answer[0].texts[0]
            emit(self.sample(item.index, task, output))

    @staticmethod
    def sample(index: int, task: Task, output: str) -> Sample:
        cell, built = task.cell, task.built
        values = [n.value for n in cell.needles]
        hits = found(output, values)
        scores = {"score": hits / len(values), "passed": hits == len(values), "found": hits, "needles": len(values),
                  "length": cell.length, "depth": cell.depth, "prompt_tokens": len(built.ids) if built else None}
        extra = None
        if built is not None:
            extra = {"needle_depths": list(built.depths), "needle_tokens": list(built.needle_tokens),
                     "haystack_tokens": built.context_span[1] - built.context_span[0], "haystack_copies": built.copies}
        return Sample(index, input_ref=cell.ref, input=question(cell.needles)[1], output=output,
                      target=", ".join(values), scores=scores, extra=extra)

    def metrics(self, samples, seed: int, runner=None, state=None) -> list[dict[str, Any]]:
        threshold = state if state is not None else DEFAULT_THRESHOLD
        return metrics_of([s["scores"] for s in samples], seed, threshold)


suite = NeedleSuite()
