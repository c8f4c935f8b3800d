"""JSON-lines files, read the one way every suite reads them: blank lines skipped, a bad line
named by its number, gzip'd files opened as such."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterator

from llama_zoo.errors import LlamaZooError


def json_lines(text: str, where: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of ``text`` (lines end at "\n" only: JSON
    strings may hold other Unicode line separators)."""
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError:
            raise LlamaZooError(f"{where}:{n}: not a JSON line") from None


def jsonl_file(path: str | Path, flag: str | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each line of a JSONL file; a missing file is one line naming ``flag``."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise LlamaZooError(f"{flag + ' ' if flag else ''}{path}: no such file")
    raw = file.read_bytes()
    text = (gzip.decompress(raw) if file.suffix == ".gz" else raw).decode("utf-8-sig")
    yield from json_lines(text, str(path))


def keyed_predictions(path: str, value: str, kinds: tuple[type, ...], what: str) -> list[tuple[int, str, Any]]:
    """A predictions file's ``{id, <value>}`` lines as (line number, id as text, value): a line of
    another shape, an id given twice or a file with no line is one error naming the line. Whether
    an id is one of the run's is the suite's to say."""
    out: list[tuple[int, str, Any]] = []
    seen: set[str] = set()
    for n, rec in jsonl_file(path, "--predictions-file"):
        if not isinstance(rec, dict) or "id" not in rec or not isinstance(rec.get(value), kinds):
            raise LlamaZooError(f"{path}:{n}: expected an object with 'id' and '{value}' ({what})")
        ref = str(rec["id"])
        if ref in seen:
            raise LlamaZooError(f"{path}:{n}: id {ref!r} again")
        seen.add(ref)
        out.append((n, ref, rec[value]))
    if not out:
        raise LlamaZooError(f"{path}: no predictions")
    return out
