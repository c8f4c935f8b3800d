"""``llama-zoo`` run in this process, as a user runs it, without paying interpreter start-up, the
registry and the store check for every call (a subprocess costs about 2 s; most calls here cost
milliseconds).

``main()`` itself runs, so what a test sees is what the console script prints: a user error is one
line on stderr and exit code 2; an unexpected exception becomes a traceback on stderr and exit code
1, as it would in a subprocess. What a process would otherwise carry from one command to the next is
put back around every call:

- the environment (``--registry`` writes ``$LLAMA_ZOO_REGISTRY``; ``env=`` sets or, with ``None``,
  removes variables for the call only);
- the registry catalog, cached once per process: built afresh when the call reads a user registry,
  and dropped afterwards so the next call does not see it;
- the plug-in tables (suites, backends), which scan installed distributions once per process;
- lm-eval's task index of an ``--lm-eval-include`` directory, which would not see a task YAML
  written there since (lm-eval's own index, seconds to build and never changing, is kept);
- torch's autograd switch, in case anything leaves it off (the hf backend no longer does: it turns it
  off only around its own calls).

Keep a real subprocess where the process boundary is what a test is about: SIGKILL and resume,
import-time checks, the console script, the sandbox, Ray, a pip-installed plug-in.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Iterator, Mapping


@dataclass(frozen=True)
class ZooResult:
    """What ``subprocess.run(..., capture_output=True, text=True)`` would give: the same three fields."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def reset_catalog() -> None:
    """The registry as a fresh process reads it (packaged entries plus the user's, as the
    environment names them now)."""
    from llama_zoo.registry.catalog import load_catalog

    load_catalog.cache_clear()


def reset_plugin_tables() -> None:
    """Suites and backends as a fresh process finds them (a plug-in installed or removed since)."""
    from llama_zoo.suites import SUITES
    from llama_zoo.backends import BACKENDS

    for table in (SUITES, BACKENDS):
        table.reset()


def _reset_lm_eval_include_index() -> None:
    lm_eval_tasks = sys.modules.get("llama_zoo.suites.lm_eval_tasks.suite")
    if lm_eval_tasks is not None:
        lm_eval_tasks._index.cache_clear()


@contextlib.contextmanager
def _environment(changes: Mapping[str, str | None]) -> Iterator[None]:
    saved = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


@contextlib.contextmanager
def _grad_mode_kept() -> Iterator[None]:
    torch = sys.modules.get("torch")
    enabled = torch.is_grad_enabled() if torch is not None else None
    try:
        yield
    finally:
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_grad_enabled(True if enabled is None else enabled)


def _exit_code(exc: SystemExit, stderr: io.StringIO) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=stderr)  # sys.exit("message"): printed, exit status 1, as the interpreter does
    return 1


def zoo(*args: str | os.PathLike, db: str | os.PathLike | None = None,
        env: Mapping[str, str | None] | None = None) -> ZooResult:
    """``llama-zoo ARGS`` in this process. ``db`` sets ``$LLAMA_ZOO_DB``; ``env`` sets variables (a
    value of ``None`` removes one) for this call only."""
    from llama_zoo.cli import main
    from llama_zoo.registry.catalog import USER_REGISTRY_VARIABLE

    argv = tuple(str(a) for a in args)
    changes = dict(env or {})
    if db is not None:
        changes["LLAMA_ZOO_DB"] = str(db)
    stdout, stderr = io.StringIO(), io.StringIO()
    with _environment(changes), _grad_mode_kept():
        user_registry = "--registry" in argv or bool(os.environ.get(USER_REGISTRY_VARIABLE))
        reset_plugin_tables()
        if user_registry:
            reset_catalog()
        if "--lm-eval-include" in argv:
            _reset_lm_eval_include_index()
        saved_argv = sys.argv
        sys.argv = ["llama-zoo", *argv]
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    main()
                    code = 0
                except SystemExit as exc:
                    code = _exit_code(exc, stderr)
                except Exception:  # noqa: BLE001 - a crash: a traceback and exit 1, as a process shows it
                    traceback.print_exc(file=stderr)
                    code = 1
        finally:
            sys.argv = saved_argv
            if user_registry:
                reset_catalog()  # the next call, or the test itself, reads the registry without them
    return ZooResult(argv, code, stdout.getvalue(), stderr.getvalue())



def zoo_process(*args: str | os.PathLike, db: str | os.PathLike | None = None,
                env: Mapping[str, str | None] | None = None, timeout: float = 900) -> ZooResult:
    """``python -m llama_zoo ARGS`` in a fresh interpreter, with the same arguments as ``zoo``: for
    tests about the process itself (start-up imports, a pip-installed plug-in found at start)."""
    import subprocess

    argv = tuple(str(a) for a in args)
    changes = dict(env or {})
    if db is not None:
        changes["LLAMA_ZOO_DB"] = str(db)
    environment = {k: v for k, v in {**os.environ, **changes}.items() if v is not None}
    done = subprocess.run([sys.executable, "-m", "llama_zoo", *argv], capture_output=True, text=True, timeout=timeout,
                          env=environment)
    return ZooResult(argv, done.returncode, done.stdout, done.stderr)


def data_env(shared: os.PathLike) -> dict[str, str]:
    """``env=`` naming the shared data directory (XSTest, OpenAI moderation, Prompt Guard's sets)."""
    return {"LLAMA_ZOO_DATA": str(shared)}
