"""BFCL's multi-turn categories: a conversation of several user turns, in each of which the model
calls BFCL's simulated APIs (a file system, a trading bot, a travel agency, ...) step by step until
it answers without a call; scored by BFCL's multi-turn checker, which replays the model's calls and
the ground truth's on fresh copies of the APIs and compares their states and results turn by turn.

BFCL runs a call by ``eval`` of its text against the API objects (in its inference loop and in its
checker). Here a call is parsed (``formats.literal`` for its arguments: literals and arithmetic on
them) and the named method is called with those values: nothing a model writes is evaluated, and
a call whose arguments are not values (a nested call) is an execution error, as a call to a name
that does not exist is. BFCL's checker runs unchanged with this executor in place of its own
(``check_conversation``)."""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.tool_calling import bfcl_data as data
from llama_zoo.suites.tool_calling import formats

CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
MAX_STEPS = 20  # BFCL's MAXIMUM_STEP_LIMIT: a turn still calling after this many steps ends the conversation
# what BFCL refuses to run whatever the class offers
FORBIDDEN = ("kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run")
# BFCL's DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_PROMPTING: how a held-out function arrives (miss_func)
MORE_FUNCTIONS = "{functions}\nI have updated some more functions you can choose from. What about now?"


def backend_config() -> Any:
    """BFCL's table of API classes and their documentation files (constants, no imports)."""
    data.checker()  # the package is there (or the install line)
    return importlib.import_module(f"{data.PACKAGE}.constants.executable_backend_config")


@dataclass(frozen=True)
class Conversation:
    id: str
    category: str
    turns: tuple[tuple[dict[str, str], ...], ...]
    functions: tuple[dict[str, Any], ...]  # offered from the start, with BFCL's language hint
    held_out: dict[int, tuple[dict[str, Any], ...]]  # turn -> functions offered only then (miss_func)
    initial_config: dict[str, Any]
    involved_classes: tuple[str, ...]
    ground_truth: tuple[tuple[str, ...], ...]  # per turn, the calls as text

    @property
    def long_context(self) -> bool:
        return "long_context" in self.category or "composite" in self.category


def load_multi_turn(source: data.Source, category: str) -> list[Conversation]:
    """A multi-turn category with its functions as BFCL's ``load_dataset_entry`` gives them: each
    involved class's documentation, the held-out ones taken out first, then the language hint."""
    config = backend_config()
    rows = data._json_lines(source.directory / f"{data.VERSION_PREFIX}_{category}.json")
    answers = {r["id"]: r["ground_truth"] for r in data._json_lines(
        source.directory / "possible_answer" / f"{data.VERSION_PREFIX}_{category}.json")}
    docs: dict[str, list[dict[str, Any]]] = {}
    out = []
    for row in rows:
        functions: list[dict[str, Any]] = []
        for cls in row["involved_classes"]:
            if cls not in docs:
                docs[cls] = data._json_lines(source.directory / "multi_turn_func_doc" /
                                             config.MULTI_TURN_FUNC_DOC_FILE_MAPPING[cls])
            functions += copy.deepcopy(docs[cls])
        held_out: dict[int, tuple[dict[str, Any], ...]] = {}
        for turn, names in (row.get("missed_function") or {}).items():
            taken = []
            for name in names:
                i = next(i for i, f in enumerate(functions) if f["name"] == name)
                taken.append(functions.pop(i))
            held_out[int(turn)] = tuple(taken)
        out.append(Conversation(row["id"], category, tuple(tuple(t) for t in row["question"]),
                                tuple(data.with_language_hint(functions, category)), held_out,
                                row.get("initial_config", {}), tuple(row["involved_classes"]),
                                tuple(tuple(t) for t in answers[row["id"]])))
    return out


# -- BFCL's APIs, called without eval


class ApiWorld:
    """Fresh instances of a conversation's API classes, loaded with its initial state, and the
    public methods they offer (a later class's method shadows an earlier one's, as in BFCL)."""

    def __init__(self, initial_config: dict[str, Any], involved_classes: Sequence[str], long_context: bool = False):
        config = backend_config()
        self.instances: dict[str, Any] = {}
        self.methods: dict[str, Any] = {}
        for cls in involved_classes:
            instance = getattr(importlib.import_module(config.CLASS_FILE_PATH_MAPPING[cls]), cls)()
            if cls not in config.STATELESS_CLASSES:
                instance._load_scenario(copy.deepcopy(initial_config.get(cls, {})), long_context=long_context)
            self.instances[cls] = instance
            for name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not name.startswith("_"):
                    self.methods[name] = method

    def run(self, calls: Sequence[str]) -> list[str]:
        """Each call's result as BFCL records it: text as is, a dict as JSON, anything else ``str``;
        a failure as ``Error during execution: ...``."""
        out = []
        for call in calls:
            try:
                result = self._call(call)
            except Exception as exc:  # noqa: BLE001 - an API's own error is the call's result, as in BFCL
                out.append(f"Error during execution: {exc}")
                continue
            if isinstance(result, str):
                out.append(result)
            elif type(result) is dict:
                try:
                    out.append(json.dumps(result))
                except (TypeError, ValueError):
                    out.append(str(result))
            else:
                out.append(str(result))
        return out

    def _call(self, call: str) -> Any:
        head = call.split("(")[0]
        if "." in head:
            head = head.split(".")[1]
        if head in FORBIDDEN:
            raise Exception(f"Function call {head} is not allowed.")
        node = formats.parse_expression(call)
        if not isinstance(node, ast.Call):
            raise ValueError(f"not a call: {call[:80]}")
        func = node.func
        while isinstance(func, ast.Attribute):
            func = func.value
        name = func.id if isinstance(func, ast.Name) else ast.unparse(func)
        method = self.methods.get(name) if isinstance(node.func, ast.Name) else None
        if method is None:
            raise NameError(f"name '{name}' is not defined")
        if any(kw.arg is None for kw in node.keywords):
            raise ValueError("** arguments are not values")
        args = [formats.literal(a) for a in node.args]
        kwargs = {kw.arg: formats.literal(kw.value) for kw in node.keywords}
        return method(*args, **kwargs)


def execution_strings(decoded: list[dict[str, Any]], fmt: str) -> list[str]:
    """Decoded calls as the call texts BFCL executes (its handlers' ``decode_execute``)."""
    if fmt == "json":  # Llama 3.1's handler: repr of each value, joined by commas alone
        return [f"{name}({','.join(f'{k}={v!r}' for k, v in args.items())})"
                for call in decoded for name, args in call.items()]
    return [f"{name}({', '.join(f'{k}={_nested(v)}' for k, v in args.items())})"
            for call in decoded for name, args in call.items()]


def _nested(value: Any) -> str:
    """BFCL's ``parse_nested_value``: a nested call written as a call, a dict as a literal."""
    if isinstance(value, dict):
        if all(isinstance(v, dict) for v in value.values()):
            name = list(value.keys())[0]  # an empty dict fails here, as in BFCL
            return f"{name}({', '.join(f'{k}={_nested(v)}' for k, v in value[name].items())})"
        return "{" + ", ".join(f"'{k}': {_nested(v)}" for k, v in value.items()) + "}"
    return repr(value)


def decode_execute(reply: str, fmt: str) -> list[str]:
    """A step's reply as call texts; NotACall (or any failure) where it holds none."""
    try:
        return execution_strings(formats.decode(reply, fmt), fmt)
    except formats.NotACall:
        raise
    except Exception as exc:  # noqa: BLE001 - as BFCL, a reply that cannot be written as calls has none
        raise formats.NotACall(str(exc)) from None


def is_empty(calls: Sequence[str]) -> bool:
    """BFCL's ``is_empty_execute_response``."""
    return len(calls) == 0 or (len(calls) == 1 and len(calls[0]) == 0)


# -- one conversation, step by step


@dataclass
class Dialogue:
    """A conversation under way: the chat so far, the APIs the model's calls change, and every
    step's raw reply per turn (what BFCL stores as the model's result)."""

    conversation: Conversation
    fmt: str
    messages: list[dict[str, str]]
    world: ApiWorld
    turn: int = 0
    steps: int = 0
    replies: list[list[str]] = field(default_factory=list)
    force_quit: bool = False
    overflow: bool = False  # the chat outgrew the run's --context: cut off (never BFCL's own verdict)

    @classmethod
    def start(cls, conversation: Conversation, fmt: str) -> "Dialogue":
        world = ApiWorld(conversation.initial_config, conversation.involved_classes, conversation.long_context)
        d = cls(conversation, fmt, [], world)
        d._open_turn(0)
        return d

    def _open_turn(self, turn: int) -> None:
        self.turn, self.steps = turn, 0
        self.replies.append([])
        messages = list(self.conversation.turns[turn])
        if turn in self.conversation.held_out:
            held = [dict(f) for f in self.conversation.held_out[turn]]
            messages = [{"role": "user", "content": MORE_FUNCTIONS.format(functions=held)}]
        self.messages += [dict(m) for m in messages]

    def answer(self, reply: str) -> bool:
        """Take the model's reply to the current step; True while the conversation goes on."""
        self.replies[-1].append(reply)
        self.messages.append({"role": "assistant", "content": reply})
        try:
            calls = decode_execute(reply, self.fmt)
            ended = is_empty(calls)
        except formats.NotACall:
            calls, ended = [], True
        if not ended:
            for call, result in zip(calls, self.world.run(calls)):
                self.messages.append({"role": "tool", "name": call, "content": result})
            self.steps += 1
            if self.steps > MAX_STEPS:
                self.force_quit = True
                return False
            return True
        if self.turn + 1 < len(self.conversation.turns):
            self._open_turn(self.turn + 1)
            return True
        return False


# -- scoring: BFCL's multi-turn runner and checker


def check_conversation(conversation: Conversation, replies: Sequence[Sequence[str]], fmt: str) -> dict[str, Any]:
    """BFCL's verdict on a conversation's replies (``_evaluate_single_multi_turn_entry``): the turns
    complete, each step decoded into calls (failures and empty steps left out), then BFCL's
    ``multi_turn_checker`` with llama-zoo's executor in place of its ``eval``."""
    if len(replies) != len(conversation.ground_truth):
        return {"valid": False, "error_type": "multi_turn:force_terminated",
                "error": [f"the conversation was cut off after {len(replies)} of {len(conversation.ground_truth)} turns"],
                "decoded": None}
    decoded: list[list[list[str]]] = []
    for turn in replies:
        steps = []
        for reply in turn:
            try:
                calls = decode_execute(reply, fmt)
            except formats.NotACall:
                continue
            if not is_empty(calls):
                steps.append(calls)
        decoded.append(steps)
    checker = importlib.import_module(f"{data.PACKAGE}.eval_checker.multi_turn_eval.multi_turn_checker")
    worlds: dict[str, ApiWorld] = {}

    def execute(func_call_list, initial_config, involved_classes, model_name, test_entry_id, long_context=False,
                is_evaL_run=False):
        key = f"{model_name}:{is_evaL_run}"
        if key not in worlds:
            worlds[key] = ApiWorld(initial_config, involved_classes, long_context)
        return worlds[key].run(func_call_list), worlds[key].instances

    entry = {"id": conversation.id, "initial_config": conversation.initial_config,
             "involved_classes": list(conversation.involved_classes)}
    original = checker.execute_multi_turn_func_call
    checker.execute_multi_turn_func_call = execute
    try:
        result = checker.multi_turn_checker(decoded, [list(t) for t in conversation.ground_truth], entry,
                                            conversation.category, data.PROMPTED)
    finally:
        checker.execute_multi_turn_func_call = original
    return {"valid": bool(result["valid"]), "error_type": result.get("error_type"),
            "error": [str(result.get("error_message", ""))] if not result["valid"] else [], "decoded": decoded}


def read_replies(value: Any, where: str) -> list[list[str]]:
    """A predictions file's ``result`` for a conversation: per turn, each step's raw reply."""
    if not isinstance(value, list) or not all(isinstance(t, list) and all(isinstance(s, str) for s in t) for t in value):
        raise LlamaZooError(f"{where}: a multi-turn result is a list of turns, each a list of replies (strings)")
    return value
