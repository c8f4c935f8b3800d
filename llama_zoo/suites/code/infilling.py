"""HumanEval-Infilling (Bavarian et al. 2022): fill in the middle of HumanEval's canonical solutions,
prompted with the model's own FIM tokens and checked by running the tests.

Single-line and multi-line tasks are derived here from HumanEval, deterministically, exactly as the
official files have them (a conformance test compares all 6,848): single-line takes each non-empty
line of a canonical solution, multi-line every span of non-empty lines i <= j with blank lines
inside kept. Random-span tasks were cut at random character positions by the authors; they are
loaded from the hub or a local copy of the official files.

The candidate program is ``prompt + completion + suffix``; the test runs apart from it, in the
sandbox's trusted referee, with the helpers from ``prompt + canonical middle + suffix``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.base import Chart, Context, McNemar, Option, SuiteInfo, eos_ids
from llama_zoo.suites.code.humaneval import (GENERATION_OPTIONS, SCAN_CODE, UNSAFE, WORKERS, HumanEvalSuite, Problems,
                                            load_problems, read_jsonl)
from llama_zoo.suites.code.sandbox import Job
from llama_zoo.backends.base import GenerateRequest

SUITE = "humaneval-infilling"
SUITE_VERSION = "2"  # 2: tests run apart from the candidate
SUBSETS = {
    "single-line": "SingleLineInfilling",
    "multi-line": "MultiLineInfilling",
    "random-span": "RandomSpanInfilling",
    "random-span-light": "RandomSpanInfillingLight",
}
FIM_MODES = ("psm", "spm")
# Meta's trick for encoding without SentencePiece's implicit leading space: encode a sentinel
# character in front, then drop the sentinel's tokens.
SENTINEL = "☺"


def _task(kind: str, p: dict[str, Any], tag: str, lines: list[str], first: int, last: int) -> dict[str, Any]:
    return {
        "task_id": f"{kind}/{p['task_id']}/{tag}",
        "entry_point": p["entry_point"],
        "prompt": p["prompt"] + "\n".join(lines[:first]) + "\n",
        "suffix": "\n".join(lines[last + 1:]),
        "canonical_solution": "\n".join(lines[first:last + 1]) + "\n",
        "test": p["test"],
    }


def single_line(humaneval: Problems) -> dict[str, dict[str, Any]]:
    tasks = {}
    for p in humaneval.tasks.values():
        lines = p["canonical_solution"].split("\n")
        for i, line in enumerate(lines):
            if line.strip():
                task = _task("SingleLineInfilling", p, f"L{i}", lines, i, i)
                tasks[task["task_id"]] = task
    return tasks


def multi_line(humaneval: Problems) -> dict[str, dict[str, Any]]:
    tasks = {}
    for p in humaneval.tasks.values():
        lines = p["canonical_solution"].split("\n")
        filled = [i for i, line in enumerate(lines) if line.strip()]
        for first in filled:
            for last in (j for j in filled if j >= first):
                task = _task("MultiLineInfilling", p, f"L{first}_L{last}", lines, first, last)
                tasks[task["task_id"]] = task
    return tasks


def load_tasks(subset: str, humaneval: Problems, dataset: str | None = None) -> Problems:
    if subset not in SUBSETS:
        raise LlamaZooError(f"unknown infilling subset {subset!r}; subsets: {', '.join(SUBSETS)}")
    if dataset:  # the official files (a directory holding them, or one file)
        path = Path(dataset).expanduser()
        file = path / f"HumanEval-{SUBSETS[subset]}.jsonl.gz" if path.is_dir() else path
        if not file.is_file():
            raise LlamaZooError(f"no {subset} infilling tasks at {file}")
        return Problems(str(file.resolve()), None, {r["task_id"]: r for r in read_jsonl(file)})
    if subset == "single-line":
        return Problems(f"{SUITE}/{subset} (derived from {humaneval.name})", humaneval.revision, single_line(humaneval))
    if subset == "multi-line":
        return Problems(f"{SUITE}/{subset} (derived from {humaneval.name})", humaneval.revision, multi_line(humaneval))
    try:
        import datasets

        rows = datasets.load_dataset("loubnabnl/humaneval_infilling", SUBSETS[subset], split="test")
    except Exception as exc:  # noqa: BLE001 - offline, or no datasets package
        raise LlamaZooError(f"the {subset} tasks come from the hub, which is unreachable ({type(exc).__name__}); "
                            "give --dataset DIR with the official HumanEval-Infilling files") from None
    return Problems(f"loubnabnl/humaneval_infilling/{SUBSETS[subset]}", getattr(rows, "_fingerprint", None),
                    {r["task_id"]: dict(r) for r in rows})


def job(task: dict[str, Any], completion: str) -> Job:
    return Job(task["prompt"] + completion + task["suffix"], task["entry_point"],
               trusted=task["prompt"] + task["canonical_solution"] + task["suffix"], test=task["test"])


# --------------------------------------------------------------------------- FIM prompts


def encode_without_leading_space(tokenizer, text: str) -> list[int]:
    sentinel = len(tokenizer.encode(SENTINEL, add_special_tokens=False))
    return tokenizer.encode(SENTINEL + text, add_special_tokens=False)[sentinel:]


def fim_prompt(tokenizer, fim, prefix: str, suffix: str, mode: str = "psm", bos: int | None = None) -> list[int]:
    """Code Llama's infilling prompt, by token id.

    PSM: BOS, PRE, prefix, SUF, suffix, MID -> middle ... EOT
    SPM: BOS, PRE, SUF, suffix, MID, prefix -> middle ... EOT
    The suffix is encoded without the implicit leading space; under SPM the prefix follows MID and
    is encoded the same way, since the model continues it directly.
    """
    start = [bos] if bos is not None else []
    suffix_ids = encode_without_leading_space(tokenizer, suffix)
    if mode == "psm":
        return start + [fim.prefix] + tokenizer.encode(prefix, add_special_tokens=False) + [fim.suffix] + suffix_ids + [fim.middle]
    if mode == "spm":
        return start + [fim.prefix, fim.suffix] + suffix_ids + [fim.middle] + encode_without_leading_space(tokenizer, prefix)
    raise LlamaZooError(f"unknown FIM mode {mode!r}; modes: {', '.join(FIM_MODES)}")


def decode_middle(tokenizer, ids: Sequence[int], eot: int) -> str:
    """The generated middle up to EOT, leading spaces kept (a plain decode drops the first one)."""
    ids = list(ids)
    if eot in ids:
        ids = ids[:ids.index(eot)]
    sentinel = tokenizer.encode(SENTINEL, add_special_tokens=False)
    text = tokenizer.decode(sentinel + ids, skip_special_tokens=True)
    start = text.find(SENTINEL)
    return text[start + len(SENTINEL):] if start >= 0 else text


# --------------------------------------------------------------------------- the suite


class InfillingSuite(HumanEvalSuite):
    info = SuiteInfo(
        name=SUITE, version=SUITE_VERSION, meant_for="generalist",
        summary="HumanEval-Infilling: fill in the middle with the model's own FIM tokens (Code Llama PSM/SPM); pass@k.",
        headline="pass@1", setup_keys=("subset", "fim_mode", "samples", "temperature", "limit", "unsafe_no_isolation"), paired=McNemar("passed"),
        charts=(Chart("by_option", "pass@1", group="subset", series="fim_mode"),),
        options=(
            Option("subset", "single-line", "single-line, multi-line, random-span or random-span-light.", choices=tuple(SUBSETS)),
            Option("fim_mode", "psm", "psm (prefix, suffix, middle) or spm (suffix first).", choices=FIM_MODES),
            *GENERATION_OPTIONS,
            SCAN_CODE,
            UNSAFE,
            WORKERS,
        ),
        scores_samples_file=True,
        datasets="single- and multi-line tasks are derived from HumanEval (default); random-span ones load from the hub, "
                 "or give a directory holding the official files",
    )

    def check(self, spec, options) -> None:
        super().check(spec, options)
        if not (spec.tokenizer and spec.tokenizer.fim):
            raise LlamaZooError(f"{spec.id} cannot fill in the middle (no FIM tokens: it was not trained to infill); "
                                "humaneval-infilling needs Code Llama 7B, 13B or 70B (base or Instruct)")
        if options["fim_mode"] not in spec.tokenizer.fim.modes:
            raise LlamaZooError(f"{spec.id} supports FIM modes {', '.join(spec.tokenizer.fim.modes)}, not {options['fim_mode']!r}")

    def problems(self, ctx: Context) -> Problems:
        return load_tasks(ctx.options["subset"], load_problems(), ctx.dataset)

    def build(self, task: dict[str, Any], completion: str) -> Job:
        return job(task, completion)

    def extra_options(self, options) -> dict[str, Any]:
        return {"subset": options["subset"], "fim_mode": options["fim_mode"]}

    def instruct(self, ctx: Context) -> bool:
        return False  # infilling is prompted by FIM tokens, never by a chat

    def request(self, ctx: Context, task: dict[str, Any], index: int) -> GenerateRequest:
        fim, options = ctx.spec.tokenizer.fim, ctx.options
        ids = fim_prompt(ctx.tokenizer, fim, task["prompt"], task["suffix"], options["fim_mode"], bos=ctx.tokenizer.bos_token_id)
        return GenerateRequest(tuple(ids), max_new_tokens=options["max_new_tokens"], temperature=options["temperature"],
                               top_p=options["top_p"], seed=ctx.seed + index, stop_token_ids=(fim.eot, *eos_ids(ctx.spec)))

    def completion(self, ctx: Context, generation) -> str:
        return decode_middle(ctx.tokenizer, generation.tokens[0], ctx.spec.tokenizer.fim.eot)

    def sample_extra(self, task: dict[str, Any]) -> dict[str, Any]:
        return {"suffix": task["suffix"]}


suite = InfillingSuite()
