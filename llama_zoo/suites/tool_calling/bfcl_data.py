"""BFCL's data and checker, read from the ``bfcl-eval`` package without installing its pins.

``bfcl-eval`` (Apache-2.0) pins ``numpy==1.26.4`` and a dozen API clients, so it is never a
dependency of llama-zoo: install its files alone with ``pip install --no-deps bfcl-eval`` (nothing
else in the environment changes). Its data is plain JSON lines read from the package directory
(found with ``importlib.util.find_spec``, which runs none of its code), or from ``--dataset DIR`` in
the same layout (``BFCL_v4_<category>.json`` beside ``possible_answer/``). Its AST checker is pure
Python that imports only BFCL's enums and type tables, and ``constants.model_config``, which pulls
in every API client for one per-model flag; that one module is replaced here by a table answering
that flag, so the checker itself runs unchanged.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from llama_zoo.errors import LlamaZooError

PACKAGE = "bfcl_eval"
DISTRIBUTION = "bfcl-eval"
TESTED_RELEASE = "2026.3.23"
INSTALL = f"pip install --no-deps {DISTRIBUTION}=={TESTED_RELEASE}"
VERSION_PREFIX = "BFCL_v4"

# BFCL's single-turn categories, as its leaderboard groups them
NON_LIVE_AST = ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple")
LIVE_AST = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
RELEVANCE = ("irrelevance", "live_irrelevance", "live_relevance")
CATEGORIES = NON_LIVE_AST + ("irrelevance",) + LIVE_AST + ("live_irrelevance", "live_relevance")
MULTI_TURN = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
ALL = CATEGORIES + MULTI_TURN
GROUPS = {
    "non_live": NON_LIVE_AST + ("irrelevance",),
    "live": LIVE_AST + ("live_irrelevance", "live_relevance"),
    "ast": NON_LIVE_AST + LIVE_AST,
    "single_turn": CATEGORIES,
    "multi_turn": MULTI_TURN,
}
NOT_YET = ("web_search", "memory", "format_sensitivity")


def language_of(category: str) -> str:
    """The language BFCL checks a category's calls in (its ``is_java`` / ``is_js``)."""
    if "javascript" in category:
        return "javascript"
    return "java" if "java" in category else "python"


def is_relevance(category: str) -> bool:
    return "relevance" in category  # irrelevance too, as BFCL tests it


def parse_categories(text: str) -> tuple[str, ...]:
    """``simple_python,multiple`` or a group (``non_live``, ``live``, ``ast``, ``single_turn``)."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part in GROUPS:
            out += GROUPS[part]
        elif part in ALL:
            out.append(part)
        elif part in NOT_YET:
            raise LlamaZooError(f"--category {part}: BFCL's {part} is not run by llama-zoo yet; the categories it runs "
                                f"are {', '.join(ALL)}")
        else:
            raise LlamaZooError(f"--category {part}: no such BFCL category; give one or more of {', '.join(ALL)}, "
                                f"or a group: {', '.join(GROUPS)}")
    if not out:
        raise LlamaZooError("--category: give at least one BFCL category")
    return tuple(dict.fromkeys(out))


# -- where the data is


def package_dir() -> Path | None:
    """The installed ``bfcl_eval`` package's directory, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def package_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Source:
    directory: Path  # holds BFCL_v4_<category>.json and possible_answer/
    name: str
    revision: str


def locate(dataset: str | None) -> Source:
    if dataset:
        d = Path(dataset).expanduser()
        if (d / "data").is_dir() and not any(d.glob(f"{VERSION_PREFIX}_*.json")):
            d = d / "data"  # the package directory itself
        if not d.is_dir() or not any(d.glob(f"{VERSION_PREFIX}_*.json")):
            raise LlamaZooError(f"--dataset {dataset}: no {VERSION_PREFIX}_<category>.json there (give bfcl_eval's data "
                                f"directory, or a directory in its layout)")
        return Source(d, f"bfcl:{d}", "local")
    pkg = package_dir()
    if pkg is None or not (pkg / "data").is_dir():
        raise LlamaZooError(f"BFCL's data is not installed: {INSTALL} (its files alone, none of its pinned "
                            "dependencies), or give --dataset DIR with its data directory")
    return Source(pkg / "data", DISTRIBUTION, package_version() or "unknown")


def _json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise LlamaZooError(f"{path} is missing: BFCL's data is incomplete (reinstall with {INSTALL})")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Entry:
    """One BFCL test case: its id, the chat turns, the functions offered (with BFCL's language hints
    added, as its generation adds them) and the accepted answers (None for relevance categories)."""

    id: str
    category: str
    question: tuple[dict[str, str], ...]  # the first (only) turn's messages
    functions: tuple[dict[str, Any], ...]
    functions_as_given: tuple[dict[str, Any], ...]  # what the checker reads (no hints)
    ground_truth: tuple[dict[str, Any], ...] | None


def load_category(source: Source, category: str) -> list[Entry]:
    rows = _json_lines(source.directory / f"{VERSION_PREFIX}_{category}.json")
    answers: dict[str, Any] = {}
    if not is_relevance(category):
        answers = {r["id"]: r["ground_truth"]
                   for r in _json_lines(source.directory / "possible_answer" / f"{VERSION_PREFIX}_{category}.json")}
    out = []
    for row in rows:
        if row["id"] not in answers and not is_relevance(category):
            raise LlamaZooError(f"{category}: {row['id']} has no answer in possible_answer/ (the data is inconsistent)")
        out.append(Entry(row["id"], category, tuple(row["question"][0]),
                         tuple(with_language_hint(json.loads(json.dumps(row["function"])), category)),
                         tuple(row["function"]), tuple(answers[row["id"]]) if answers else None))
    return out


def content_hash(source: Source, categories: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for c in categories:
        for path in (source.directory / f"{VERSION_PREFIX}_{c}.json",
                     source.directory / "possible_answer" / f"{VERSION_PREFIX}_{c}.json"):
            if path.is_file():
                h.update(path.read_bytes())
    if any(c in MULTI_TURN for c in categories):  # the APIs' documentation the conversations offer
        for path in sorted((source.directory / "multi_turn_func_doc").glob("*.json")):
            h.update(path.read_bytes())
    return h.hexdigest()


# -- BFCL's language hints (what its generation adds to each function's documentation)


def with_language_hint(functions: list[dict[str, Any]], category: str) -> list[dict[str, Any]]:
    """BFCL's per-language note on each function's description, and Java / JavaScript parameters
    retyped as strings with their type said in words (the model writes them as code text)."""
    language = language_of(category)
    hint = {"java": " Note that the provided function is in Java 8 SDK syntax.",
            "javascript": " Note that the provided function is in JavaScript syntax."}.get(
        language, " Note that the provided function is in Python 3 syntax.")
    word = {"java": "Java", "javascript": "JavaScript"}.get(language)
    for fn in functions:
        fn["description"] = fn["description"] + hint
        if word is None:
            continue
        for value in fn["parameters"]["properties"].values():
            if value["type"] == "any":
                value["description"] += f" This parameter can be of any type of {word} object in string representation."
            else:
                value["description"] += f" This is {word} {value['type']} type parameter in string representation."
            if value["type"] in (("ArrayList", "Array") if language == "java" else ("array",)):
                value["description"] += (f" The list elements are of type {value['items']['type']}; they are not in "
                                         "string representation.")
                del value["items"]
            if language == "javascript" and value["type"] == "dict" and "properties" in value:
                value["description"] += (" The dictionary entries have the following schema; they are not in string "
                                         f"representation. {json.dumps(value['properties'])}")
                del value["properties"]
            value["type"] = "string"
    return functions


# -- BFCL's own checker


@dataclass(frozen=True)
class _ModelConfig:
    underscore_to_dot: bool


class _FlagTable(dict):
    """What the checker reads of ``MODEL_CONFIG_MAPPING``: whether dots in function names were sent
    as underscores (an OpenAI-style ``tools=`` request cannot carry a dot)."""

    def __missing__(self, key: str) -> _ModelConfig:
        return _ModelConfig(underscore_to_dot=key == SERVER_TOOLS.replace("_", "/"))


PROMPTED = "llama-zoo_prompted"  # the checker's model name for replies to a prompt we built
SERVER_TOOLS = "llama-zoo_server_tools"  # replies parsed by a server from a tools= request


@lru_cache(maxsize=1)
def checker() -> Any:
    """BFCL's ``ast_checker`` module, imported from the installed package."""
    if package_dir() is None:
        raise LlamaZooError(f"BFCL's checker is not installed: {INSTALL} (its files alone, none of its pinned "
                            "dependencies)")
    name = f"{PACKAGE}.constants.model_config"
    if name not in sys.modules:
        stub = types.ModuleType(name)
        stub.MODEL_CONFIG_MAPPING = _FlagTable()  # type: ignore[attr-defined]
        sys.modules[name] = stub
    return importlib.import_module(f"{PACKAGE}.eval_checker.ast_eval.ast_checker")


def check_calls(functions, decoded, ground_truth, category: str, model_name: str = PROMPTED) -> dict[str, Any]:
    """BFCL's verdict on decoded calls: ``{"valid": bool, "error": [...], "error_type": str}``."""
    module = checker()
    language = getattr(module.Language, language_of(category).upper())
    return module.ast_checker(list(functions), decoded, list(ground_truth), language, category, model_name)


def tree_sitter_parser(language: str) -> Any:
    """BFCL's tree-sitter parser of Java or JavaScript calls (what it decodes prompted replies in
    those categories with); refused with the install line where tree-sitter is absent."""
    module = {"java": "java_parser", "javascript": "js_parser"}[language]
    try:
        mod = importlib.import_module(f"{PACKAGE}.model_handler.parser.{module}")
    except ImportError:
        raise LlamaZooError(f"{language} replies in the pythonic format are decoded by BFCL's tree-sitter parser: pip "
                            "install tree-sitter==0.21.3 tree-sitter-java==0.21.0 tree-sitter-javascript==0.21.4 (or "
                            "give --tool-format json)") from None
    return getattr(mod, f"parse_{'java' if language == 'java' else 'javascript'}_function_call")
