"""A results database this process may not write (a read-only filesystem, another user's file) is
still read by ``runs list``, ``runs show`` and ``report``; a command that would write to it is one
line. Processes, because the read-only filesystem is a mount namespace and the user another account."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from llama_zoo.orchestration import evaluate
from llama_zoo.orchestration.loop import RunRequest
from llama_zoo.results.store import Store

READS = "runs list --format json; runs show {run} --format json; report --format md; report --out {out}"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A database holding one completed run, as its writer left it (closed: WAL checkpointed)."""
    root = tmp_path_factory.mktemp("read-only")
    store = Store.open(str(root / "r.db"))
    outcome = evaluate(RunRequest("llama-3.2-1b", "perplexity", shadow=True, limit=1, context=32), store)
    store.close()
    return root, outcome.run_id


def _script(db: str, run: str, out: str) -> str:
    """Three reads and a write, each as its own command: what each printed and how it ended."""
    zoo = f'"{sys.executable}" -m llama_zoo'
    reads = [c.format(run=run, out=out) for c in READS.split("; ")]
    lines = [f'{zoo} {c} --db {db} > "{out}.{n}" 2>&1; echo "exit $?" >> "{out}.{n}"' for n, c in enumerate(reads)]
    lines.append(f'{zoo} eval --model llama-3.2-1b --shadow --limit 1 --context 16 --db {db} > "{out}.w" 2>&1; '
                 f'echo "exit $?" >> "{out}.w"')
    return "\n".join(lines)


def _check(out: str, run: str, db: Path) -> None:
    results = [open(f"{out}.{n}").read().rsplit("exit ", 1) for n in range(4)]
    assert all(code.strip() == "0" for _, code in results), results
    listed, shown, md, wrote = (text for text, _ in results)
    assert [r["id"] for r in json.loads(listed)] == [run]
    assert json.loads(shown)["id"] == run and json.loads(shown)["status"] == "completed"
    assert "### perplexity" in md and "| llama-3.2-1b | shadow |" in md
    assert wrote.startswith("wrote ") and os.path.getsize(out) > 0
    text, code = open(f"{out}.w").read().rsplit("exit ", 1)
    assert code.strip() == "2"
    assert text.strip().splitlines() == [f"error: cannot use database sqlite:///{db}: it is read-only here (the file "
                                         "or its directory); runs list, runs show and report still read it"], text


@pytest.mark.slow
def test_a_database_on_a_read_only_filesystem_is_read(stored, tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a read-only bind mount needs root and unshare (a mount namespace)")
    root, run = stored
    out = tmp_path / "report.html"
    script = f"mount --bind -o ro {root} {root} || exit 90\n" + _script(str(root / "r.db"), run, str(out))
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=600)
    if done.returncode == 90:
        pytest.skip(f"no read-only bind mount here: {done.stderr.strip()}")
    _check(str(out), run, root / "r.db")
    assert sorted(p.name for p in root.iterdir()) == ["r.db"]  # nothing was written beside it


@pytest.mark.slow
def test_another_users_database_is_read_by_an_ordinary_user(stored, ordinary_user):
    if ordinary_user.name is None:
        pytest.skip("the database's owner is this user: the test makes it another's as root")
    root, run = stored
    theirs = Path(tempfile.mkdtemp(prefix="llama-zoo-theirs-"))  # outside pytest's own (private) directory
    try:
        shutil.copy(root / "r.db", theirs / "r.db")
        theirs.chmod(0o755)  # readable by others, writable by its owner (root) alone
        (theirs / "r.db").chmod(0o644)
        out = ordinary_user.home / "report.html"
        done = ordinary_user.run(["sh", "-c", _script(str(theirs / "r.db"), run, str(out))], timeout=600)
        assert done.returncode == 0, done.stderr
        _check(str(out), run, theirs / "r.db")
        assert sorted(p.name for p in theirs.iterdir()) == ["r.db"]
    finally:
        shutil.rmtree(theirs)


SERVE_AND_READ = """
import subprocess, sys, time, urllib.request
server = subprocess.Popen([sys.executable, "-m", "llama_zoo", "serve", "--db", sys.argv[1], "--port", sys.argv[2]],
                          stderr=subprocess.PIPE, text=True)
try:
    for _ in range(300):
        try:
            page = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/runs/{sys.argv[3]}", timeout=30).read().decode()
            break
        except OSError:
            time.sleep(0.2)
    print("run page" if sys.argv[3] in page and 'class="sample"' in page else "no run page")
finally:
    server.terminate()
    print(server.communicate(timeout=30)[1].strip() or "nothing on stderr")
"""


@pytest.mark.slow
def test_an_ordinary_user_serves_another_users_database(stored, ordinary_user):
    """``llama-zoo serve`` opens read-only whatever this user may write: here a database in a
    directory it may only read, whose run pages it shows, leaving nothing beside the file."""
    pytest.importorskip("uvicorn", reason="llama-zoo serve needs the serve extra")
    if ordinary_user.name is None:
        pytest.skip("the database's owner is this user: the test makes it another's as root")
    from tests.pg import free_port

    root, run = stored
    theirs = Path(tempfile.mkdtemp(prefix="llama-zoo-theirs-"))
    try:
        shutil.copy(root / "r.db", theirs / "r.db")
        theirs.chmod(0o755)
        (theirs / "r.db").chmod(0o644)
        done = ordinary_user.run([sys.executable, "-c", SERVE_AND_READ, str(theirs / "r.db"), str(free_port()), run],
                                 timeout=300)
        assert done.returncode == 0, done.stderr
        said = done.stdout.splitlines()  # the server's own line, then the script's two
        assert said[-2:] == ["run page", "nothing on stderr"], done.stdout
        assert sorted(p.name for p in theirs.iterdir()) == ["r.db"]
    finally:
        shutil.rmtree(theirs)
