"""What every command group shares: the console, output formats, number formatting, ``--db``."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from enum import Enum
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

# Piped output is read by people too: do not squeeze tables into 80 columns there.
console = Console(width=None if sys.stdout.isatty() else 160)

DB_OPTION: Optional[str] = typer.Option(
    None, "--db",
    help="Results database: a SQLite path or a URL (sqlite:///PATH, postgresql://USER@HOST/DB). "
         "Default: $LLAMA_ZOO_DB, else results.db in the user data directory.",
)


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class TableOrJson(str, Enum):
    table = "table"
    json = "json"


@contextlib.contextmanager
def interrupted_said():
    """Ctrl-C during a run as one line saying what the run kept (typer would make it a silent exit 130)."""
    from llama_zoo.errors import Interrupted, LlamaZooError

    try:
        yield
    except Interrupted as exc:
        raise LlamaZooError(str(exc)) from None


def print_json(data: Any) -> None:
    """Indented for a person at a terminal; compact (and several times faster) into a pipe."""
    print(json.dumps(data, indent=2 if sys.stdout.isatty() else None, default=str))


def _plain_cell(_column: str, value: Any) -> str:
    return "-" if value is None else str(value)


def emit(
    rows: list[dict[str, Any]],
    fmt: Format,
    columns: dict[str, str],
    title: str,
    cell: Callable[[str, Any], str] = _plain_cell,
    text_columns: tuple[str, ...] = ("id", "family", "field", "model_id", "suite", "status"),
) -> None:
    """Rows as a rich table (``columns``: key -> header), or JSON / CSV with every key."""
    if fmt is Format.json:
        print_json(rows)
        return
    if fmt is Format.csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else list(columns))
        writer.writeheader()
        writer.writerows(rows)
        print(out.getvalue(), end="")
        return
    table = Table(title=title, header_style="bold")
    for col, header in columns.items():
        table.add_column(header, justify="left" if col in text_columns else "right", no_wrap=col == "id")
    for r in rows:
        table.add_row(*(cell(col, r.get(col)) for col in columns))
    console.print(table)
