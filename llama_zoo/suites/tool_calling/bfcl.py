"""The ``bfcl`` suite: the Berkeley Function-Calling Leaderboard's single-turn categories (issue #26).

Each case offers functions and asks a question; the model answers with calls in its own tool
format (``formats``), and the reply is scored as BFCL scores it: decoded (a reply that cannot be
decoded is wrong, with BFCL's ``ast_decoder:decoder_failed``), checked to be in call form, then
judged by BFCL's own AST checker (``bfcl_data.check_calls``), which reports each wrong answer's
error type (``simple_function_checker:wrong_func_name``, ``type_error:simple``, ...). In the
relevance categories a case passes when the reply holds no call (``irrelevance``) or some call
(``live_relevance``), as BFCL's relevance runner decides.

Metrics: ``accuracy`` over every case of the run, ``category/<c>/accuracy`` per category (each with
a 95% bootstrap interval), and BFCL's leaderboard summaries where the run holds their categories:
``non_live_ast`` (the unweighted mean of simple, multiple, parallel and parallel_multiple, simple
being the mean of its three languages) and ``live_ast`` (the four live AST categories, weighted by
their sizes). Each accuracy's ``extra`` counts the error types.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from llama_zoo.backends.base import GenerateRequest
from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.base import (BYTES_PER_TOKEN, Context, Emit, Item, McNemar, Option, Plan, Sample, SuiteInfo,
                                        Work, eos_ids, require_language_model)
from llama_zoo.suites.core.records import jsonl_file
from llama_zoo.suites.core.stats import rate_metric
from llama_zoo.suites.tool_calling import bfcl_data as data
from llama_zoo.suites.tool_calling import formats

SUITE = "bfcl"
SUITE_VERSION = "1"


@dataclass(frozen=True)
class Case:
    entry: data.Entry
    reply: str | None = None  # made elsewhere (--predictions-file)


# -- one case's verdict, as BFCL's eval runner reaches it


def verdict(entry: data.Entry, reply: str, fmt: str) -> dict[str, Any]:
    """``{"valid", "error_type", "error", "decoded"}`` for one reply: BFCL's relevance runner for
    the relevance categories, else its AST runner (decode, call form, AST checker)."""
    model_name = data.SERVER_TOOLS if fmt == "server" else data.PROMPTED
    language = data.language_of(entry.category)
    if data.is_relevance(entry.category):
        try:
            decoded = formats.decode(reply, fmt, "python")
            has_call = not formats.is_empty(decoded)
        except formats.NotACall:
            decoded, has_call = None, False
        wanted = "irrelevance" not in entry.category
        if has_call == wanted:
            return {"valid": True, "error_type": None, "error": [], "decoded": decoded}
        kind = "relevance_error:decoder_failed" if wanted else "irrelevance_error:decoder_success"
        return {"valid": False, "error_type": kind, "error": [kind], "decoded": decoded}
    try:
        decoded = formats.decode(reply, fmt, language)
    except formats.NotACall as exc:
        return {"valid": False, "error_type": "ast_decoder:decoder_failed",
                "error": [f"Invalid syntax. Failed to decode AST. {exc}"], "decoded": None}
    if not formats.is_call_list(decoded):
        return {"valid": False, "error_type": "ast_decoder:decoder_wrong_output_format",
                "error": ["Did not output in the specified format."], "decoded": decoded}
    result = data.check_calls(entry.functions_as_given, decoded, entry.ground_truth, entry.category, model_name)
    return {"valid": bool(result["valid"]), "error_type": result.get("error_type"), "error": result.get("error", []),
            "decoded": decoded}


# -- prompts


def request(ctx: Context, entry: data.Entry, fmt: str, index: int) -> GenerateRequest:
    o, spec, tokenizer = ctx.options, ctx.spec, ctx.tokenizer
    settings = dict(max_new_tokens=o["max_new_tokens"], temperature=0.0, seed=ctx.seed + index,
                    stop_token_ids=eos_ids(spec),
                    stop_strings=tuple(spec.tokenizer.stop_strings) if spec.tokenizer else ())
    messages = list(entry.question)
    if fmt == "server":  # the server renders the tools in its chat template and parses the calls
        return GenerateRequest((), messages=tuple((m["role"], m["content"]) for m in messages),
                               tools=json.dumps(formats.openai_tools(entry.functions)), **settings)
    if fmt == "json":
        text = formats.llama31_json_prompt(messages, entry.functions)
        ids = tuple(tokenizer(text, add_special_tokens=False).input_ids) if tokenizer is not None else ()
        return GenerateRequest(ids, text=text, **settings)
    chat = formats.pythonic_messages(messages, entry.functions) if fmt == "pythonic" else messages
    if tokenizer is None:  # a text backend: the server applies the model's chat template
        if fmt == "chat-template":
            raise LlamaZooError("--tool-format chat-template renders the tools with the model's own template: it needs a "
                                "token backend (hf, llama.cpp)")
        return GenerateRequest((), messages=tuple((m["role"], m["content"]) for m in chat), **settings)
    text = formats.llama_chat(chat, spec.family) if fmt == "pythonic" else None
    if text is None:
        tools = {"tools": list(entry.functions)} if fmt == "chat-template" else {}
        text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False, **tools)
    return GenerateRequest(tuple(tokenizer(text, add_special_tokens=False).input_ids), text=text, **settings)


def chosen_format(ctx: Context) -> str:
    fmt = ctx.options["tool_format"]
    if fmt == "auto":
        fmt = formats.default_format(ctx.spec, ctx.tokenizer)
    if fmt == "server" and ctx.predictions_file is None and ctx.tokenizer is not None:
        raise LlamaZooError("--tool-format server sends tools= to an OpenAI-compatible server that parses the calls: "
                            "give --backend openai --base-url URL")
    own_chat = fmt == "pythonic" and ctx.spec.family in formats.HEADER_FAMILIES
    if ctx.predictions_file is None and fmt != "json" and not own_chat and ctx.tokenizer is not None \
            and not getattr(ctx.tokenizer, "chat_template", None):
        raise LlamaZooError(f"{ctx.spec.id} has no tool-call format and its tokenizer no chat template: bfcl needs an "
                            "instruct model (Llama 3.1 takes --tool-format json; others their chat template)")
    return fmt


def read_predictions(path: str, by_id: dict[str, data.Entry]) -> list[Case]:
    """``{id, result}`` lines: BFCL's ids (``simple_python_0``) and the model's raw reply."""
    cases, seen = [], set()
    for n, rec in jsonl_file(path, "--predictions-file"):
        if not isinstance(rec, dict) or "id" not in rec or not isinstance(rec.get("result"), str):
            raise LlamaZooError(f"{path}:{n}: expected an object with 'id' and 'result' (the model's reply, a string)")
        ref = str(rec["id"])
        if ref not in by_id:
            raise LlamaZooError(f"{path}:{n}: id {ref!r} is no case of the run's categories (BFCL's ids, e.g. "
                                "simple_python_0; give --category and --limit to match the file)")
        if ref in seen:
            raise LlamaZooError(f"{path}:{n}: id {ref!r} again")
        seen.add(ref)
        cases.append(Case(by_id[ref], rec["result"]))
    if not cases:
        raise LlamaZooError(f"{path}: no predictions")
    return cases


# -- metrics


def summaries(by_category: dict[str, list[bool]]) -> list[dict[str, Any]]:
    """BFCL's leaderboard summaries the run's categories allow."""
    acc = {c: float(np.mean(v)) for c, v in by_category.items()}
    out = []
    if all(c in acc for c in data.NON_LIVE_AST):
        simple = np.mean([acc["simple_python"], acc["simple_java"], acc["simple_javascript"]])
        value = float(np.mean([simple, acc["multiple"], acc["parallel"], acc["parallel_multiple"]]))
        out.append({"name": "non_live_ast", "value": value, "ci_low": None, "ci_high": None,
                    "n": sum(len(by_category[c]) for c in data.NON_LIVE_AST),
                    "extra": {"how": "unweighted mean of simple (mean of python, java, javascript), multiple, parallel, "
                                     "parallel_multiple, as BFCL's leaderboard"}})
    if all(c in acc for c in data.LIVE_AST):
        pooled = [p for c in data.LIVE_AST for p in by_category[c]]
        metric = rate_metric("live_ast", pooled)
        metric["extra"] = {"how": "the live AST categories weighted by their sizes, as BFCL's leaderboard"}
        out.append(metric)
    return out


def metrics_of(scores: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    by_category: dict[str, list[bool]] = {}
    errors: dict[str, Counter] = {}
    for s in scores:
        by_category.setdefault(s["category"], []).append(bool(s["passed"]))
        if s.get("error_type"):
            errors.setdefault(s["category"], Counter())[s["error_type"]] += 1
    overall = rate_metric("accuracy", [bool(s["passed"]) for s in scores], seed)
    overall["extra"] = {"error_types": dict(sum(errors.values(), Counter()).most_common())}
    out = [overall]
    for c in data.CATEGORIES:
        if c in by_category:
            m = rate_metric(f"category/{c}/accuracy", by_category[c], seed)
            m["extra"] = {"error_types": dict(errors.get(c, Counter()).most_common())}
            out.append(m)
    return out + summaries(by_category)


# -- the suite


class BfclSuite:
    info = SuiteInfo(
        name=SUITE, version=SUITE_VERSION,
        summary="Tool calling: BFCL's single-turn categories in each Llama's own format, scored by BFCL's checker.",
        headline="accuracy", setup_keys=("categories", "tool_format", "limit"),
        paired=McNemar("passed", "calls right"),
        options=(
            Option("category", "simple_python", "BFCL categories, comma-separated, or a group: non_live, live, ast, "
                   f"single_turn. One of: {', '.join(data.CATEGORIES)}.", type=str),
            Option("tool_format", "auto", "How functions are offered: json (Llama 3.1's JSON tool calls), pythonic "
                   "(the zero-shot format of Llama 3.2, 3.3 and 4, BFCL's default prompt), chat-template (the "
                   "checkpoint's own template with tools=), server (tools= sent to an OpenAI-compatible server, "
                   "which parses the calls: --backend openai); auto picks the model's own.", choices=formats.FORMATS),
            Option("max_new_tokens", 256, "Longest reply.", type=int, minimum=1),
        ),
        scores_predictions_file=True,
        needs_tokens=False,  # a text backend is sent the chat (or tools=) and the server renders it
        meant_for="instruct",
        datasets=f"bfcl-eval's data directory (default: the installed package; {data.INSTALL})",
    )

    def check(self, spec, options) -> None:
        require_language_model(spec, SUITE)
        data.parse_categories(options["category"])

    def plan(self, ctx: Context) -> Plan:
        categories = data.parse_categories(ctx.options["category"])
        source = data.locate(ctx.dataset)
        entries = [e for c in categories for e in ctx.first(data.load_category(source, c))]
        fmt = chosen_format(ctx)
        if fmt != "json" and ctx.predictions_file is None and ctx.tokenizer is not None:
            for language in {data.language_of(c) for c in categories} - {"python"}:
                data.tree_sitter_parser(language)  # refused now, not after the model has answered
        options: dict[str, Any] = {"categories": list(categories), "tool_format": fmt}
        if ctx.predictions_file is not None:
            options["predictions_file"] = ctx.predictions_file
            cases = read_predictions(ctx.predictions_file, {e.id: e for e in entries})
            items = [Item(i, (), c) for i, c in enumerate(cases)]
        else:
            options["max_new_tokens"] = ctx.options["max_new_tokens"]
            items = [Item(i, (request(ctx, e, fmt, i),), Case(e)) for i, e in enumerate(entries)]
        data.checker()  # the checker is there before any model answers
        return Plan(source.name, source.revision, data.content_hash(source, categories), items, options, state=fmt)

    def work(self, ctx: Context) -> Work | None:
        """Each case's prompt (the JSON format's text, bytes / BYTES_PER_TOKEN) and its reply at most."""
        try:
            categories = data.parse_categories(ctx.options["category"])
            source = data.locate(ctx.dataset)
            entries = [e for c in categories for e in ctx.first(data.load_category(source, c))]
        except LlamaZooError:
            return None
        prompt_bytes = sum(len(formats.llama31_json_prompt(list(e.question), e.functions).encode()) for e in entries)
        new = ctx.options["max_new_tokens"]
        return Work(int(prompt_bytes / BYTES_PER_TOKEN), len(entries) * new, len(entries),
                    f"{len(entries)} cases of {', '.join(categories)}: {prompt_bytes:,} prompt bytes / "
                    f"{BYTES_PER_TOKEN:g}; {new} new tokens each at most")

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        fmt = ctx.state
        for item, answer in zip(items, answers):
            case: Case = item.data
            reply = case.reply if case.reply is not None else answer[0].texts[0]
            emit(self.sample(item.index, case.entry, reply, fmt))

    @staticmethod
    def sample(index: int, entry: data.Entry, reply: str, fmt: str) -> Sample:
        v = verdict(entry, reply, fmt)
        question = entry.question[-1]["content"] if entry.question else ""
        return Sample(index, input_ref=entry.id, input=question, output=reply,
                      target=json.dumps(entry.ground_truth, ensure_ascii=False) if entry.ground_truth else None,
                      scores={"passed": v["valid"], "category": entry.category, "error_type": v["error_type"]},
                      extra={"error": [str(e) for e in v["error"]][:5],
                             "decoded": json.loads(json.dumps(v["decoded"], default=repr))})

    def metrics(self, samples, seed: int, runner=None, state=None) -> list[dict[str, Any]]:
        return metrics_of([s["scores"] for s in samples], seed)


suite = BfclSuite()
