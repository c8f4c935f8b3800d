"""The ``bfcl`` suite: the Berkeley Function-Calling Leaderboard's single-turn and multi-turn
categories (issue #26; the conversations are ``multi_turn``'s).

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
their sizes) and ``multi_turn`` (the unweighted mean of the four multi-turn categories). Each
accuracy's ``extra`` counts the error types.
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
from llama_zoo.suites.core.records import keyed_predictions
from llama_zoo.suites.core.stats import rate_metric
from llama_zoo.suites.tool_calling import bfcl_data as data
from llama_zoo.suites.tool_calling import formats
from llama_zoo.suites.tool_calling import multi_turn as mt

SUITE = "bfcl"
SUITE_VERSION = "1"


@dataclass(frozen=True)
class Case:
    entry: data.Entry
    reply: str | None = None  # made elsewhere (--predictions-file)


@dataclass(frozen=True)
class Played:
    """A multi-turn conversation's replies made elsewhere (--predictions-file)."""

    conversation: mt.Conversation
    replies: list[list[str]]


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


def request(ctx: Context, messages: Sequence[dict[str, str]], functions: Sequence[dict[str, Any]], fmt: str,
            index: int) -> GenerateRequest:
    """The chat so far, with the functions offered in format ``fmt``, as one generation request."""
    o, spec, tokenizer = ctx.options, ctx.spec, ctx.tokenizer
    settings = dict(max_new_tokens=o["max_new_tokens"], temperature=0.0, seed=ctx.seed + index,
                    stop_token_ids=eos_ids(spec),
                    stop_strings=tuple(spec.tokenizer.stop_strings) if spec.tokenizer else ())
    messages = list(messages)
    if fmt == "server":  # the server renders the tools in its chat template and parses the calls
        return GenerateRequest((), messages=tuple((m["role"], m["content"]) for m in messages),
                               tools=json.dumps(formats.openai_tools(functions)), **settings)
    if fmt == "json":
        text = formats.llama31_json_prompt(messages, functions)
        ids = tuple(tokenizer(text, add_special_tokens=False).input_ids) if tokenizer is not None else ()
        return GenerateRequest(ids, text=text, **settings)
    chat = formats.pythonic_messages(messages, functions) if fmt == "pythonic" else messages
    if tokenizer is None:  # a text backend: the server applies the model's chat template
        if fmt == "chat-template":
            raise LlamaZooError("--tool-format chat-template renders the tools with the model's own template: it needs a "
                                "token backend (hf, llama.cpp)")
        return GenerateRequest((), messages=tuple((m["role"], m["content"]) for m in chat), **settings)
    text = formats.llama_chat(chat, spec.family) if fmt == "pythonic" else None
    if text is None:
        tools = {"tools": list(functions)} if fmt == "chat-template" else {}
        text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False, **tools)
    return GenerateRequest(tuple(tokenizer(text, add_special_tokens=False).input_ids), text=text, **settings)


def too_long(ctx: Context, req: GenerateRequest) -> bool:
    """Whether a prompt and its reply overflow the run's --context (known where we tokenize)."""
    return bool(req.prompt) and len(req.prompt) + req.max_new_tokens > ctx.context


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


def read_predictions(path: str, by_id: dict[str, Any]) -> list[Case | Played]:
    """``{id, result}`` lines: BFCL's ids (``simple_python_0``) and the model's raw reply (for a
    multi-turn conversation, as BFCL stores it: per turn, the list of each step's reply)."""
    cases: list[Case | Played] = []
    for n, ref, result in keyed_predictions(path, "result", (str, list), "the model's reply, a string"):
        if isinstance(by_id.get(ref), mt.Conversation):
            cases.append(Played(by_id[ref], mt.read_replies(result, f"{path}:{n}")))
            continue
        if not isinstance(result, str):
            raise LlamaZooError(f"{path}:{n}: expected an object with 'id' and 'result' (the model's reply, a string)")
        if ref not in by_id:
            raise LlamaZooError(f"{path}:{n}: id {ref!r} is no case of the run's categories (BFCL's ids, e.g. "
                                "simple_python_0; give --category and --limit to match the file)")
        cases.append(Case(by_id[ref], result))
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
    if all(c in acc for c in data.MULTI_TURN):
        out.append({"name": "multi_turn", "value": float(np.mean([acc[c] for c in data.MULTI_TURN])), "ci_low": None,
                    "ci_high": None, "n": sum(len(by_category[c]) for c in data.MULTI_TURN),
                    "extra": {"how": "unweighted mean of the four multi-turn categories, as BFCL's leaderboard"}})
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
    for c in data.ALL:
        if c in by_category:
            m = rate_metric(f"category/{c}/accuracy", by_category[c], seed)
            m["extra"] = {"error_types": dict(errors.get(c, Counter()).most_common())}
            out.append(m)
    return out + summaries(by_category)


# -- the suite


class BfclSuite:
    info = SuiteInfo(
        name=SUITE, version=SUITE_VERSION,
        summary=("Tool calling: BFCL's single- and multi-turn categories in each Llama's own format, scored by "
                 "BFCL's checkers."),
        headline="accuracy", setup_keys=("categories", "tool_format", "limit"),
        paired=McNemar("passed", "calls right"),
        options=(
            Option("category", "simple_python", "BFCL categories, comma-separated, or a group: non_live, live, ast, "
                   f"single_turn, multi_turn. One of: {', '.join(data.ALL)}.", type=str),
            Option("tool_format", "auto", "How functions are offered: json (Llama 3.1's JSON tool calls), pythonic "
                   "(the zero-shot format of Llama 3.2, 3.3 and 4, BFCL's default prompt), chat-template (the "
                   "checkpoint's own template with tools=), server (tools= sent to an OpenAI-compatible server, "
                   "which parses the calls: --backend openai); auto picks the model's own.", choices=formats.FORMATS),
            Option("max_new_tokens", 256, "Longest reply.", type=int, minimum=1),
        ),
        scores_predictions_file=True,
        needs_tokens=False,  # a text backend is sent the chat (or tools=) and the server renders it
        interactive=True,  # multi-turn conversations call the APIs step by step
        meant_for="instruct",
        datasets=f"bfcl-eval's data directory (default: the installed package; {data.INSTALL})",
    )

    def check(self, spec, options) -> None:
        require_language_model(spec, SUITE)
        data.parse_categories(options["category"])

    def plan(self, ctx: Context) -> Plan:
        categories = data.parse_categories(ctx.options["category"])
        source = data.locate(ctx.dataset)
        entries: list[Any] = [e for c in categories for e in ctx.first(
            mt.load_multi_turn(source, c) if c in data.MULTI_TURN else data.load_category(source, c))]
        fmt = chosen_format(ctx)
        if fmt in ("server", "chat-template") and any(c in data.MULTI_TURN for c in categories):
            raise LlamaZooError(f"BFCL's multi-turn categories run in the json or pythonic format, not --tool-format {fmt}")
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
            items = []
            for i, e in enumerate(entries):
                if isinstance(e, mt.Conversation):
                    d = mt.Dialogue.start(e, fmt)
                    items.append(Item(i, (request(ctx, d.messages, e.functions, fmt, i),), d))
                else:
                    items.append(Item(i, (request(ctx, list(e.question), e.functions, fmt, i),), Case(e)))
            longest = max(items, key=lambda it: len(it.requests[0].prompt), default=None)
            if longest is not None and too_long(ctx, longest.requests[0]):
                need = len(longest.requests[0].prompt) + ctx.options["max_new_tokens"]
                case = longest.data.conversation.id if isinstance(longest.data, mt.Dialogue) else longest.data.entry.id
                grows = " (a conversation grows with each step: twice that is safer)" \
                    if isinstance(longest.data, mt.Dialogue) else ""
                raise LlamaZooError(f"{case}: its prompt and reply need {need:,} tokens, over --context {ctx.context:,}; "
                                    f"give a larger --context{grows}")
        data.checker()  # the checker is there before any model answers
        return Plan(source.name, source.revision, data.content_hash(source, categories), items, options, state=fmt)

    def work(self, ctx: Context) -> Work | None:
        """Each case's prompt (the JSON format's text, bytes / BYTES_PER_TOKEN) and its reply at most."""
        try:
            categories = data.parse_categories(ctx.options["category"])
            source = data.locate(ctx.dataset)
            entries: list[Any] = [e for c in categories for e in ctx.first(
                mt.load_multi_turn(source, c) if c in data.MULTI_TURN else data.load_category(source, c))]
        except LlamaZooError:
            return None
        prompt_bytes, prompts = 0, 0
        for e in entries:  # a conversation: one prompt per turn at least, each holding the first turn's
            question, turns = (e.turns[0], len(e.turns)) if isinstance(e, mt.Conversation) else (e.question, 1)
            prompt_bytes += turns * len(formats.llama31_json_prompt(list(question), e.functions).encode())
            prompts += turns
        new = ctx.options["max_new_tokens"]
        return Work(int(prompt_bytes / BYTES_PER_TOKEN), prompts * new, prompts,
                    f"{len(entries)} cases of {', '.join(categories)} ({prompts} prompts, multi-turn at one step per "
                    f"turn): {prompt_bytes:,} prompt bytes / {BYTES_PER_TOKEN:g}; {new} new tokens each at most")

    def follow_up(self, item: Item, answers, ctx: Context) -> Item | None:
        """A conversation's next step: its reply taken (calls run on its APIs), the chat so far asked
        again; None when it is over (a single-turn case is over at once)."""
        d = item.data
        if not isinstance(d, mt.Dialogue) or not d.answer(answers[0].texts[0]):
            return None
        step = request(ctx, d.messages, d.conversation.functions, d.fmt, item.index)
        if too_long(ctx, step):
            d.overflow = True
            return None
        return Item(item.index, (step,), d)

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        fmt = ctx.state
        for item, answer in zip(items, answers):
            if isinstance(item.data, (mt.Dialogue, Played)):
                emit(self.conversation_sample(item.index, item.data, fmt))
                continue
            case: Case = item.data
            reply = case.reply if case.reply is not None else answer[0].texts[0]
            emit(self.sample(item.index, case.entry, reply, fmt))

    @staticmethod
    def conversation_sample(index: int, played: mt.Dialogue | Played, fmt: str) -> Sample:
        conversation, replies = played.conversation, played.replies
        if isinstance(played, mt.Dialogue) and played.overflow:
            v = {"valid": False, "error_type": "context_overflow", "decoded": None,
                 "error": [f"the chat outgrew the run's --context in turn {played.turn} (give a larger --context)"]}
        else:
            v = mt.check_conversation(conversation, replies, fmt)
        extra: dict[str, Any] = {"steps": [len(t) for t in replies], "error": v["error"][:5], "decoded": v["decoded"]}
        if isinstance(played, mt.Dialogue):
            extra["force_quit"] = played.force_quit
        first = conversation.turns[0][-1]["content"] if conversation.turns and conversation.turns[0] else ""
        return Sample(index, input_ref=conversation.id, input=first, output=json.dumps(replies, ensure_ascii=False),
                      target=json.dumps(conversation.ground_truth, ensure_ascii=False),
                      scores={"passed": v["valid"], "category": conversation.category, "error_type": v["error_type"]},
                      extra=extra)

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
