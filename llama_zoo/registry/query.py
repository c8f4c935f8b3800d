"""Flat rows of registry facts, and the ``--where`` filter language over them.

``--where`` is parsed by a small recursive-descent parser, never ``eval``'d::

    max_position_embeddings >= 131072 and not instruct
    family == code-llama and (fim or params < 10B)
    hf_repo ~ Guard and release_date >= 2024-07-01   # ~ is "contains", case-insensitive

Numbers take K/M/B/T suffixes in powers of 1000 (``params > 70B``); text fields compare with the
value exactly as written (``id ~ 8b``). A comparison with a missing value is false.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable

from llama_zoo.errors import LlamaZooError
from llama_zoo.registry.derive import param_count
from llama_zoo.registry.schema import DebertaV2Arch, Llama4Arch, MllamaArch, ModelSpec

TEXT_FIELDS = (
    "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
    "num_key_value_heads", "vocab_size", "max_position_embeddings", "rope_theta", "rms_norm_eps",
    "tie_word_embeddings",
)


class WhereError(LlamaZooError):
    pass


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def row(spec: ModelSpec) -> dict[str, Any]:
    """Everything a filter, sort or table may name, flat. Architecture fields keep transformers' names."""
    count = param_count(spec)
    caps = spec.capabilities
    tok = spec.tokenizer
    text = spec.text_arch
    arch = spec.architecture
    out: dict[str, Any] = {
        "id": spec.id,
        "name": spec.name,
        "family": spec.family,
        "status": spec.status,
        "release_date": spec.release_date.isoformat() if spec.release_date else None,
        "license": spec.license,
        "hf_repo": spec.hf_repo,
        "base": spec.base,
        "parent": spec.derived_from.parent if spec.derived_from else None,
        "model_type": spec.model_type,
        "params": count.total if count else None,
        "active_params": count.active if count else None,
        "non_embedding_params": count.non_embedding if count else None,
        "official_params": spec.official_params.value if spec.official_params else None,
        "context": spec.max_context,
        "instruct": caps.instruct,
        "code": caps.code,
        "fim": bool(tok and tok.fim),
        "vision": caps.vision,
        "safety": caps.safety.role if caps.safety else None,
        "moe": isinstance(arch, Llama4Arch) and arch.text_config.num_local_experts > 1,
        "languages": len(caps.languages),
        "tokenizer": tok.kind if tok else None,
        "training_tokens": spec.training.tokens,
        "unverified": len(spec.unverified),
    }
    source = text if text is not None else arch if isinstance(arch, DebertaV2Arch) else None
    for name in TEXT_FIELDS:
        out[name] = getattr(source, name, None)
    # Every row has every key, so that csv columns and --where fields are the same for all models.
    out["rope_type"] = (text.rope_scaling or {}).get("rope_type") if text is not None else None
    out["head_dim"] = text.resolved_head_dim if text is not None else None
    moe = arch.text_config if isinstance(arch, Llama4Arch) else None
    for name in ("num_local_experts", "num_experts_per_tok", "interleave_moe_layer_step"):
        out[name] = getattr(moe, name, None)
    out["cross_attention_layers"] = (
        len(arch.text_config.cross_attention_layers) if isinstance(arch, MllamaArch) else None)
    return out


# --------------------------------------------------------------------------- the filter language

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<date>\d{4}-\d{2}-\d{2})(?![\w.])
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?[KMBTkmbt]?(?![\w.]))
      | (?P<str>"[^"]*"|'[^']*')
      | (?P<op>==|!=|>=|<=|>|<|~|=)
      | (?P<paren>[()])
      | (?P<word>[A-Za-z_][\w.\-/]*)
    )""",
    re.VERBOSE,
)
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "~": lambda a, b: str(b).lower() in str(a).lower(),
}

Predicate = Callable[[dict[str, Any]], bool]


@dataclass
class _Tok:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Tok]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise WhereError(f"--where: cannot read {text[pos:].strip()!r}")
        kind = m.lastgroup or ""
        tokens.append(_Tok(kind, m.group(kind)))
        pos = m.end()
    return tokens


def _number(text: str) -> float | int:
    scale = _SUFFIX.get(text[-1].lower()) if text[-1].isalpha() else None
    value = float(text[:-1]) * scale if scale else float(text)
    return int(value) if value.is_integer() else value


def _literal(tok: _Tok) -> Any:
    if tok.kind == "num":
        return _number(tok.text)
    if tok.kind in ("str", "date"):
        return tok.text[1:-1] if tok.kind == "str" else tok.text
    lowered = tok.text.lower()
    return {"true": True, "false": False, "null": None, "none": None}.get(lowered, tok.text)


class _Parser:
    def __init__(self, text: str, fields: set[str]):
        self.text, self.fields = text, fields
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise WhereError(f"--where: {self.text!r} ends too early")
        self.i += 1
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.text.lower() == word

    def parse(self) -> Predicate:
        pred = self.or_expr()
        if self.peek() is not None:
            raise WhereError(f"--where: unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.is_word("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.is_word("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def not_expr(self) -> Predicate:
        if self.is_word("not"):
            self.take()
            inner = self.not_expr()
            return lambda r: not inner(r)
        return self.atom()

    def atom(self) -> Predicate:
        tok = self.take()
        if tok.kind == "paren" and tok.text == "(":
            inner = self.or_expr()
            close = self.take()
            if close.text != ")":
                raise WhereError(f"--where: expected ')' but found {close.text!r}")
            return inner
        if tok.kind != "word":
            raise WhereError(f"--where: expected a field name, found {tok.text!r}")
        name = tok.text
        if name not in self.fields:
            close = difflib.get_close_matches(name, sorted(self.fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise WhereError(f"--where: unknown field {name!r}{hint}")
        nxt = self.peek()
        if nxt is None or nxt.kind != "op":
            return lambda r: bool(r.get(name))
        op = self.take().text
        tok = self.take()
        if tok.kind not in ("num", "str", "word", "date"):
            raise WhereError(f"--where: expected a value after {op!r}, found {tok.text!r}")
        value = _literal(tok)
        raw = tok.text[1:-1] if tok.kind == "str" else tok.text
        compare = _COMPARE[op]

        def predicate(r: dict[str, Any]) -> bool:
            actual = r.get(name)
            if actual is None and value is not None:
                return op == "!="
            # Text fields compare with the value as written: "id ~ 8b" means the text 8b, not 8e9.
            against = raw if isinstance(actual, str) else value
            try:
                return compare(actual, against)
            except TypeError:  # number vs text: a mismatch, not a crash
                return op == "!="

        return predicate


def parse_where(text: str, fields: set[str]) -> Predicate:
    """Compile a ``--where`` expression over rows whose keys are ``fields``."""
    return _Parser(text, fields).parse()
