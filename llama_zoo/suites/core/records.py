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
