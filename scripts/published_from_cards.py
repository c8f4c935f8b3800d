#!/usr/bin/env python3
"""Published benchmark results, read from Meta's model cards into registry data (issue #24).

    python scripts/published_from_cards.py --llama-models DIR --purple-llama DIR [--out DIR]

Each DIR is a checkout of the repository or a bare git directory (the card is then read from HEAD
with ``git show``); the commit is recorded either way. One YAML file per card file is written to
``llama_zoo/registry/published/``, keyed by registry id, and counts are printed: per card, per
model, and every column or cell that was passed over, with the reason.

Only the tables named in ``CARDS`` below are read: a card's hardware, CO2, training-data, taxonomy
and inference-time tables are not benchmarks. Rules, in the order they apply:

* **Which entry.** A column (or row) header names a model; ``CARDS`` maps it to a registry id per
  table, because the same words mean a different checkpoint in a base and in an instruct table
  ("Llama 3.1 8B" is llama-3.1-8b in "Base pretrained models", llama-3.1-8b-instruct in "Instruction
  tuned models"). A header the table's map does not name (Gemma, GPT-4, Mistral, moderation APIs,
  "Llama 3 8B Instruct" in a Guard card, a fine-tune of Llama Guard 2 on BeaverTails) is skipped and
  counted, never guessed.
* **Variants.** A quantised column ("Spin Quant", "QLoRA", "Vanilla PTQ", a Guard card's
  "Quantized") is the same entry with ``variant`` set; "bf16" is the checkpoint itself (variant
  null). A quantised model with its own registry entry (Llama Guard 3 1B INT4) gets its own id.
* **Benchmark names.** Markup and footnote markers (``*``, ``**``, ``†``, ``^``) are stripped; a
  parenthesised shot count in the name ("MMLU (5-shot)", "BIG-Bench Hard (3-shot, CoT)") moves to
  ``shots``, and a metric named there ("QuAC (1-shot, F1)") moves to ``metric`` when the table has
  no metric column; every other qualifier stays in the name ("MMLU (CoT)", "DocVQA (val, unseen)").
  A table's "Language" column, or a Guard card's row label that divides one test set (a hazard
  category, prompt vs response classification), is appended in parentheses: "MMLU (French)",
  "response classification (Violent Crimes)". So the key (benchmark, metric, shots, table,
  variant, source) is unique per model.
* **Label cells left empty** under a category or benchmark (markdown's way of writing rowspan) take
  the value above, unless a label to their left changed in that row.
* **Values.** The printed number as a float: "66.7" -> 66.7, "97.5%" -> 97.5, ".987" -> 0.987.
  "-", "N/A", empty cells and prose ("No multimodal support") are skipped, never zero. A cell of
  several numbers joined by "/" ("0.884 / 0.084", "42.2/36.6") becomes one result per number when
  the metric or the benchmark names as many parts joined by "/" ("F1 / False Positive Rate",
  "MTOB (half book) eng->kgv/kgv->eng"); otherwise it is skipped and reported. A number followed
  by a parenthetical ("88.6 (0-shot)", "50.2 (2.6x)") keeps the number; a shot count in the
  parenthetical becomes ``shots``, anything else in it is dropped.
* **shots** is the string as printed ("5", "3-5", "0"); null where the table has no shots column
  and the name gives none, or the cell is empty or "-". **category** is the table's category /
  capability column (two such columns joined with " / "), else null.
* **table** is the section heading above the table; where a card numbers its tables under one
  heading (the Guard cards' "Table 3: ..."), ", Table N" is added so that two tables stay apart.
* **Twin cards.** Llama Prompt Guard 2's 86M and 22M card files are the same text: each file keeps
  the rows of the model it is the card of (the 86M file also Prompt Guard 1's), so no number is
  published twice.
"""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "llama_zoo" / "registry" / "published"
SCRIPT = "scripts/published_from_cards.py"


# --------------------------------------------------------------------------- reading a card


def read_card(repo: Path, path: str) -> tuple[str, str]:
    """A card's text and the commit it was read at, from a checkout or a bare git directory."""
    checkout_file = repo / path
    if checkout_file.is_file():
        return checkout_file.read_text(encoding="utf-8"), _git(["-C", str(repo), "rev-parse", "HEAD"]) or "unknown"
    commit = _git(["--git-dir", str(repo), "rev-parse", "HEAD"])
    text = _git(["--git-dir", str(repo), "show", f"HEAD:{path}"], strip=False)
    if commit is None or text is None:
        raise SystemExit(f"cannot read {path} from {repo} (neither a checkout holding it nor a git directory)")
    return text, commit


def _git(args: list[str], strip: bool = True) -> str | None:
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    if done.returncode:
        return None
    return done.stdout.strip() if strip else done.stdout


# --------------------------------------------------------------------------- cells and tables

FOOTNOTE = re.compile(r"(\\?\*|†|‡|\^)+$")


def clean(cell: str) -> str:
    """A cell's text without markup: tags, **bold**, escapes, arrows, entities, extra spaces."""
    text = re.sub(r"<br\s*/?>", " ", cell, flags=re.I)
    text = re.sub(r"<[^>]+>", "", text)
    text = html.unescape(text)
    text = re.sub(r"\\([_#\-*|+~])", r"\1", text)  # markdown escapes: macro\_avg, \# Shots, \-
    text = text.replace("**", "").replace("↑", "").replace("↓", "")
    text = re.sub(r"(?<!\w)\*([^*]+)\*(?!\w)", r"\1", text)  # *italic*
    return " ".join(text.split())


def header(cell: str) -> str:
    """A header cell: clean, without footnote markers ("Vanilla PTQ**", "MMMU Pro^", "Llama Guard*")
    or parentheses around the whole of it ("(F1 / False Positive Rate)")."""
    text = FOOTNOTE.sub("", clean(cell)).strip()
    if text.startswith("(") and text.endswith(")") and text.count("(") == 1:
        text = text[1:-1].strip()
    return text


@dataclass
class Table:
    heading: str  # the section heading above the table
    number: str | None  # "3" for a table the card captions "Table 3: ..."
    kind: str  # "markdown" or "html"
    grid: list[list[str]]  # spans expanded, raw cell text


class _HTMLTable(HTMLParser):
    """Rows of (text, rowspan, colspan); a <td> opened before the last one closed ends it, as
    browsers do (one cell of Llama 4's card lacks its </td>)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[tuple[str, int, int]]] = []
        self.cell: list[str] | None = None
        self.spans = (1, 1)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._close_cell()
            self.rows.append([])
        elif tag in ("td", "th"):
            self._close_cell()
            a = dict(attrs)
            self.cell, self.spans = [], (int(a.get("rowspan") or 1), int(a.get("colspan") or 1))
        elif tag == "br" and self.cell is not None:
            self.cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("td", "th", "tr"):
            self._close_cell()

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)

    def _close_cell(self):
        if self.cell is not None and self.rows:
            self.rows[-1].append(("".join(self.cell), *self.spans))
        self.cell = None


def expand_spans(rows: list[list[tuple[str, int, int]]]) -> list[list[str]]:
    """A grid in which a cell spanning rows or columns is repeated in every slot it covers."""
    grid: list[list[str]] = []
    pending: dict[int, tuple[str, int]] = {}  # column -> (text, rows still covered)
    for cells in rows:
        row: list[str] = []
        queue = list(cells)
        col = 0
        while queue or any(c >= col for c in pending):
            if col in pending:
                text, left = pending.pop(col)
                row.append(text)
                if left > 1:
                    pending[col] = (text, left - 1)
                col += 1
                continue
            if not queue:
                row.append("")
                col += 1
                continue
            text, rowspan, colspan = queue.pop(0)
            for _ in range(colspan):
                row.append(text)
                if rowspan > 1:
                    pending[col] = (text, rowspan - 1)
                col += 1
        grid.append(row)
    return grid


def _markdown_cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return re.split(r"(?<!\\)\|", body)


def _is_separator(line: str) -> bool:
    return bool(re.fullmatch(r"\|?(\s*:?-{3,}:?\s*\|)+\s*:?-*:?\s*\|?", line.strip()))


HEADING = re.compile(r"^#{1,6}\s*(.*)$")
CAPTION_NUMBER = re.compile(r"Table\s+(\d+)\s*:")


def find_tables(text: str) -> list[Table]:
    """Every markdown pipe table and HTML <table> of a card, with the heading above it."""
    lines = text.splitlines()
    tables: list[Table] = []
    heading = ""
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        match = HEADING.match(line)
        if match and clean(match.group(1)):
            heading = clean(match.group(1))
        if line.startswith("|") and i + 1 < len(lines) and _is_separator(lines[i + 1]):
            end = i + 2
            while end < len(lines) and lines[end].strip().startswith("|"):
                end += 1
            grid = [_markdown_cells(lines[i])] + [_markdown_cells(l) for l in lines[i + 2:end]]
            tables.append(Table(heading, _caption_number(lines, i, end), "markdown", grid))
            i = end
            continue
        if line.lower().startswith("<table"):
            end = i
            while end < len(lines) and "</table>" not in lines[end].lower():
                end += 1
            parser = _HTMLTable()
            parser.feed("\n".join(lines[i:end + 1]))
            parser.close()
            grid = expand_spans(parser.rows)
            tables.append(Table(heading, _caption_number(lines, i, end + 1), "html", grid))
            i = end + 1
            continue
        i += 1
    return tables


def _caption_number(lines: list[str], start: int, end: int) -> str | None:
    """The number of a "Table N:" caption within or just around a table (Guard cards put it
    above, inside or below)."""
    for line in lines[max(0, start - 3):end + 6]:
        match = CAPTION_NUMBER.search(clean(line))
        if match:
            return match.group(1)
    return None


# --------------------------------------------------------------------------- which tables, which models


@dataclass(frozen=True)
class Rule:
    """How to read one table of a card."""

    heading: str  # the section heading above it
    models: dict[str, str]  # header text (variant words removed) -> registry id
    nth: int = 0  # which table under that heading
    header_rows: int = 1
    # Label columns and what they hold; None: read from the header ("Category", "Benchmark",
    # "# Shots", "Metric", "Language"; columns left of "Benchmark" are categories).
    row_roles: dict[int, str] | None = None
    col_roles: tuple[str, ...] = ("model",)  # per header row, what a value column's header names
    fixed: dict[str, str] = field(default_factory=dict)  # roles the table states once (a caption's test set)
    skip_columns: dict[str, str] = field(default_factory=dict)  # header text -> why it is no result
    variants: dict[str, str | None] = field(default_factory=dict)  # "variant" header -> variant name
    only: frozenset[str] | None = None  # twin card files: the ids this file keeps


# Words at the end of a model header that name a quantised variant of the same checkpoint.
VARIANT_WORDS = {"bf16": None, "Vanilla PTQ": "Vanilla PTQ", "Spin Quant": "SpinQuant", "SpinQuant": "SpinQuant",
                 "QLoRA": "QLoRA"}

LLAMA2_BASE = {"Llama 1 7B": "llama-1-7b", "Llama 1 13B": "llama-1-13b", "Llama 1 33B": "llama-1-33b",
               "Llama 1 65B": "llama-1-65b", "Llama 2 7B": "llama-2-7b", "Llama 2 13B": "llama-2-13b",
               "Llama 2 70B": "llama-2-70b"}
LLAMA2_CHAT = {"Llama-2-Chat 7B": "llama-2-7b-chat", "Llama-2-Chat 13B": "llama-2-13b-chat",
               "Llama-2-Chat 70B": "llama-2-70b-chat"}
LLAMA3_BASE = {"Llama 3 8B": "llama-3-8b", "Llama 3 70B": "llama-3-70b", "Llama2 7B": "llama-2-7b",
               "Llama2 13B": "llama-2-13b", "Llama2 70B": "llama-2-70b"}
# The Llama 3 card's instruct table names its columns as the base one does: they are the chat models.
LLAMA3_INSTRUCT = {"Llama 3 8B": "llama-3-8b-instruct", "Llama 3 70B": "llama-3-70b-instruct",
                   "Llama 2 7B": "llama-2-7b-chat", "Llama 2 13B": "llama-2-13b-chat", "Llama 2 70B": "llama-2-70b-chat"}
LLAMA31_BASE = {"Llama 3 8B": "llama-3-8b", "Llama 3 70B": "llama-3-70b", "Llama 3.1 8B": "llama-3.1-8b",
                "Llama 3.1 70B": "llama-3.1-70b", "Llama 3.1 405B": "llama-3.1-405b"}
LLAMA31_INSTRUCT = {"Llama 3 8B Instruct": "llama-3-8b-instruct", "Llama 3 70B Instruct": "llama-3-70b-instruct",
                    "Llama 3.1 8B Instruct": "llama-3.1-8b-instruct", "Llama 3.1 70B Instruct": "llama-3.1-70b-instruct",
                    "Llama 3.1 405B Instruct": "llama-3.1-405b-instruct"}
LLAMA32_BASE = {"Llama 3.2 1B": "llama-3.2-1b", "Llama 3.2 3B": "llama-3.2-3b", "Llama 3.1 8B": "llama-3.1-8b"}
# Llama 3.2's instruct and multilingual tables: the quantised columns exist only as instruct
# models, and the "Llama 3.1 8B" figures are the 8B Instruct's of the Llama 3.1 card (69.4 MMLU,
# 62.1 Portuguese MMLU), so both tables are about the instruct checkpoints.
LLAMA32_INSTRUCT = {"Llama 3.2 1B": "llama-3.2-1b-instruct", "Llama 3.2 3B": "llama-3.2-3b-instruct",
                    "Llama 3.1 8B": "llama-3.1-8b-instruct"}
LLAMA32V_BASE = {"Llama 3.2 11B": "llama-3.2-11b-vision", "Llama 3.2 90B": "llama-3.2-90b-vision"}
LLAMA32V_INSTRUCT = {"Llama 3.2 11B": "llama-3.2-11b-vision-instruct", "Llama 3.2 90B": "llama-3.2-90b-vision-instruct"}
LLAMA33_INSTRUCT = {**{k: v for k, v in LLAMA31_INSTRUCT.items() if k.startswith("Llama 3.1")},
                    "Llama-3.3 70B Instruct": "llama-3.3-70b-instruct"}
LLAMA4_BASE = {"Llama 3.1 70B": "llama-3.1-70b", "Llama 3.1 405B": "llama-3.1-405b",
               "Llama 4 Scout": "llama-4-scout-17b-16e", "Llama 4 Maverick": "llama-4-maverick-17b-128e"}
LLAMA4_INSTRUCT = {"Llama 3.3 70B": "llama-3.3-70b-instruct", "Llama 3.1 405B": "llama-3.1-405b-instruct",
                   "Llama 4 Scout": "llama-4-scout-17b-16e-instruct",
                   "Llama 4 Maverick": "llama-4-maverick-17b-128e-instruct"}
PROMPT_GUARD_2 = {"Llama Prompt Guard 1": "prompt-guard-86m", "Llama Prompt Guard 2 86M": "prompt-guard-2-86m",
                  "Llama Prompt Guard 2 22M": "prompt-guard-2-22m"}
PROMPT_GUARD_2_SKIP = {"Latency per classification (A100 GPU, 512 tokens)": "a latency, not a benchmark",
                       "Backbone Parameters": "a size, not a benchmark", "Base Model": "not a number"}
MODELS_IN_ROWS = {0: "model"}


def _prompt_guard_2(only: set[str]) -> list[Rule]:
    return [
        Rule("Direct Jailbreak Detection Evaluation", PROMPT_GUARD_2, row_roles=MODELS_IN_ROWS, col_roles=("metric",),
             fixed={"benchmark": "Direct jailbreak detection"}, skip_columns=PROMPT_GUARD_2_SKIP, only=frozenset(only)),
        Rule("Real-world Prompt Attack Risk Reduction Compared to Competitor Models", PROMPT_GUARD_2,
             row_roles=MODELS_IN_ROWS, col_roles=("metric",), fixed={"benchmark": "Real-world prompt attack risk reduction"},
             only=frozenset(only)),
    ]


# (repository key, card path, output name) -> the tables read from it
CARDS: dict[tuple[str, str, str], list[Rule]] = {
    ("llama-models", "models/llama2/MODEL_CARD.md", "llama2"): [
        # Models in rows, written as two cells ("Llama 1" | "7B"); the metrics are in the captions.
        Rule("Evaluation Results", LLAMA2_BASE, nth=0, row_roles={0: "model", 1: "model"}, col_roles=("benchmark",)),
        Rule("Evaluation Results", LLAMA2_BASE, nth=1, row_roles={0: "model", 1: "model"}, col_roles=("benchmark",)),
        Rule("Evaluation Results", LLAMA2_CHAT, nth=2, row_roles={0: "model", 1: "model"}, col_roles=("benchmark",)),
    ],
    ("llama-models", "models/llama3/MODEL_CARD.md", "llama3"): [
        Rule("Base pretrained models", LLAMA3_BASE), Rule("Instruction tuned models", LLAMA3_INSTRUCT)],
    ("llama-models", "models/llama3_1/MODEL_CARD.md", "llama3_1"): [
        Rule("Base pretrained models", LLAMA31_BASE), Rule("Instruction tuned models", LLAMA31_INSTRUCT),
        Rule("Multilingual benchmarks", LLAMA31_INSTRUCT)],
    ("llama-models", "models/llama3_2/MODEL_CARD.md", "llama3_2"): [
        Rule("Base Pretrained Models", LLAMA32_BASE), Rule("Instruction Tuned Models", LLAMA32_INSTRUCT),
        Rule("Multilingual Benchmarks", LLAMA32_INSTRUCT)],
    ("llama-models", "models/llama3_2/MODEL_CARD_VISION.md", "llama3_2_vision"): [
        Rule("Base Pretrained Models", LLAMA32V_BASE), Rule("Instruction Tuned Models", LLAMA32V_INSTRUCT)],
    ("llama-models", "models/llama3_3/MODEL_CARD.md", "llama3_3"): [Rule("Instruction tuned models", LLAMA33_INSTRUCT)],
    ("llama-models", "models/llama4/MODEL_CARD.md", "llama4"): [
        Rule("Pre-trained models", LLAMA4_BASE), Rule("Instruction tuned models", LLAMA4_INSTRUCT)],
    ("purple-llama", "Llama-Guard/MODEL_CARD.md", "llama-guard"): [
        # The card prints no metric for this table (the paper's is AUPRC): metric stays null.
        Rule("Evaluation results", {"Llama Guard": "llama-guard-7b"}, row_roles=MODELS_IN_ROWS, col_roles=("benchmark",))],
    ("purple-llama", "Llama-Guard2/MODEL_CARD.md", "llama-guard-2"): [
        Rule("Model Performance", {"Llama Guard": "llama-guard-7b", "Llama Guard 2": "llama-guard-2-8b"}, nth=0,
             row_roles=MODELS_IN_ROWS, col_roles=("metric",), fixed={"benchmark": "internal test set"}),
        # Table 2 is about Llama Guard 2 alone (its caption says so); rows are hazard categories.
        Rule("Model Performance", {}, nth=1, row_roles={0: "qualifier"}, col_roles=("metric",),
             fixed={"model": "llama-guard-2-8b", "benchmark": "response classification"}),
        Rule("Model Performance", {"Llama Guard": "llama-guard-7b", "Llama Guard 2": "llama-guard-2-8b"}, nth=2,
             header_rows=2, row_roles=MODELS_IN_ROWS, col_roles=("metric", "benchmark")),
        # Table 4: "Llama Guard 2 + BeaverTails" is a fine-tune made for the comparison, not a release.
        Rule("Model Performance", {"Llama Guard 2": "llama-guard-2-8b"}, nth=3, row_roles=MODELS_IN_ROWS,
             col_roles=("metric",), fixed={"benchmark": "BeaverTails-30k"}),
    ],
    ("purple-llama", "Llama-Guard3/8B/MODEL_CARD.md", "llama-guard-3-8b"): [
        Rule("Evaluation", {"Llama Guard 2": "llama-guard-2-8b", "Llama Guard 3": "llama-guard-3-8b"}, nth=0,
             row_roles=MODELS_IN_ROWS, col_roles=("metric",),
             fixed={"benchmark": "internal English test set (response classification)"}),
        Rule("Evaluation", {"Llama Guard 2": "llama-guard-2-8b", "Llama Guard 3": "llama-guard-3-8b"}, nth=1,
             header_rows=2, row_roles=MODELS_IN_ROWS, col_roles=("metric", "benchmark")),
        Rule("Evaluation", {"Llama Guard 2": "llama-guard-2-8b", "Llama Guard 3": "llama-guard-3-8b"}, nth=2,
             header_rows=2, row_roles=MODELS_IN_ROWS, col_roles=("benchmark", "metric")),
        # Table 5: the card's quantised Llama Guard 3 is its int8 (bitsandbytes) version.
        Rule("Quantization", {}, header_rows=2, row_roles={0: "qualifier", 1: "benchmark"},
             col_roles=("variant", "metric"), fixed={"model": "llama-guard-3-8b"},
             variants={"Non-Quantized": None, "Quantized": "INT8"}),
    ],
    ("purple-llama", "Llama-Guard3/1B/MODEL_CARD.md", "llama-guard-3-1b"): [
        Rule("Evaluation", {"Llama Guard 3-8B": "llama-guard-3-8b", "Llama Guard 3-1B": "llama-guard-3-1b",
                            "Llama Guard 3-1B -INT4": "llama-guard-3-1b-int4"},
             header_rows=2, row_roles=MODELS_IN_ROWS, col_roles=("metric", "benchmark"))],
    ("purple-llama", "Llama-Guard3/11B-vision/MODEL_CARD.md", "llama-guard-3-11b-vision"): [
        Rule("Evaluation", {"Llama Guard 3 Vision": "llama-guard-3-11b-vision"}, nth=0,
             row_roles={0: "model", 1: "qualifier"}, col_roles=("metric",), fixed={"benchmark": "internal test set"}),
        Rule("Evaluation", {}, nth=1, row_roles={0: "qualifier"}, col_roles=("metric",),
             fixed={"model": "llama-guard-3-11b-vision", "benchmark": "response classification"}),
    ],
    ("purple-llama", "Llama-Guard4/12B/MODEL_CARD.md", "llama-guard-4-12b"): [
        Rule("Classifier performance", {}, header_rows=2, row_roles={0: "benchmark"}, col_roles=("group", "metric"),
             fixed={"model": "llama-guard-4-12b"},
             skip_columns={"vs. Llama Guard 3": "a difference to Llama Guard 3, not a result"})],
    ("purple-llama", "Prompt-Guard/MODEL_CARD.md", "prompt-guard"): [
        Rule("Model Performance", {}, row_roles={0: "metric"}, col_roles=("benchmark",), fixed={"model": "prompt-guard-86m"})],
    ("purple-llama", "Llama-Prompt-Guard-2/86M/MODEL_CARD.md", "prompt-guard-2-86m"):
        _prompt_guard_2({"prompt-guard-2-86m", "prompt-guard-86m"}),
    ("purple-llama", "Llama-Prompt-Guard-2/22M/MODEL_CARD.md", "prompt-guard-2-22m"): _prompt_guard_2({"prompt-guard-2-22m"}),
}
REPOSITORIES = {"llama-models": "meta-llama/llama-models", "purple-llama": "meta-llama/PurpleLlama"}


# --------------------------------------------------------------------------- cells -> results

EMPTY = {"", "-", "–", "—", "N/A", "n/a", "NA"}
NUMBER = r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)"
SHOTS = re.compile(r"^(\d+(?:-\d+)?)[- ]shots?$", re.I)
# Metrics a Llama card writes inside a benchmark's parentheses when the table has no metric column.
METRIC_WORDS = {"f1", "macro_avg/acc", "em", "acc"}
AUTO_ROLES = {"benchmark": "benchmark", "# shots": "shots", "metric": "metric", "language": "qualifier"}


@dataclass
class Skipped:
    """What was passed over, counted for the summary."""

    columns: Counter = field(default_factory=Counter)  # (card, header, why) -> cells
    cells: list[str] = field(default_factory=list)


def parse_value(text: str) -> tuple[list[float], str | None] | None:
    """The numbers a cell prints (several when joined by "/") and a shot count from a trailing
    parenthetical; None for an empty, "-", "N/A" or prose cell."""
    text = clean(text)
    if text in EMPTY:
        return None
    shots = None
    tail = re.fullmatch(r"(.*?)\s*\(([^()]*)\)", text)
    if tail and re.fullmatch(rf"\s*{NUMBER}%?\s*", tail.group(1)):
        text = tail.group(1)
        shot = SHOTS.match(tail.group(2).strip())
        shots = shot.group(1) if shot else None
    parts = [p.strip().rstrip("%").strip() for p in text.split("/")]
    if not all(re.fullmatch(NUMBER, p) for p in parts):
        return None
    return [float(p.replace(",", "")) for p in parts], shots


def split_label(label: str) -> list[str]:
    """A label naming several parts joined by "/": "F1 / FPR" -> [F1, FPR]; "MTOB (half book)
    eng->kgv/kgv->eng" -> [MTOB (half book) eng->kgv, MTOB (half book) kgv->eng] (the words before
    the first part are shared)."""
    parts = [p.strip() for p in label.split("/")]
    first = parts[0]
    if " " in first and not any(" " in p for p in parts[1:]):
        prefix, first = first.rsplit(" ", 1)
        return [f"{prefix} {p}" for p in [first, *parts[1:]]]
    return parts


def benchmark_name(raw: str, has_shots: bool, metric: str | None) -> tuple[str, str | None, str | None]:
    """The benchmark without the shot count and metric its parentheses carry, and those two."""
    shots = found_metric = None
    kept: list[str] = []
    for part in _paren_parts(raw):
        shot = SHOTS.match(part)
        if shot:
            shots = shot.group(1)
        elif part.lower() in METRIC_WORDS and (metric is None or part.lower() == metric.lower()):
            found_metric = part
        else:
            kept.append(part)
    name = re.sub(r"\s*\([^()]*\)", "", raw).strip()
    name = f"{name} ({', '.join(kept)})" if kept else name
    return name, shots, found_metric


def _paren_parts(text: str) -> list[str]:
    return [p.strip() for group in re.findall(r"\(([^()]*)\)", text) for p in group.split(",") if p.strip()]


def model_and_variant(text: str, rule: Rule) -> tuple[str | None, str | None]:
    """The registry id a header names in this table, and the quantised variant its last words name."""
    variant = None
    for words, name in VARIANT_WORDS.items():
        if text.endswith(" " + words):
            text, variant = text[: -len(words) - 1].strip(), name
            break
    return rule.models.get(text), variant


def _roles(rule: Rule, table: Table) -> dict[int, str]:
    """Label columns and their roles; the rest are value columns."""
    if rule.row_roles is not None:
        return dict(rule.row_roles)
    names = [header(c).lower() for c in table.grid[0]]
    bench = names.index("benchmark")
    roles = {i: "category" for i in range(bench)}
    roles.update({i: AUTO_ROLES[n] for i, n in enumerate(names) if n in AUTO_ROLES})
    return roles


def _fill_down(rows: list[list[str]], label_cols: list[int]) -> list[list[str]]:
    """Empty label cells take the label above, unless a label to their left is new in that row."""
    filled, above = [], {}
    for row in rows:
        row = list(row)
        changed = False
        for col in label_cols:
            text = clean(row[col]) if col < len(row) else ""
            if text:
                changed = True
            elif not changed and col in above:
                row[col] = above[col]
            above[col] = row[col] if col < len(row) else ""
        filled.append(row)
    return filled


def table_results(rule: Rule, table: Table, source: str, card: str, skipped: Skipped) -> list[tuple[str, dict]]:
    """(registry id, result) for every numeric cell of a table."""
    roles = _roles(rule, table)
    heads, body = table.grid[: rule.header_rows], table.grid[rule.header_rows:]
    body = [r for r in body if any(clean(c) for c in r)]  # a blank spacer row (Llama 3.2 Vision)
    body = _fill_down(body, sorted(roles))
    name = _table_name(table)
    out: list[tuple[str, dict]] = []
    width = max(len(r) for r in table.grid)
    for col in range(width):
        if col in roles:
            continue
        col_attrs = {rule.col_roles[r]: header(heads[r][col]) if col < len(heads[r]) else "" for r in range(rule.header_rows)}
        reason = next((why for h, why in rule.skip_columns.items() if h in col_attrs.values()), None)
        if reason:
            skipped.columns[(card, " / ".join(v for v in col_attrs.values() if v), reason)] += len(body)
            continue
        for row in body:
            if col >= len(row):
                continue
            attrs = {**rule.fixed, **col_attrs}
            for c, role in roles.items():
                text = header(row[c]) if c < len(row) else ""
                if text:
                    sep = " " if role == "model" else " / "
                    attrs[role] = f"{attrs[role]}{sep}{text}" if role in attrs else text
            out += _cell_results(rule, attrs, row[col], name, source, card, skipped)
    return out


def _table_name(table: Table) -> str:
    # A card that numbers its tables under one heading (the Guard cards) keeps them apart by number.
    return f"{table.heading}, Table {table.number}" if table.number else table.heading


def _cell_results(rule: Rule, attrs: dict[str, str], cell: str, table: str, source: str, card: str,
                  skipped: Skipped) -> list[tuple[str, dict]]:
    header_text = attrs.get("model", "")
    if "model" in rule.fixed:
        model_id, variant = rule.fixed["model"], None
    else:
        model_id, variant = model_and_variant(header_text, rule)
    if "variant" in attrs:
        variant = rule.variants[attrs["variant"]]
    if model_id is None:
        skipped.columns[(card, header_text, "names no registry model")] += 1
        return []
    if rule.only is not None and model_id not in rule.only:
        skipped.columns[(card, header_text, "its twin card file holds these")] += 1
        return []
    parsed = parse_value(cell)
    if parsed is None:
        if clean(cell) not in EMPTY:
            skipped.cells.append(f"{card}: {model_id} {attrs.get('benchmark')!r}: {clean(cell)!r} is not a number")
        return []
    values, cell_shots = parsed
    if len(values) == 1:
        named = [(attrs, values[0])]
    else:
        named = _split(attrs, values)
        if named is None:
            skipped.cells.append(f"{card}: {model_id} {attrs.get('benchmark')!r}: {len(values)} numbers, no label names them")
            return []
    return [(model_id, _result(a, v, cell_shots, table, source, variant)) for a, v in named]


def _result(attrs: dict[str, str], value: float, cell_shots: str | None, table: str, source: str,
            variant: str | None) -> dict:
    metric = attrs.get("metric") or None
    bench, name_shots, name_metric = benchmark_name(attrs.get("benchmark", ""), "shots" in attrs, metric)
    if "qualifier" in attrs:
        bench = f"{bench} ({attrs['qualifier']})"
    shots = attrs.get("shots") or name_shots or cell_shots
    return {"benchmark": bench, "category": attrs.get("category") or None,
            "shots": None if shots in EMPTY else shots, "metric": metric or name_metric, "value": value,
            "table": table, "source": source, "variant": variant}


def _split(attrs: dict[str, str], values: list[float]) -> list[tuple[dict[str, str], float]] | None:
    """One (labels, number) per number of an "a/b" cell, the parts named by the metric or the
    benchmark; None when neither names as many parts."""
    for role in ("metric", "benchmark"):
        parts = split_label(attrs.get(role) or "")
        if len(parts) == len(values):
            return [({**attrs, role: part}, v) for part, v in zip(parts, values)]
    return None


# --------------------------------------------------------------------------- cards -> files


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def card_results(key: str, path: str, rules: list[Rule], text: str, skipped: Skipped) -> dict[str, list[dict]]:
    """Registry id -> results of one card, in card order."""
    tables = find_tables(text)
    by_heading: dict[str, list[Table]] = defaultdict(list)
    for table in tables:
        by_heading[table.heading].append(table)
    used: set[int] = set()
    results: dict[str, list[dict]] = defaultdict(list)
    for rule in rules:
        candidates = by_heading.get(rule.heading, [])
        if rule.nth >= len(candidates):
            raise SystemExit(f"{path}: no table {rule.nth} under {rule.heading!r}; the card has changed")
        table = candidates[rule.nth]
        used.add(id(table))
        source = f"{REPOSITORIES[key]}:{path}#{_anchor(table.heading)}"
        for model_id, result in table_results(rule, table, source, path, skipped):
            results[model_id].append(result)
    for table in tables:
        if id(table) not in used:
            skipped.columns[(path, f"table under {table.heading!r}", "not a benchmark table")] += 1
    return dict(results)


KEYS = ("benchmark", "category", "shots", "metric", "value", "table", "source", "variant")


def render(repository: str, commit: str, path: str, results: dict[str, list[dict]]) -> str:
    head = f"# generated by {SCRIPT} from {repository}@{commit} {path}; do not edit\n"
    doc = {"repository": repository, "commit": commit, "file": path,
           "results": {m: [{k: r[k] for k in KEYS} for r in rs] for m, rs in results.items()}}
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--llama-models", type=Path, required=True, help="meta-llama/llama-models: checkout or git dir")
    parser.add_argument("--purple-llama", type=Path, required=True, help="meta-llama/PurpleLlama: checkout or git dir")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the YAML files go (default {OUT})")
    parser.add_argument("--quiet", action="store_true", help="print nothing (the regeneration test)")
    args = parser.parse_args(argv)
    repos = {"llama-models": args.llama_models, "purple-llama": args.purple_llama}
    args.out.mkdir(parents=True, exist_ok=True)
    skipped = Skipped()
    per_card: dict[str, int] = {}
    per_model: Counter = Counter()
    for (key, path, name), rules in CARDS.items():
        text, commit = read_card(repos[key], path)
        results = card_results(key, path, rules, text, skipped)
        (args.out / f"{name}.yaml").write_text(render(REPOSITORIES[key], commit, path, results), encoding="utf-8")
        per_card[f"{name}.yaml ({path})"] = sum(len(r) for r in results.values())
        per_model.update({m: len(r) for m, r in results.items()})
    if not args.quiet:
        _summary(per_card, per_model, skipped)
    return 0


def _summary(per_card: dict[str, int], per_model: Counter, skipped: Skipped) -> None:
    print(f"{sum(per_card.values())} published results")
    print("per card file:")
    for card, n in per_card.items():
        print(f"  {n:5d}  {card}")
    print("per model:")
    for model, n in per_model.most_common():
        print(f"  {n:5d}  {model}")
    print("skipped (card: column or table: why (cells)):")
    for (card, what, why), n in sorted(skipped.columns.items()):
        print(f"  {card}: {what!r}: {why} ({n})")
    for line in skipped.cells:
        print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
