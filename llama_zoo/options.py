"""A typed option, declared once: suites and backends list theirs, and the CLI builds each flag (help,
choices, bounds) from the declaration. Shared by every layer, so it imports nothing of llama-zoo's
but its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llama_zoo.errors import LlamaZooError


@dataclass(frozen=True)
class Option:
    """An option a suite or backend takes; the CLI offers it as ``--name-with-dashes`` under its owner's panel."""

    name: str
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    type: type | None = None  # inferred from the default where that is not None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def value_type(self) -> type:
        return self.type or type(self.default)

    def checked(self, value: Any) -> Any:
        if self.choices and value not in self.choices:
            raise LlamaZooError(f"{self.flag} {value!r} is not one of {', '.join(map(str, self.choices))}")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            bounds = f"at least {self.minimum}" if self.maximum is None else f"between {self.minimum} and {self.maximum}"
            raise LlamaZooError(f"{self.flag} must be {bounds}, not {value}")
        return value
