"""The ``llama-zoo`` command line.

Sub-commands live in their own modules and import their heavy dependencies inside the command
functions, so that ``llama-zoo models list`` never pays for torch or transformers.
"""

from __future__ import annotations

import sys

import typer

from llama_zoo.cli.models import app as models_app

app = typer.Typer(
    name="llama-zoo",
    help="Every Meta Llama model: registry, runners, evaluation suites, results store and reports.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")


@app.callback()
def _root() -> None:
    """Every Meta Llama model: registry, runners, evaluation suites, results store and reports.

    Start with [bold]llama-zoo models list[/bold], then [bold]llama-zoo models show llama-3.1-8b[/bold].
    """


def main() -> None:
    from llama_zoo.errors import LlamaZooError

    try:
        app(standalone_mode=True)
    except LlamaZooError as exc:  # user-caused: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
