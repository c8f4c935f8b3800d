"""Command-line flags built from declared options (``llama_zoo.options.Option``): the loop's
``RunRequest`` fields, the matrix's ``Scale``, the selection and output flags below, and the
options suites declare. ``eval``, ``bench`` and ``plan`` take a flag under one spelling and one set
of values; an old spelling (``--batch``, ``--dtype bf16``) is still taken, hidden from the help,
with a one-line note on stderr."""

from __future__ import annotations

import inspect
import sys
from typing import Any, Iterable, Mapping, Optional

import typer

from llama_zoo.options import Option

EVAL, BENCH, PLAN = "eval", "bench", "plan"

# Which models and suites, and how the result is shown: flags of the commands, not of a run.
SELECTION = (
    Option("model", None, "Registry id, Hugging Face repo id, or the path of a checkpoint directory or .gguf file "
           "(evaluated as itself; once).", type=str, many=True, metavar="MODEL", short="-m", commands=(EVAL, BENCH, PLAN)),
    Option("models", None, "Registry models matching a glob, e.g. 'llama-3.1-*' (repeatable; with --where: those "
           "matching both). Several models or suites make a matrix.", type=str, many=True, metavar="GLOB",
           commands=(EVAL, PLAN)),
    Option("where", None, "Registry models matching an expression over their facts, as in 'models list': "
           "\"params < 10B and not instruct\".", type=str, commands=(EVAL, PLAN)),
    Option("suite", None, "The suites (default: eval's default suite); repeatable.", type=str, many=True,
           metavar="SUITE", commands=(EVAL, PLAN)),
)


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


class Spelled:
    """A flag's parser for a choice that also takes old spellings of its values, each with a deprecation note."""

    def __init__(self, option: Option, old: Mapping[str, Any]):
        self.choices = tuple(str(c) for c in option.choices)
        self.flag, self.old = option.flag, dict(old)
        self.__name__ = option.name  # typer names the parser in its messages

    @property
    def metavar(self) -> str:
        return "[" + "|".join(self.choices) + "]"

    def __call__(self, value: Any) -> Any:
        if value in self.old:
            new = self.old[value]
            if new != value:  # a value the command moves elsewhere itself says so there
                note(f"{self.flag} {value} is deprecated: use {self.flag} {new}")
            return new
        if value not in self.choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(self.choices)}")
        return value


def _annotation(option: Option) -> Any:
    kind = option.value_type
    if option.many:
        return Optional[list[kind]]
    if kind is bool:
        return bool
    return Optional[kind] if option.default is None else kind


def _typer_option(option: Option, default: Any, decls: Iterable[str], *, hidden: bool = False, help: str | None = None,
                  old_values: Mapping[str, Any] | None = None):
    extra: dict[str, Any] = {}
    if option.choices:
        extra["parser"] = Spelled(option, {**dict(option.value_aliases), **(old_values or {})})
        extra["metavar"] = extra["parser"].metavar
    if option.minimum is not None:
        extra["min"] = option.minimum
    if option.maximum is not None:
        extra["max"] = option.maximum
    if option.metavar:
        extra["metavar"] = option.metavar
    if option.panel and not hidden:
        extra["rich_help_panel"] = option.panel
    return typer.Option(default, *decls, help=option.help if help is None else help, hidden=hidden, **extra)


def alias_parameter(alias: str) -> str:
    """The parameter name of an old spelling's hidden flag."""
    return f"{alias}__old_spelling"


def parameters(options: Iterable[Option], command: str | None, *, helps: Mapping[str, str] | None = None,
               old_values: Mapping[str, Mapping[str, Any]] | None = None) -> list[inspect.Parameter]:
    """The flags of ``options`` for ``command``, each with its old spellings as hidden flags."""
    out = []
    for option in options:
        default = option.default_for(command)
        decls = (option.flag, option.short) if option.short else (option.flag,)
        help_ = (helps or {}).get(option.name)
        made = _typer_option(option, default, decls, help=help_, old_values=(old_values or {}).get(option.name))
        out.append(parameter(option.name, _annotation(option), made))
        for alias, flag in zip(option.aliases, option.alias_flags):
            hidden = _typer_option(option, False if option.value_type is bool else None, (flag,), hidden=True,
                                   old_values=(old_values or {}).get(option.name))
            annotation = bool if option.value_type is bool else _annotation(option) if option.many else Optional[option.value_type]
            out.append(parameter(alias_parameter(alias), annotation, hidden))
    return out


def names(options: Iterable[Option]) -> tuple[str, ...]:
    """Every parameter name ``parameters`` gives ``options``: theirs and their old spellings'."""
    return tuple(n for o in options for n in (o.name, *(alias_parameter(a) for a in o.aliases)))


def take(kwargs: dict[str, Any], options: Iterable[Option], command: str | None) -> dict[str, Any]:
    """The values of ``options`` popped from a command's arguments, an old spelling's (with its note)
    where the flag itself was not given."""
    values = {}
    for option in options:
        value = kwargs.pop(option.name)
        for alias, flag in zip(option.aliases, option.alias_flags):
            old = kwargs.pop(alias_parameter(alias))
            if old is None or old is False:
                continue
            note(f"{flag} is deprecated: use {option.flag}")
            if value == option.default_for(command):
                value = old
        values[option.name] = value
    return values


def for_command(options: Iterable[Option], command: str) -> tuple[Option, ...]:
    return tuple(o for o in options if command in o.commands)


def parameter(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    """A keyword parameter as typer reads it from a signature (also for flags written out by hand: ``--format``)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
