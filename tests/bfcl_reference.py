"""BFCL's own code, loaded from the installed ``bfcl-eval`` files (``pip install --no-deps``) so the
tests can hold llama-zoo's prompts, decoders and verdicts against it.

Only the modules BFCL's eval runner imports for its API clients and its server plumbing
(``openai``, ``overrides``, ``tenacity``, ``dotenv``, tree-sitter) are replaced, and only where
they are not installed: the functions compared here (Llama 3.1's prompt and decoder, the default
prompting decoder and system prompt, the language hints, the single-entry AST and relevance
runners) use none of them. The stubs leave ``sys.modules`` once BFCL's modules are imported.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import types
from functools import lru_cache
from typing import Any

import pytest

from llama_zoo.suites.tool_calling import bfcl_data

_STUBS = ("overrides", "tenacity", "dotenv", "openai", "tree_sitter", "tree_sitter_java", "tree_sitter_javascript",
          "filelock")


def _stub(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)

    def passthrough(*args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda f: f

    class Anything:
        def __init__(self, *a, **k):
            pass

        def __getattr__(self, _):
            return lambda *a, **k: None

    for attr in ("override", "final", "retry", "retry_if_exception_type", "retry_if_exception_message",
                 "stop_after_attempt", "wait_random_exponential", "before_sleep_log", "load_dotenv"):
        setattr(mod, attr, passthrough)
    for attr in ("EnforceOverrides", "OpenAI", "Language", "Parser", "FileLock", "RateLimitError"):
        setattr(mod, attr, Anything)
    mod.language = lambda: None  # type: ignore[attr-defined]
    return mod


@lru_cache(maxsize=1)
def bfcl() -> types.SimpleNamespace:
    """BFCL's modules, or a skip where the package is not installed."""
    if bfcl_data.package_dir() is None:
        pytest.skip(f"bfcl-eval is not installed ({bfcl_data.INSTALL})")
    bfcl_data.checker()  # the shared model_config table, as llama-zoo installs it
    # BFCL writes lock files (and results) under its project root, by default its own install
    # directory, which an ordinary user cannot write: give it a scratch one before its config loads
    if "BFCL_PROJECT_ROOT" not in os.environ:
        scratch = tempfile.mkdtemp(prefix="bfcl-project-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)  # one was left in /tmp by every run
        os.environ["BFCL_PROJECT_ROOT"] = scratch
    added = [n for n in _STUBS if importlib.util.find_spec(n) is None and n not in sys.modules]
    for name in added:
        sys.modules[name] = _stub(name)
    try:
        ns = types.SimpleNamespace(
            runner=importlib.import_module("bfcl_eval.eval_checker.eval_runner"),
            llama31=importlib.import_module("bfcl_eval.model_handler.local_inference.llama_3_1"),
            openai_fc=importlib.import_module("bfcl_eval.model_handler.api_inference.openai_completion"),
            handler_utils=importlib.import_module("bfcl_eval.model_handler.utils"),
            utils=importlib.import_module("bfcl_eval.utils"),
            enums=importlib.import_module("bfcl_eval.constants.enums"),
            checker=bfcl_data.checker(),
            tree_sitter="tree_sitter" not in added,
        )
    finally:
        for name in added:
            sys.modules.pop(name, None)
        if "tree_sitter" in added:  # parsers built on a stub must not serve llama-zoo's own import of them
            for name in ("java_parser", "js_parser"):
                sys.modules.pop(f"bfcl_eval.model_handler.parser.{name}", None)
    return ns


class _Llama31:
    """BFCL's ``LlamaHandler_3_1`` methods on an object that has no server behind it."""

    def __init__(self):
        cls = bfcl().llama31.LlamaHandler_3_1
        self.format_prompt = lambda messages, functions: cls._format_prompt(self, messages, functions)
        self.decode_ast = lambda result, language, has_tool_call_tag: cls.decode_ast(self, result, language,
                                                                                     has_tool_call_tag)
        self.decode_execute = lambda result, has_tool_call_tag: cls.decode_execute(self, result, has_tool_call_tag)


class _Prompting:
    """BFCL's default prompting handler's decoder (the ``OSSHandler`` one every Llama handler but
    3.1's keeps)."""

    def decode_ast(self, result, language, has_tool_call_tag):
        return bfcl().handler_utils.default_decode_ast_prompting(result, language, has_tool_call_tag)

    def decode_execute(self, result, has_tool_call_tag):
        return bfcl().handler_utils.default_decode_execute_prompting(result, has_tool_call_tag)


class _FunctionCalling:
    """BFCL's OpenAI FC handler's decoder, given what its ``_parse_query_response_FC`` makes of a
    server's reply: the ``{name: arguments}`` list where the server sent tool calls, else the text."""

    is_fc_model = True

    def decode_ast(self, result, language, has_tool_call_tag):
        import json

        envelope = json.loads(result)
        bfcl_result = envelope["tool_calls"] or envelope["content"]
        return bfcl().openai_fc.OpenAICompletionsHandler.decode_ast(self, bfcl_result, language, has_tool_call_tag)


def handler(fmt: str) -> Any:
    return {"json": _Llama31, "server": _FunctionCalling}.get(fmt, _Prompting)()


def bfcl_verdict(entry: bfcl_data.Entry, reply: str, fmt: str) -> dict[str, Any]:
    """BFCL's eval runner's verdict on one reply (``{"valid": True}`` or its error record)."""
    ns = bfcl()
    model_name = bfcl_data.SERVER_TOOLS if fmt == "server" else bfcl_data.PROMPTED
    h = handler(fmt)
    prompt_entry = {"id": entry.id, "function": [dict(f) for f in entry.functions_as_given]}
    if bfcl_data.is_relevance(entry.category):
        return ns.runner._evaluate_single_relevance_entry(h, entry.id, reply, prompt_entry, model_name, entry.category)
    language = bfcl_data.language_of(entry.category)
    lang = getattr(ns.enums.Language, language.upper())
    ret = getattr(ns.enums.ReturnFormat, language.upper())
    return ns.runner._evaluate_single_ast_entry(h, entry.id, reply, list(entry.ground_truth), prompt_entry, model_name,
                                                entry.category, language=lang, return_format=ret)


_runs = iter(range(10**9))


def bfcl_multi_turn_verdict(conversation, replies, fmt: str) -> dict[str, Any]:
    """BFCL's eval runner's verdict on a multi-turn conversation's replies, its own executor (``eval``
    of the call texts: only replies the tests wrote reach it) on fresh API objects: each call gets a
    model name of its own, since BFCL keeps the objects in module globals under that name."""
    entry = {"id": conversation.id, "initial_config": conversation.initial_config,
             "involved_classes": list(conversation.involved_classes)}
    return bfcl().runner._evaluate_single_multi_turn_entry(
        handler(fmt), conversation.id, [list(t) for t in replies], [list(t) for t in conversation.ground_truth], entry,
        f"reference_{next(_runs)}", conversation.category)


def bfcl_entries(category: str) -> list[dict[str, Any]]:
    """BFCL's own reading of a category, language hints added (what its generation sends)."""
    return bfcl().utils.load_dataset_entry(category, include_prereq=False, include_language_specific_hint=True)


def bfcl_openai_tools(functions) -> list[dict[str, Any]]:
    """BFCL's ``tools=`` for an OpenAI-compatible chat completions endpoint."""
    ns = bfcl()
    return ns.handler_utils.convert_to_tool(list(functions), ns.handler_utils.GORILLA_TO_OPENAPI,
                                            ns.enums.ModelStyle.OPENAI_COMPLETIONS)


def bfcl_system_prompt(functions) -> str:
    ns = bfcl()
    return ns.handler_utils.formulate_system_prompt(
        format_sensitivity_config=ns.handler_utils.DEFAULT_SYSTEM_PROMPT_FORMAT, functions=list(functions))
