"""Tables of things looked up by name (suites, backends): built-in entries plus third-party ones
that installed distributions declare as Python entry points.

Entries are ``"module:attribute"`` strings and load on first use, so listing names (for ``--help``
or an error message) imports nothing heavy.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from llama_zoo.errors import LlamaZooError


# A name "prefix:TASK" stands for a family: "prefix:anything" is its object's ``member("anything")``.
FAMILY = "TASK"


class PluginTable:
    def __init__(self, kind: str, group: str, builtins: dict[str, str]):
        self.kind, self.group, self.builtins = kind, group, builtins
        self._loaded: dict[str, Any] = {}
        self._targets: dict[str, str] | None = None

    def targets(self) -> dict[str, str]:
        """Name -> "module:attribute", built-ins first; a plug-in cannot replace a built-in. Installed
        distributions are scanned once per process (it costs tens of milliseconds at every start)."""
        if self._targets is None:
            found = dict(self.builtins)
            for point in entry_points(group=self.group):
                found.setdefault(point.name, point.value)
            self._targets = found
        return self._targets

    def reset(self) -> None:
        """Forget the scan and what was loaded, as a new process would (tests run many commands in one)."""
        self._loaded.clear()
        self._targets = None

    def names(self) -> list[str]:
        return list(self.targets())

    def get(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        targets = self.targets()
        prefix, colon, member = name.partition(":")
        if name not in targets and colon and member and f"{prefix}:{FAMILY}" in targets:
            made = self._loaded[name] = self.get(f"{prefix}:{FAMILY}").member(member)
            return made
        if name not in targets:
            raise LlamaZooError(f"unknown {self.kind} {name!r}; {self.kind}s: {', '.join(targets)}")
        module, _, attribute = targets[name].partition(":")
        try:
            loaded = getattr(importlib.import_module(module), attribute)
        except Exception as exc:  # noqa: BLE001 - whatever a third-party module raises on import
            raise LlamaZooError(f"the {self.kind} {name!r} ({targets[name]}) cannot be loaded: "
                                f"{type(exc).__name__}: {exc}") from None
        self._loaded[name] = loaded
        return loaded
