"""The ``llama-zoo`` command line.

Sub-commands live in their own modules and import their heavy dependencies inside the command
functions, so that ``llama-zoo models list`` never pays for torch or transformers.
"""

from __future__ import annotations

import sys

import typer

from llama_zoo.cli.bench import bench_command
from llama_zoo.cli.card import card_command
from llama_zoo.cli.compare import compare_command
from llama_zoo.cli.doctor import doctor_command
from llama_zoo.cli.eval import eval_command
from llama_zoo.cli.imports import app as import_app
from llama_zoo.cli.models import app as models_app
from llama_zoo.cli.plan import plan_command
from llama_zoo.cli.report import demo_command, report_command
from llama_zoo.cli.serve import serve_command
from llama_zoo.cli.runs import app as runs_app
from llama_zoo.cli.runs import db_app

app = typer.Typer(
    name="llama-zoo",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.command("eval")(eval_command)
app.command("bench")(bench_command)
app.command("plan")(plan_command)
app.command("compare")(compare_command)
app.command("card")(card_command)
app.command("report")(report_command)
app.command("serve")(serve_command)
app.command("demo")(demo_command)
app.command("doctor")(doctor_command)


@app.callback()
def _root(
    registry: list[str] = typer.Option(
        [], "--registry", metavar="DIR",
        help="A directory of your own registry entries (YAML, same schema; `base:` may name any packaged model); "
             "repeatable. Also read: $LLAMA_ZOO_REGISTRY and the user configuration directory's registry/ folder."),
) -> None:
    """Every Meta Llama model: registry, backends, evaluation suites, results store and reports.

    Try:

    [bold]llama-zoo models list --capability fim[/bold]   which models can fill in the middle

    [bold]llama-zoo models list --where "max_position_embeddings >= 131072" --sort -params[/bold]

    [bold]llama-zoo models show meta-llama/Llama-3.1-8B[/bold]   specs, parameter counts, memory, GPU fit

    [bold]llama-zoo models diff llama-3.2-1b llama-guard-3-1b[/bold]   what a fine-tune changed

    [bold]llama-zoo models export llama-4-scout --format hf-config[/bold]   a transformers config.json
    """
    if registry:
        import os

        from llama_zoo.registry.catalog import USER_REGISTRY_VARIABLE

        os.environ[USER_REGISTRY_VARIABLE] = os.pathsep.join([*registry, os.environ.get(USER_REGISTRY_VARIABLE, "")]).strip(os.pathsep)


def main() -> None:
    from llama_zoo.errors import LlamaZooError

    from llama_zoo.cli.eval import help_for

    help_for(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except LlamaZooError as exc:  # user-caused: one line, no traceback
        _fail(str(exc))
    except typer.TyperException as exc:  # a bad option or argument: typer's own message, on one line
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # the help was printed; that is what a bare command asks for
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(f"{message} (see --help)")
    except (typer.Abort, KeyboardInterrupt):
        _fail("aborted")
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)
