"""Suites ``meta-evals:BENCHMARK``: a model answers the exact prompts Meta sent its Llama models
(``meta-llama/<Model>-evals``), scored as Meta's llama-cookbook recipe scores them, beside Meta's own
verdict on each row.

Prompts go as they are: the few-shot examples and the chat formatting are already in them, so no
template is applied; a BOS token is put in front where the prompt has none (the recipe runs vLLM
with ``add_bos_token=True``). Generation is greedy. An instruct row's answer is the regex match of
the recipe in the reply; a pretrained model's MMLU row is a choice among the letters by their
log-likelihood after the prompt. Metrics: accuracy over rows, the mean of per-subtask means where
Meta reports that (MMLU, MMLU-Pro), and Meta's own accuracy on the same rows.

One name is registered, ``meta-evals:TASK`` (a family, as ``lm-eval:TASK``); ``meta-evals:mmlu`` is
its ``member("mmlu")``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.base import (Context, Emit, Item, McNemar, Option, Plan, Sample, SuiteInfo, eos_ids,
                                        require_language_model)
from llama_zoo.suites.meta_evals.data import (BENCHMARKS, PRETRAIN_GOLD, Benchmark, EvalsData, Method, Row, benchmark,
                                              evals_repo, load)

PREFIX = "meta-evals"
SUITE_VERSION = "1"

OPTIONS = (
    Option("evals_dataset", None, "meta-evals: Meta's evals dataset (default: meta-llama/<the model's hub name>-evals, "
           "e.g. meta-llama/Llama-3.1-8B-Instruct-evals); found under $LLAMA_ZOO_DATA/<it>, else on the hub.", type=str),
    Option("max_new_tokens", None, "Longest completion (meta-evals: default the rows' eval_config max_gen_len, else "
           "the recipe's: MMLU 1024, MMLU-Pro 1024 instruct / 512 pretrained, GPQA 2048).", type=int, minimum=1),
)


def headline_of(bench: Benchmark) -> str:
    """The average Meta reports: macro over subtasks for MMLU and MMLU-Pro, micro elsewhere."""
    return "macro_accuracy" if bench.average == "macro" else "accuracy"


def _info(name: str, headline: str) -> SuiteInfo:
    return SuiteInfo(
        name=name, version=SUITE_VERSION, meant_for="generalist",
        summary="Meta's published per-sample evals: its exact prompts, its recipe's scoring, beside Meta's own verdict.",
        headline=headline, setup_keys=("kind", "max_new_tokens", "limit"),
        paired=McNemar("passed", "accuracy"), options=OPTIONS, needs_tokens=False,
        datasets="meta-evals: a parquet/jsonl/json file of Meta's evals rows, or a local snapshot directory (default: "
                 "$LLAMA_ZOO_DATA/meta-llama/<Model>-evals, else the hub)",
    )


class MetaEvalsFamily:
    """``meta-evals:TASK``: the options every benchmark takes, and each benchmark as a suite."""

    info = _info(f"{PREFIX}:TASK", "accuracy")

    def member(self, name: str) -> "MetaEvalsSuite":
        return MetaEvalsSuite(benchmark(name))

    def check(self, spec, options) -> None:  # ``--suite meta-evals:TASK`` typed as it is shown
        raise LlamaZooError(f"meta-evals:TASK stands for a benchmark: give one of {', '.join(BENCHMARKS)}, "
                            "e.g. --suite meta-evals:mmlu")


family = MetaEvalsFamily()


@dataclass(frozen=True)
class Planned:
    """What ``score`` needs from ``plan``: how the rows are asked."""

    method: Method


# -- answers


def normalized(text: str | None) -> str:
    """lm-eval's exact_match with ignore_case and ignore_punctuation, as the recipe sets it."""
    return "" if text is None else text.translate(str.maketrans("", "", string.punctuation)).strip().lower()


def parse_answer(method: Method, reply: str) -> str | None:
    """The recipe's answer in a reply: group 1 of its regex, the last match (or the first), or None."""
    found = re.findall(method.pattern or "", reply)
    if not found:
        return None
    return found[-1] if method.match == "last" else found[0]


def gold_letter(gold: str) -> str | None:
    """The letter of a choice row's gold: "Answer: B" (pretrain MMLU) or a bare letter."""
    text = gold.strip()
    hit = PRETRAIN_GOLD.fullmatch(text) or re.fullmatch(r"\(?([A-Z])\)?", text)
    return hit.group(1) if hit else None


def choice_context(prompt: str) -> str:
    """A pretrain choice prompt without its trailing " X" (Meta's prompt ends with an answer letter)."""
    return prompt[:-2] if re.search(r" [A-Z]$", prompt) else prompt


# -- requests


def encode(tokenizer, text: str) -> list[int]:
    """``text`` as ids, with one BOS in front: Meta's prompts carry their special tokens but not
    always the BOS, which the recipe has vLLM add."""
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    bos = tokenizer.bos_token_id
    return ids if bos is None or ids[:1] == [bos] else [bos, *ids]


def choice_windows(tokenizer, prompt: str, letters: str):
    """One window per letter: its tokens after the context (as lm-eval splits a pair: the whole
    encoded, the context's tokens cut off, so a merge across the boundary is the whole's)."""
    from llama_zoo.backends.base import TokenWindow

    context_text = choice_context(prompt)
    context = encode(tokenizer, context_text)
    windows = []
    for letter in letters:
        whole = encode(tokenizer, f"{context_text} {letter}")
        tail = whole[len(context):] if whole[:len(context)] == context else []
        windows.append(TokenWindow(tuple(context), tuple(tail or tokenizer(f" {letter}", add_special_tokens=False).input_ids)))
    return tuple(windows)


def generate_request(ctx: Context, row: Row, method: Method, max_new_tokens: int):
    from llama_zoo.backends.base import GenerateRequest

    settings = dict(max_new_tokens=max_new_tokens, temperature=0.0, top_p=1.0, seed=ctx.seed + row.index,
                    stop_token_ids=eos_ids(ctx.spec), stop_strings=method.stop)
    if ctx.tokenizer is None:  # a text backend: the prompt as text, the server tokenizes
        return GenerateRequest((), text=row.prompt, **settings)
    return GenerateRequest(tuple(encode(ctx.tokenizer, row.prompt)), text=row.prompt, **settings)


def _letters(row: Row) -> str:
    return string.ascii_uppercase[:row.choices or 4]


def _fits(ctx: Context, row: Row, request: Any, max_new_tokens: int) -> None:
    needed = len(request.prompt) + max_new_tokens if hasattr(request, "prompt") else request.length
    if needed > ctx.context:
        raise LlamaZooError(f"row {row.index} ({row.ref}) needs {needed} tokens (prompt and completion), more than "
                            f"--context {ctx.context}: give --context {needed} or more, or a smaller --max-new-tokens")


# -- metrics, shared with ``llama-zoo import meta-evals``


def accuracy_metrics(scores: Sequence[dict[str, Any]], bench: Benchmark, seed: int = 0) -> list[dict[str, Any]]:
    """Accuracy over rows, the macro average over subtasks (where Meta reports it) with a stratified
    bootstrap interval, Meta's own accuracy on the same rows, and how often the two verdicts agree.
    The headline comes first."""
    from llama_zoo.suites.core.stats import rate_metric

    passed = [bool(s["passed"]) for s in scores]
    meta = [bool(s["meta_is_correct"]) for s in scores]
    subtasks = [s.get("subtask") or "" for s in scores]
    out = [rate_metric("accuracy", passed, seed)]
    if bench.average == "macro":
        out.append(_macro("macro_accuracy", passed, subtasks, seed))
    out.append(rate_metric("meta_accuracy", meta, seed))
    if bench.average == "macro":
        out.append(_macro("meta_macro_accuracy", meta, subtasks, seed))
    out.append(rate_metric("agreement_with_meta", [a == b for a, b in zip(passed, meta)], seed))
    out.sort(key=lambda m: m["name"] != headline_of(bench))
    return out


def _macro(name: str, values: Sequence[bool], groups: Sequence[str], seed: int) -> dict[str, Any]:
    from llama_zoo.suites.core.stats import macro_mean_ci

    value, ci = macro_mean_ci([float(v) for v in values], groups, seed=seed)
    return {"name": name, "value": value, "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
            "n": len(values), "extra": {"subtasks": len(set(groups))}}


class MetaEvalsSuite:
    def __init__(self, bench: Benchmark):
        self.bench = bench
        self.info = _info(f"{PREFIX}:{bench.name}", headline_of(bench))

    def check(self, spec, options) -> None:
        require_language_model(spec, self.info.name)

    def data(self, ctx: Context) -> tuple[str, EvalsData]:
        repo = evals_repo(ctx.spec, ctx.options.get("evals_dataset"))
        return repo, load(repo, self.bench.name, ctx.dataset, ctx.dataset_revision)

    def plan(self, ctx: Context) -> Plan:
        repo, data = self.data(ctx)
        method = self.bench.method(data.pretrain)
        rows = ctx.first(data.rows)
        options: dict[str, Any] = {"benchmark": self.bench.name, "evals_dataset": repo, "kind": method.kind,
                                   "average": self.bench.average}
        if method.kind == "choice":
            if ctx.tokenizer is None:
                raise LlamaZooError(f"{self.info.name} on a pretrained model's rows scores the answer letters' "
                                    "log-likelihood, which a text backend does not give; use --backend hf, llama.cpp or vllm")
            items = [Item(i, choice_windows(ctx.tokenizer, row.prompt, _letters(row)), row) for i, row in enumerate(rows)]
        else:
            max_new = ctx.options.get("max_new_tokens") or data.rows[0].max_gen_len or method.max_new_tokens
            options.update(max_new_tokens=max_new, answer_pattern=method.pattern, match=method.match,
                           stop=list(method.stop))
            items = [Item(i, (generate_request(ctx, row, method, max_new),), row) for i, row in enumerate(rows)]
        if ctx.tokenizer is not None:
            for item in items:
                for request in item.requests:
                    _fits(ctx, item.data, request, options.get("max_new_tokens", 0))
        return Plan(data.name, data.revision, data.content_hash, items, options, state=Planned(method))

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        method = ctx.state.method
        for item, answer in zip(items, answers):
            row: Row = item.data
            extra = None
            if method.kind == "choice":
                logprobs = [float(sum(lp)) for lp in answer]
                letters = _letters(row)
                parsed = letters[max(range(len(logprobs)), key=logprobs.__getitem__)]
                output, passed = parsed, parsed == gold_letter(row.gold)
                extra = {"logprobs": dict(zip(letters, logprobs))}
            else:
                output = answer[0].texts[0]
                parsed = parse_answer(method, output)
                passed = parsed is not None and normalized(parsed) == normalized(row.gold)
            emit(Sample(item.index, input_ref=row.ref, input=row.prompt, output=output, target=row.gold,
                        scores=row_scores(row, passed, parsed), extra=extra))

    def metrics(self, samples, seed: int, runner=None, state=None) -> list[dict[str, Any]]:
        return accuracy_metrics([s["scores"] for s in samples], self.bench, seed)


def row_scores(row: Row, passed: bool, parsed: str | None) -> dict[str, Any]:
    """A sample's scores, the same keys in our runs and in Meta's imported ones."""
    return {"passed": bool(passed), "parsed": parsed, "subtask": row.subtask, "meta_is_correct": row.meta_correct}
