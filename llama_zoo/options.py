"""A typed option, declared once: suites and backends list theirs, the loop's `RunRequest` and the
matrix's `Scale` declare theirs on their dataclass fields (``declare``), and the CLI builds each
command's flags (help, choices, bounds, hidden old spellings) from those declarations. Shared by
every layer, so it imports nothing of llama-zoo's but its errors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from llama_zoo.errors import LlamaZooError

OPTION = "llama_zoo.option"  # the dataclass field metadata key ``declare`` writes


@dataclass(frozen=True)
class Option:
    """An option a suite, backend or the loop takes; the CLI offers it as ``--name-with-dashes``."""

    name: str
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    type: type | None = None  # inferred from the default where that is not None
    minimum: float | None = None
    maximum: float | None = None
    path: bool = False  # a file or directory: made absolute before a run travels to a worker elsewhere
    commands: tuple[str, ...] = ()  # the commands that offer it (run options: eval, bench, plan)
    defaults: tuple[tuple[str, Any], ...] = ()  # (command, default) where a command's default differs
    aliases: tuple[str, ...] = ()  # old names, still taken as hidden flags with a deprecation note
    value_aliases: tuple[tuple[str, Any], ...] = ()  # (old spelling, value), taken with a deprecation note
    identity: bool | None = None  # whether it reaches the run's identity (None: through the suite or not known)
    panel: str | None = None  # the help panel it is shown under
    many: bool = False  # repeatable on the command line; its value is a list
    metavar: str | None = None
    short: str | None = None  # a one-letter flag as well, e.g. "-m"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def alias_flags(self) -> tuple[str, ...]:
        return tuple("--" + a.replace("_", "-") for a in self.aliases)

    @property
    def value_type(self) -> type:
        return self.type or type(self.default)

    def default_for(self, command: str | None) -> Any:
        return dict(self.defaults).get(command, self.default)

    def canonical(self, value: Any) -> Any:
        """The value in today's spelling (``bf16`` is ``bfloat16``)."""
        return dict(self.value_aliases).get(value, value) if isinstance(value, str) else value

    def checked(self, value: Any) -> Any:
        value = self.canonical(value)
        if self.choices and value not in self.choices:
            raise LlamaZooError(f"{self.flag} {value!r} is not one of {', '.join(map(str, self.choices))}")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            bounds = f"at least {self.minimum}" if self.maximum is None else f"between {self.minimum} and {self.maximum}"
            raise LlamaZooError(f"{self.flag} must be {bounds}, not {value}")
        return value


def declare(option: Option) -> Any:
    """A dataclass field whose default and description are ``option``: the field is the one declaration."""
    return dataclasses.field(default=option.default, metadata={OPTION: option})


def declared(cls: type) -> tuple[Option, ...]:
    """The options declared on a dataclass's fields, in field order."""
    return tuple(f.metadata[OPTION] for f in dataclasses.fields(cls) if OPTION in f.metadata)
