"""How each Llama is offered functions, and how its reply is read back into calls.

Two prompt formats, each the one its model was trained on:

- ``json``: Llama 3.1's JSON tool calls (llama-models' ``llama3_1/prompt_format.md``; what the
  checkpoints' chat template renders with ``tools=`` and ``tools_in_user_message``): an
  ``Environment: ipython`` system header, the functions as indented JSON in the first user turn,
  a reply ``{"name": ..., "parameters": {...}}`` (several joined by ``;`` or in a list).
- ``pythonic``: the zero-shot format of Llama 3.2, 3.3 and 4 (llama-models' ``prompt_format.md``
  of each), which is also BFCL's default prompt for any chat model: a system message listing the
  functions as JSON and asking for ``[func(a=1), g(b="x")]``, rendered in the model's own chat
  template.
- ``chat-template``: a checkpoint outside the registry whose chat template takes ``tools``: the
  template decides (its replies are read as JSON calls, or else as pythonic ones).
- ``server``: an OpenAI-compatible server is sent ``tools=`` (the functions as BFCL's FC handlers
  convert them) and parses the calls itself (vLLM's ``llama3_json`` parser, llama.cpp's grammar);
  its ``tool_calls`` are read as BFCL reads an FC model's.

Replies are read as BFCL's decoders read them, with one difference that matters: BFCL calls
``eval`` on a reply (Llama 3.1's handler) or on parts of one (arithmetic and lambdas in its
Python parser). Here a reply is parsed, never run: literals, and arithmetic on numbers, are
values; anything else is a decoding failure, as a reply that is not a call is.
"""

from __future__ import annotations

import ast
import json
import operator
from typing import Any, Callable, Sequence

from llama_zoo.errors import LlamaZooError

FORMATS = ("auto", "json", "pythonic", "chat-template", "server")
JSON_FAMILIES = ("llama-3.1",)

# -- prompts


def default_format(spec: Any, tokenizer: Any) -> str:
    """The format a model was trained on: Llama 3.1 (and checkpoints built on it) JSON, a
    community checkpoint its chat template's ``tools`` where it has them, every other chat model
    pythonic."""
    if spec.family in JSON_FAMILIES:
        return "json"
    template = getattr(tokenizer, "chat_template", None) or ""
    if spec.family == "community" and isinstance(template, str) and "tools" in template:
        return "chat-template"
    return "pythonic"


def llama31_json_prompt(messages: Sequence[dict[str, str]], functions: Sequence[dict[str, Any]]) -> str:
    """Llama 3.1's chat with custom tools in the first user message, as its chat template renders
    it (``tools_in_user_message`` true, the template's default date) up to the assistant header."""
    system = ""
    rest = list(messages)
    if rest and rest[0]["role"] == "system":
        system, rest = rest[0]["content"].strip(), rest[1:]
    out = ["<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n", "Environment: ipython\n",
           "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n", system, "<|eot_id|>"]
    if not rest:
        raise LlamaZooError("Llama 3.1's JSON tool format puts the tools in the first user message: this chat has none")
    out += ["<|start_header_id|>user<|end_header_id|>\n\n",
            ("Given the following functions, please respond with a JSON for a function call with its proper arguments "
             "that best answers the given prompt.\n\n"),
            # no space after the full stop: the template writes it so
            ('Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
             "Do not use variables.\n\n")]
    out += [tojson(fn, indent=4) + "\n\n" for fn in functions]
    out += [rest[0]["content"].strip(), "<|eot_id|>"]
    for m in rest[1:]:
        if m["role"] in ("tool", "ipython"):  # a call's result, as the template writes it (a string too goes through tojson)
            out += ["<|start_header_id|>ipython<|end_header_id|>\n\n", tojson(m["content"]), "<|eot_id|>"]
        else:
            out += [f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n", m["content"].strip(), "<|eot_id|>"]
    out.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(out)


def tojson(value: Any, indent: int | None = None) -> str:
    """Jinja's ``tojson`` as transformers' chat templates define it (non-ASCII kept as is)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


_PERSONA = "You are an expert in composing functions."
_TASK = ("You are given a question and a set of possible functions. Based on the question, you will need to make one or "
         "more function/tool calls to achieve the purpose. If none of the functions can be used, point it out. If the "
         "given question lacks the parameters required by the function, also point it out.")
_CALL_FORMAT = ("You should only return the function calls in your response.\n\nIf you decide to invoke any of the "
                "function(s), you MUST put it in the format of [func_name1(params_name1=params_value1, "
                "params_name2=params_value2...), func_name2(params)].  You SHOULD NOT include any other text in the "
                "response.")
_TURNS = ("At each turn, you should try your best to complete the tasks requested by the user within the current turn. "
          "Continue to output functions to call until you have fulfilled the user's request to the best of your "
          "ability. Once you have no more functions to call, the system will consider the current turn complete and "
          "proceed to the next turn or task.")


def pythonic_system_prompt(functions: Sequence[dict[str, Any]]) -> str:
    """The zero-shot system prompt (BFCL's default: plain text, classic style, functions as JSON)."""
    listed = json.dumps(list(functions), indent=4)
    return (f"{_PERSONA}{_TASK}\n\n{_CALL_FORMAT}\n\n{_TURNS}\n\nHere is a list of functions in json format that you can "
            f"invoke.\n{listed}\n")


def pythonic_messages(messages: Sequence[dict[str, str]], functions: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The chat with the system prompt first (a system message the case brings follows it)."""
    out = [dict(m) for m in messages]
    system = pythonic_system_prompt(functions)
    if out and out[0]["role"] == "system":
        out[0]["content"] = system + "\n\n" + out[0]["content"]
    else:
        out.insert(0, {"role": "system", "content": system})
    return out


# Llama 3 and 4 chats written as llama-models' prompt_format.md writes them (and BFCL's Llama
# handler): the header tokens around each message, no date preamble in the system message (the
# checkpoints' chat templates add "Cutting Knowledge Date" lines that the tool formats leave out).
_HEADERS = {
    "llama-3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "llama-4": ("<|header_start|>", "<|header_end|>", "<|eot|>"),
}
HEADER_FAMILIES = {"llama-3": "llama-3", "llama-3.1": "llama-3", "llama-3.2": "llama-3", "llama-3.3": "llama-3",
                   "llama-4": "llama-4"}


def llama_chat(messages: Sequence[dict[str, str]], family: str) -> str | None:
    """A chat in the Llama 3 or 4 prompt format, up to the assistant header (None: another family,
    whose chat template renders it)."""
    headers = _HEADERS.get(HEADER_FAMILIES.get(family, ""))
    if headers is None:
        return None
    start, end, eot = headers
    # a call's result comes back as the ipython role (llama-models' format, BFCL's Llama handler)
    body = "".join(f"{start}{'ipython' if m['role'] == 'tool' else m['role']}{end}\n\n{m['content'].strip()}{eot}"
                   for m in messages)
    return f"<|begin_of_text|>{body}{start}assistant{end}\n\n"


# BFCL's GORILLA_TO_OPENAPI: its parameter types as JSON Schema types
_OPENAPI_TYPES = {
    "integer": "integer", "number": "number", "float": "number", "string": "string", "boolean": "boolean",
    "bool": "boolean", "array": "array", "list": "array", "dict": "object", "object": "object", "tuple": "array",
    "any": "string", "byte": "integer", "short": "integer", "long": "integer", "double": "number", "char": "string",
    "ArrayList": "array", "Array": "array", "HashMap": "object", "Hashtable": "object", "Queue": "array",
    "Stack": "array", "Any": "string", "String": "string", "Bigint": "integer",
}


def _schema_types(properties: dict[str, Any]) -> dict[str, Any]:
    """Each property's type as JSON Schema has it, nested objects and list items too (as BFCL's
    ``_cast_to_openai_type``: floats say so in words, unknown types become strings)."""
    for value in properties.values():
        kind = value.get("type")
        if kind is None:
            value["type"] = "string"
        else:
            if kind == "float":
                value["format"] = "float"
                value["description"] += " This is a float type value."
            value["type"] = _OPENAPI_TYPES.get(kind, "string")
        if value["type"] in ("array", "object"):
            if "properties" in value:
                value["properties"] = _schema_types(value["properties"])
            elif "items" in value:
                items = value["items"]
                items["type"] = _OPENAPI_TYPES[items["type"]]
                if items["type"] == "array" and "items" in items:
                    items["items"]["type"] = _OPENAPI_TYPES[items["items"]["type"]]
                elif items["type"] == "object" and "properties" in items:
                    items["properties"] = _schema_types(items["properties"])
    return properties


def openai_tools(functions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The functions as an OpenAI ``tools=`` list: names with dots written with underscores (the API
    allows ``^[a-zA-Z0-9_-]{1,64}$``), parameters as a JSON Schema object."""
    out = []
    for fn in json.loads(json.dumps(list(functions))):
        fn["name"] = fn["name"].replace(".", "_")
        fn["parameters"]["type"] = "object"
        fn["parameters"]["properties"] = _schema_types(fn["parameters"]["properties"])
        out.append({"type": "function", "function": fn})
    return out


def decode_server_calls(reply: str) -> list[dict[str, Any]]:
    """A server's parsed calls (``{"content", "tool_calls": [{name: arguments JSON}]}``, as the
    openai backend returns them) as BFCL decodes an FC model's; a reply without calls is none."""
    try:
        calls = json.loads(reply)["tool_calls"]
        out = [{name: json.loads(arguments)} for call in calls for name, arguments in call.items()]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NotACall(f"no tool calls: {exc}") from None
    if not out:
        raise NotACall("no tool calls")
    return out


# -- reading replies


class NotACall(ValueError):
    """A reply (or a part of one) that is no function call."""


_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_LARGEST = 10_000  # longest string or sequence, largest exponent, an expression may build


def arithmetic(node: ast.AST) -> Any:
    """A value written as literals and arithmetic on them (``24*60``, ``2**10``, ``"a" + "b"``), or
    NotACall: the harness evaluates nothing else a model wrote."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, complex, str, bytes, bool)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = arithmetic(node.operand)
        if isinstance(value, (int, float, complex)):
            return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = arithmetic(node.left), arithmetic(node.right)
        numbers = all(isinstance(v, (int, float, complex)) for v in (left, right))
        if isinstance(node.op, ast.Pow) and numbers and abs(right) > _LARGEST:
            raise NotACall("exponent too large")
        if isinstance(node.op, ast.Mult) and not numbers and max(
                (abs(v) for v in (left, right) if isinstance(v, int)), default=0) * max(
                (len(v) for v in (left, right) if isinstance(v, (str, bytes))), default=1) > _LARGEST:
            raise NotACall("repetition too long")
        try:
            return _ARITHMETIC[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError, OverflowError, ValueError) as exc:
            raise NotACall(str(exc)) from None
    raise NotACall(f"not a literal: {ast.unparse(node)[:80]}")


def literal(node: ast.AST) -> Any:
    """``ast.literal_eval`` of a node, with arithmetic as ``arithmetic`` allows it."""
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise NotACall("** in a dict")
        return {literal(k): literal(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.List):
        return [literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(literal(e) for e in node.elts)
    if isinstance(node, ast.Set):
        return {literal(e) for e in node.elts}
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    return arithmetic(node)


def parse_expression(text: str) -> ast.expr:
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise NotACall(f"not an expression: {exc}") from None


def decode_json_calls(reply: str) -> list[dict[str, Any]]:
    """A Llama 3.1 reply as BFCL's ``llama_3_1`` handler reads it: ``<|python_tag|>`` dropped;
    ``;``-separated JSON objects, or else one Python literal (a call object or a list of them)."""
    text = reply.replace("<|python_tag|>", "")
    if ";" in text:
        try:
            calls = [json.loads(part) for part in text.split(";")]
        except json.JSONDecodeError as exc:
            raise NotACall(str(exc)) from None
    else:
        calls = literal(parse_expression(text.lstrip(" \t")))  # as eval() strips a string's leading blanks
        if type(calls) is dict:
            calls = [calls]
    out = []
    try:
        for call in calls:
            out.append({call["name"]: call["parameters"]})
    except (KeyError, TypeError, IndexError) as exc:
        raise NotACall(f"not a call object: {exc!r}") from None
    return out


def decode_pythonic_calls(reply: str, language: str = "python") -> list[dict[str, Any]]:
    """A pythonic reply as BFCL's default prompting decoder reads it: code fences and spaces
    trimmed, brackets added where missing, then each call's name and keyword arguments."""
    text = reply.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    if language != "python":
        from llama_zoo.suites.tool_calling.bfcl_data import tree_sitter_parser

        try:
            return tree_sitter_parser(language)(text[1:-1])
        except LlamaZooError:
            raise
        except Exception as exc:  # noqa: BLE001 - BFCL's parser raises what it raises: a failed decoding
            raise NotACall(str(exc)) from None
    body = parse_expression(text.strip().strip("'"))
    calls = [body] if isinstance(body, ast.Call) else getattr(body, "elts", None)
    if calls is None:
        raise NotACall("neither a call nor a list of calls")
    out = []
    for call in calls:
        if not isinstance(call, ast.Call):
            raise NotACall("a list item is not a call")
        out.append(_call(call))
    return out


def _call(node: ast.Call) -> dict[str, Any]:
    parts, func = [], node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    args = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise NotACall("**kwargs in a call")
        args[kw.arg] = _argument(kw.value)
    return {".".join(reversed(parts)): args}


def _argument(node: ast.expr) -> Any:
    """An argument's value as BFCL's ``resolve_ast_by_type`` gives it (names and positional-only
    calls as their text, keyword calls as nested calls), arithmetic computed safely."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):
        # BFCL negates the operand's value whatever the operator (it reads ``-x`` of any unary op)
        if isinstance(node.operand, ast.Constant):
            try:
                return -node.operand.value
            except TypeError as exc:
                raise NotACall(str(exc)) from None
        raise NotACall("unary operator on a non-constant")
    if isinstance(node, ast.List):
        return [_argument(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise NotACall("** in a dict")
        return {_argument(k): _argument(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.BinOp):
        return arithmetic(node)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return ast.unparse(node) if not node.keywords else _call(node)
    if isinstance(node, ast.Tuple):
        return tuple(_argument(e) for e in node.elts)
    if isinstance(node, ast.Subscript):
        return ast.unparse(node.value) + "[" + ast.unparse(node.slice) + "]"
    raise NotACall(f"unsupported argument: {type(node).__name__}")


def decode(reply: str, fmt: str, language: str = "python") -> list[dict[str, Any]]:
    """Calls from a reply in format ``fmt``; NotACall where the reply is none."""
    if fmt == "json":
        return decode_json_calls(reply)
    if fmt == "server":
        return decode_server_calls(reply)
    if fmt == "chat-template":
        stripped = reply.replace("<|python_tag|>", "").strip()
        if stripped.startswith("{") or stripped.startswith("[{"):
            return decode_json_calls(reply)
    return decode_pythonic_calls(reply, language)


def is_call_list(decoded: Any) -> bool:
    """BFCL's ``is_function_calling_format_output``: ``[{name: {arg: value}}, ...]`` ([] included)."""
    return type(decoded) is list and all(
        type(item) is dict and len(item) == 1 and type(list(item.values())[0]) is dict for item in decoded)


def is_empty(decoded: Any) -> bool:
    """BFCL's ``is_empty_output``: no call at all (``[]``, ``[{}]``, or not in call form)."""
    return not is_call_list(decoded) or len(decoded) == 0 or (len(decoded) == 1 and len(decoded[0]) == 0)
