"""An ordinary (non-root) account for the tests of what a user without root gets: CI and the
development machines run as root, most users do not.

As root, a throwaway account is made for the test session (``useradd``) and commands run as it
(``runuser``); the directories on the way to this interpreter and this checkout are opened for it
to traverse (``o+x``, as on most machines) and closed again after. Run as an ordinary user already,
commands run as they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class User:
    name: str | None  # None: this process's own (ordinary) user
    home: Path

    def run(self, args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        """``args`` as this user, with a clean environment: HOME, PATH, this interpreter's, and ``env``."""
        clean = {"HOME": str(self.home), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                 "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "LANG": "C.UTF-8", **(env or {})}
        prefix = ["runuser", "-u", self.name, "--"] if self.name else []
        return subprocess.run([*prefix, "env", "-i", *(f"{k}={v}" for k, v in clean.items()), *args],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd or self.home)

    def owns(self, path: Path) -> None:
        if self.name:
            shutil.chown(path, self.name, self.name)

    @property
    def uid(self) -> int:
        import pwd

        return pwd.getpwnam(self.name).pw_uid if self.name else os.getuid()


def _ledger_file() -> Path:
    """Shared by this test run's xdist workers (one file per run: a run killed midway leaves no
    count behind for the next), in a directory only root can write: root trusts what it reads there."""
    directory = Path(tempfile.gettempdir()) / "llama-zoo-tests-root"
    directory.mkdir(mode=0o700, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        pytest.skip(f"{directory} is not a directory of root's alone: remove it")
    return directory / f"ordinary-user-{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}.json"


@contextlib.contextmanager
def _ledger() -> Iterator[dict[str, list[int]]]:
    """{directory: [its own mode, how many sessions opened it]}, under a lock: a worker closes a
    directory again only when no other worker's user still needs it."""
    ledger = _ledger_file()
    with open(ledger.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(ledger.read_text()) if ledger.exists() else {}
        yield state
        if state:
            ledger.write_text(json.dumps(state))
        else:
            ledger.unlink(missing_ok=True)


def _open_ancestors(*paths: Path) -> list[str]:
    """Let others traverse the directories above ``paths``; the ones this call opened or shares."""
    mine = []
    with _ledger() as state:
        for parent in {p for path in paths for p in (path.resolve(), *path.resolve().parents) if p.is_dir()}:
            key = str(parent)
            if key in state:
                state[key][1] += 1
            elif not parent.stat().st_mode & stat.S_IXOTH:
                state[key] = [stat.S_IMODE(parent.stat().st_mode), 1]
                parent.chmod(state[key][0] | stat.S_IXOTH)
            else:
                continue
            mine.append(key)
    return mine


def _close_ancestors(mine: list[str]) -> None:
    with _ledger() as state:
        for key in mine:
            state[key][1] -= 1
            if state[key][1] == 0:
                Path(key).chmod(state.pop(key)[0])


@contextlib.contextmanager
def ordinary_user() -> Iterator[User]:
    if os.geteuid() != 0:
        home = Path(tempfile.mkdtemp(prefix="llama-zoo-home-"))
        try:
            yield User(None, home)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        return
    if not (shutil.which("useradd") and shutil.which("userdel") and shutil.which("runuser")):
        pytest.skip("an ordinary user is made with useradd and entered with runuser (util-linux, passwd)")
    name = f"zoo{uuid.uuid4().hex[:8]}"
    for attempt in range(10):  # another xdist worker's useradd may hold /etc/passwd's lock
        made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                              capture_output=True, text=True)
        if made.returncode == 0:
            break
        time.sleep(0.5 * (attempt + 1))
    else:
        pytest.skip(f"no throwaway user could be made: {made.stderr.strip()}")
    home = Path(tempfile.mkdtemp(prefix="llama-zoo-home-"))
    shutil.chown(home, name, name)
    # the venv, the interpreter it links to (pyenv keeps it under /root) and this checkout
    opened = _open_ancestors(Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)), ROOT)
    try:
        yield User(name, home)
    finally:
        _close_ancestors(opened)
        for attempt in range(10):
            if subprocess.run(["userdel", name], capture_output=True).returncode in (0, 6):  # 6: no such user
                break
            time.sleep(0.5 * (attempt + 1))
        shutil.rmtree(home, ignore_errors=True)
