"""Load the registry's YAML files, resolve ``base:`` inheritance and answer look-ups by name.

A family file looks like::

    family: llama-2
    defaults: {license: ..., links: {...}}   # facts shared by every entry of the family
    models:
      - id: llama-2-7b
        architecture: {...}
      - id: llama-2-7b-chat
        base: llama-2-7b                     # inherit everything, override only what differs
        capabilities: {instruct: true}

An entry resolves as: its base (fully resolved) < its file's defaults < its own keys; the defaults
are applied once per family, so a base from the same file passes on its overrides of them.
Mappings merge key by key; lists and scalars replace.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import yaml

from llama_zoo.errors import LlamaZooError
from llama_zoo.registry.schema import ModelSpec

# Keys that describe one checkpoint rather than a family of them: never inherited from a base.
# A published parameter count belongs to the checkpoint it was published for.
NOT_INHERITED = frozenset(
    {"id", "name", "base", "hf_repo", "aliases", "derived_from", "notes", "official_params"}
)

try:  # the C loader is several times faster; the registry is read on every CLI start
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


class UnknownModelError(LlamaZooError):
    pass


class RegistryError(LlamaZooError):
    pass


# Mappings that are replaced whole: merging a binary classifier's labels into a three-way
# classifier's would keep the third label.
REPLACED_WHOLE = frozenset({"id2label"})


# A mapping that names another kind than the one beneath it starts afresh: a vision architecture
# on a text base, a tiktoken tokenizer on a SentencePiece base.
DISCRIMINATORS = ("model_type", "kind")


def same_kind(under: dict[str, Any], over: dict[str, Any]) -> bool:
    return all(under.get(k) == over[k] for k in DISCRIMINATORS if k in over and k in under)


def deep_merge(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` wins; nested mappings of the same kind merge key by key."""
    merged = dict(under)
    for key, value in over.items():
        below = merged.get(key)
        if (isinstance(value, dict) and isinstance(below, dict) and key not in REPLACED_WHOLE
                and same_kind(below, value)):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class RawEntry:
    """An entry exactly as written, with where it came from."""

    own: dict[str, Any]
    family: str
    defaults: dict[str, Any]
    path: str


@dataclass
class Catalog:
    specs: dict[str, ModelSpec]
    raw: dict[str, RawEntry]
    taxonomies: dict[str, dict[str, str]]
    _names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self.specs.values():
            for name in (spec.id, spec.hf_repo, *spec.aliases):
                if name:
                    self._names[name.lower()] = spec.id

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.specs.values())

    def __len__(self) -> int:
        return len(self.specs)

    def get(self, name: str) -> ModelSpec:
        """A model by registry id, Hugging Face repo id or alias (case-insensitive)."""
        key = name.strip().lower()
        if key.startswith("https://huggingface.co/"):
            key = key.removeprefix("https://huggingface.co/").strip("/")
        if key in self._names:
            return self.specs[self._names[key]]
        raise UnknownModelError(self._unknown_message(name))

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name.lower(), list(self._names), n=3, cutoff=0.6)
        ids = list(dict.fromkeys(self._names[c] for c in close))
        hint = f"; did you mean {' or '.join(repr(i) for i in ids)}?" if ids else ""
        return f"unknown model {name!r}{hint} (see 'llama-zoo models list')"

    def children(self, model_id: str) -> list[ModelSpec]:
        """Entries whose lineage names ``model_id`` as parent."""
        return [s for s in self if s.derived_from and s.derived_from.parent == model_id]

    def inherited(self, model_id: str) -> dict[str, Any]:
        """What an entry would be if it wrote no keys of its own: its base plus its file defaults."""
        return _inherited(self.raw[model_id], self.raw, {})

    def resolved_dict(self, model_id: str) -> dict[str, Any]:
        return _resolve(model_id, self.raw, {})


def _strip(resolved: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resolved.items() if k not in NOT_INHERITED}


def _defines(own: dict[str, Any], dotted: str) -> bool:
    node: Any = own
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _inherited(entry: RawEntry, raw: dict[str, RawEntry], seen: dict[str, dict]) -> dict[str, Any]:
    """The entry's base (resolved) under its file's defaults: all it would be with no keys of its own."""
    base_id = entry.own.get("base")
    under = _strip(_resolve(base_id, raw, seen)) if base_id else {}
    if not base_id or raw[base_id].family != entry.family:
        # A base from the same family already carries the family defaults, and its overrides of them.
        under = deep_merge(under, entry.defaults)
    return under


def _resolve(model_id: str, raw: dict[str, RawEntry], seen: dict[str, dict]) -> dict[str, Any]:
    if model_id in seen:
        if seen[model_id] is None:
            raise RegistryError(f"inheritance cycle through {model_id!r}")
        return seen[model_id]
    if model_id not in raw:
        raise RegistryError(f"unknown base {model_id!r}")
    seen[model_id] = None  # type: ignore[assignment]  # marks "in progress" for cycle detection
    entry = raw[model_id]
    base_id = entry.own.get("base")
    under = _inherited(entry, raw, seen)
    merged = deep_merge(under, entry.own)
    merged["family"] = entry.family
    # An inherited unconfirmed value stays unconfirmed, unless this entry states that value itself.
    stated = deep_merge(entry.defaults, entry.own)
    kept = {p for p in under.get("unverified", []) if not _defines(stated, p)}
    merged["unverified"] = sorted(kept | set(entry.own.get("unverified", [])))
    lineage = merged.get("derived_from")
    if isinstance(lineage, dict) and "parent" not in lineage:
        if not base_id:
            raise RegistryError(f"{model_id}: derived_from without a parent needs a base")
        merged["derived_from"] = {"parent": base_id, **lineage}
    seen[model_id] = merged
    return merged


def _model_files(directory: Path | None) -> list[tuple[str, str]]:
    if directory is not None:
        return [(str(p), p.read_text()) for p in sorted(directory.glob("*.yaml"))]
    root = resources.files("llama_zoo.registry") / "models"
    files = sorted((p for p in root.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)
    return [(p.name, p.read_text()) for p in files]


def load_raw(directory: Path | None = None) -> dict[str, RawEntry]:
    raw: dict[str, RawEntry] = {}
    for path, text in _model_files(directory):
        doc = yaml.load(text, Loader=_Loader) or {}
        family = doc.get("family")
        if not family:
            raise RegistryError(f"{path}: missing 'family'")
        for own in doc.get("models", []):
            model_id = own.get("id")
            if not model_id:
                raise RegistryError(f"{path}: an entry has no 'id'")
            if model_id in raw:
                raise RegistryError(f"{path}: duplicate id {model_id!r} (also in {raw[model_id].path})")
            raw[model_id] = RawEntry(own=own, family=family, defaults=doc.get("defaults", {}), path=path)
    return raw


def load_taxonomies() -> dict[str, dict[str, str]]:
    text = (resources.files("llama_zoo.registry") / "taxonomies.yaml").read_text()
    return yaml.load(text, Loader=_Loader)


def build_catalog(directory: Path | None = None) -> Catalog:
    raw = load_raw(directory)
    seen: dict[str, dict] = {}
    specs: dict[str, ModelSpec] = {}
    for model_id in raw:
        try:
            specs[model_id] = ModelSpec.model_validate(_resolve(model_id, raw, seen))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise RegistryError(f"{raw[model_id].path}: entry {model_id!r} is invalid:\n{exc}") from exc
    return Catalog(specs=specs, raw=raw, taxonomies=load_taxonomies())


@functools.lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The packaged registry, loaded once per process."""
    return build_catalog()


def get_model(name: str) -> ModelSpec:
    return load_catalog().get(name)


def spec_hash(spec: ModelSpec) -> str:
    """A digest of everything the registry says about a model: part of a run's identity."""
    import hashlib

    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()
