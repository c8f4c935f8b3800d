"""Per-task time limits: measured once per machine and interpreter, then read from the cache."""

from __future__ import annotations

import json

import pytest

from llama_zoo.suites.code import calibration, humaneval


@pytest.fixture
def three_tasks(humaneval_problems):
    problems = humaneval_problems
    return humaneval.Problems("three", None, {t: problems.tasks[t] for t in list(problems.tasks)[:3]})


def test_canonical_times_are_measured_once_and_cached(three_tasks, tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_ZOO_CACHE", str(tmp_path))
    first = humaneval.canonical_limits(three_tasks)
    stored = json.loads((tmp_path / "sandbox-timings.json").read_text())
    assert list(stored) == [calibration.interpreter_key()] and len(stored[calibration.interpreter_key()]) == 3
    assert all(0 < seconds < 5 for seconds in stored[calibration.interpreter_key()].values())
    assert all(limit.timeout_s >= calibration.TIMEOUT_FLOOR_S for limit in first.values())

    def no_runs(*args, **kwargs):
        raise AssertionError("the canonical solutions ran again")

    monkeypatch.setattr(calibration, "run_jobs", no_runs)
    assert humaneval.canonical_limits(three_tasks) == first


def test_a_new_interpreter_or_program_is_measured_afresh(three_tasks, tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_ZOO_CACHE", str(tmp_path))
    humaneval.canonical_limits(three_tasks)
    task = next(iter(three_tasks.tasks.values()))
    changed = dict(task, test=task["test"] + "\n# a different test\n")
    keys = {calibration.job_key(humaneval.job(t, t["canonical_solution"])) for t in (task, changed)}
    assert len(keys) == 2  # the cache is keyed by what runs, not by the task's name
    real = calibration.interpreter_key()
    monkeypatch.setattr(calibration, "interpreter_key", lambda: "another-python")
    humaneval.canonical_limits(three_tasks)
    stored = json.loads((tmp_path / "sandbox-timings.json").read_text())
    assert set(stored) == {real, "another-python"} and len(stored["another-python"]) == 3
