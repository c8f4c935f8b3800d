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
from llama_zoo.registry.schema import MllamaTextArch, ModelSpec, PublishedResult

# Keys that describe one checkpoint rather than a family of them: never inherited from a base.
# A published parameter count, or benchmark result, belongs to the checkpoint it was published for.
NOT_INHERITED = frozenset(
    {"id", "name", "base", "hf_repo", "aliases", "derived_from", "notes", "official_params", "published"}
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
    """The resolved entries. Published benchmark results of the packaged ``published/*.yaml`` files
    (several times the registry's own size) are attached on first need: by ``get`` and by
    ``attach_published``; ``models list`` never reads them. Iterating before either sees only the
    results entries write themselves."""

    specs: dict[str, ModelSpec]
    raw: dict[str, RawEntry]
    taxonomies: dict[str, dict[str, str]]
    _resolver: "_Resolver"
    _names: dict[str, str] = field(default_factory=dict)
    # (path, document) of published-results files: the user's, read with their entries
    published_files: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    with_packaged_published: bool = False
    # (path, model id) of results naming no entry, for `models validate`
    unknown_published: list[tuple[str, str]] = field(default_factory=list)
    _attached: bool = False

    def __post_init__(self) -> None:
        for spec in self.specs.values():
            for name in dict.fromkeys(n.lower() for n in (spec.id, spec.hf_repo, *spec.aliases) if n):
                if name in self._names:
                    raise RegistryError(f"{name!r} names both {self._names[name]!r} and {spec.id!r}")
                self._names[name] = spec.id

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
            self.attach_published()
            return self.specs[self._names[key]]
        raise UnknownModelError(self._unknown_message(name))

    def attach_published(self) -> None:
        """Add the published-results files' results to the entries they name (once)."""
        if self._attached:
            return
        files = (_packaged_published() if self.with_packaged_published else []) + self.published_files
        extra: dict[str, list[PublishedResult]] = {}
        for path, doc in files:
            for model_id, results in (doc.get("results") or {}).items():
                if model_id not in self.specs:
                    self.unknown_published.append((path, model_id))
                    continue
                extra.setdefault(model_id, []).extend(_published_results(path, model_id, results))
        for model_id, results in extra.items():
            spec = self.specs[model_id]
            self.specs[model_id] = spec.model_copy(update={"published": spec.published + tuple(results)})
        self._attached = True

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name.lower(), list(self._names), n=3, cutoff=0.6)
        ids = list(dict.fromkeys(self._names[c] for c in close))
        hint = f"; did you mean {' or '.join(repr(i) for i in ids)}?" if ids else ""
        return f"unknown model {name!r}{hint} (see 'llama-zoo models list')"

    def children(self, model_id: str) -> list[ModelSpec]:
        """Entries whose lineage names ``model_id`` as parent."""
        return [s for s in self if s.derived_from and s.derived_from.parent == model_id]

    def resolved(self, model_id: str) -> dict[str, Any]:
        """An entry as written after inheritance, before validation: the paths YAML can name."""
        return self._resolver.resolve(model_id)

    def inherited(self, model_id: str) -> dict[str, Any]:
        """What an entry would be if it wrote no keys of its own: its base plus its file defaults."""
        return self._resolver.inherited(self.raw[model_id])[0]


def _strip(resolved: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resolved.items() if k not in NOT_INHERITED and k != "unverified"}


_MISSING = object()


def lookup(data: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path, or ``_MISSING``."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def has_path(data: dict[str, Any], dotted: str) -> bool:
    return lookup(data, dotted) is not _MISSING


def _restates(own: dict[str, Any], dotted: str) -> bool:
    """Whether ``own`` writes the value at ``dotted`` itself (a mapping written in part does not)."""
    value = lookup(own, dotted)
    return value is not _MISSING and not isinstance(value, dict)


def _text_config_from(base_arch: dict[str, Any]) -> dict[str, Any]:
    """A Llama text architecture as the text_config of a vision model built on it (Llama 3.2 Vision)."""
    fields = set(MllamaTextArch.model_fields) - {"model_type"}
    return {k: v for k, v in base_arch.items() if k in fields}


class _Resolver:
    """Resolves entries once each; remembers results and detects inheritance cycles."""

    def __init__(self, raw: dict[str, RawEntry]):
        self.raw = raw
        self.done: dict[str, dict[str, Any]] = {}
        self.in_progress: set[str] = set()

    def inherited(self, entry: RawEntry) -> tuple[dict[str, Any], set[str]]:
        """The entry's base under its file's defaults (all it would be with no keys of its own),
        and the unverified paths that come with that."""
        base_id = entry.own.get("base")
        base = self.resolve(base_id) if base_id else {}
        under, flags = _strip(base), set(base.get("unverified", []))
        if not base_id or self.raw[base_id].family != entry.family:
            # A base from the same family already carries the family defaults, and its overrides of them.
            defaults = {k: v for k, v in entry.defaults.items() if k != "unverified"}
            under = deep_merge(under, defaults)
            flags = {f for f in flags if not _restates(defaults, f)} | set(entry.defaults.get("unverified", []))
        own_arch, base_arch = entry.own.get("architecture") or {}, under.get("architecture") or {}
        if own_arch.get("model_type") == "mllama" and base_arch.get("model_type") == "llama":
            under["architecture"] = {"model_type": "mllama", "text_config": _text_config_from(base_arch)}
        return under, flags

    def resolve(self, model_id: str) -> dict[str, Any]:
        if model_id in self.done:
            return self.done[model_id]
        if model_id not in self.raw:
            raise RegistryError(f"unknown base {model_id!r}")
        if model_id in self.in_progress:
            raise RegistryError(f"inheritance cycle through {model_id!r}")
        self.in_progress.add(model_id)
        entry = self.raw[model_id]
        under, flags = self.inherited(entry)
        merged = deep_merge(under, entry.own)
        merged["family"] = entry.family
        # An inherited unconfirmed value stays unconfirmed unless this entry writes that value itself.
        merged["unverified"] = sorted({f for f in flags if not _restates(entry.own, f)}
                                      | set(entry.own.get("unverified", [])))
        lineage = merged.get("derived_from")
        if isinstance(lineage, dict) and "parent" not in lineage:
            if not entry.own.get("base"):
                raise RegistryError(f"{model_id}: derived_from without a parent needs a base")
            merged["derived_from"] = {"parent": entry.own["base"], **lineage}
        self.in_progress.discard(model_id)
        self.done[model_id] = merged
        return merged


USER_REGISTRY_VARIABLE = "LLAMA_ZOO_REGISTRY"


def user_registry_dirs() -> list[Path]:
    """Directories of the user's own entries, read after the packaged ones: those in
    ``$LLAMA_ZOO_REGISTRY`` (``--registry``; several joined by the path separator), and the user
    configuration directory's ``registry/`` folder where it exists."""
    import os

    from platformdirs import user_config_dir

    named = [Path(p).expanduser() for p in os.environ.get(USER_REGISTRY_VARIABLE, "").split(os.pathsep) if p]
    for path in named:
        if not path.is_dir():
            raise RegistryError(f"registry directory {path} does not exist")
    default = Path(user_config_dir("llama-zoo")) / "registry"
    return named + ([default] if default.is_dir() else [])


def _model_files(directory: Path | None) -> list[tuple[str, str]]:
    if directory is not None:
        return [(str(p), p.read_text()) for p in sorted(directory.glob("*.yaml"))]
    root = resources.files("llama_zoo.registry") / "models"
    files = sorted((p for p in root.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)
    packaged = [(p.name, p.read_text()) for p in files]
    # the user's entries take packaged ones as bases (a fine-tune that changes only hf_repo and training)
    return packaged + [(str(p), p.read_text()) for d in user_registry_dirs() for p in sorted(d.glob("*.yaml"))]


def _published_results(path: str, model_id: str, results: Any) -> list[PublishedResult]:
    if not isinstance(results, list):
        raise RegistryError(f"{path}: results of {model_id!r} must be a list")
    try:
        return [PublishedResult.model_validate(r) for r in results]
    except ValueError as exc:  # pydantic's ValidationError: a value that is no number, a missing key
        raise RegistryError(f"{path}: a published result of {model_id!r} is invalid:\n{exc}") from exc


@functools.lru_cache(maxsize=1)
def _packaged_published() -> list[tuple[str, dict[str, Any]]]:
    """The generated ``published/*.yaml`` files (scripts/published_from_cards.py), read once."""
    root = resources.files("llama_zoo.registry") / "published"
    files = sorted((p for p in root.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)
    return [(f"published/{p.name}", yaml.load(p.read_text(encoding="utf-8"), Loader=_Loader) or {}) for p in files]


def is_published_file(doc: Any) -> bool:
    """A published-results file (``results:`` by model id) rather than a family of entries."""
    return isinstance(doc, dict) and "results" in doc and "family" not in doc and "models" not in doc


def load_raw(directory: Path | None = None) -> dict[str, RawEntry]:
    return load_documents(directory)[0]


def load_documents(directory: Path | None = None) -> tuple[dict[str, RawEntry], list[tuple[str, dict[str, Any]]]]:
    """The entries, and the published-results files met among the user's YAML files."""
    raw: dict[str, RawEntry] = {}
    published: list[tuple[str, dict[str, Any]]] = []
    for path, text in _model_files(directory):
        try:
            doc = yaml.load(text, Loader=_Loader) or {}
        except yaml.YAMLError as exc:
            raise RegistryError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
        if is_published_file(doc):
            published.append((path, doc))
            continue
        if not isinstance(doc, dict) or not all(isinstance(m, dict) for m in doc.get("models", [])):
            raise RegistryError(f"{path}: expected a mapping with 'family' and a list of 'models' mappings")
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
    return raw, published


def load_taxonomies() -> dict[str, dict[str, str]]:
    text = (resources.files("llama_zoo.registry") / "taxonomies.yaml").read_text()
    return yaml.load(text, Loader=_Loader)


def load_guidelines() -> dict[str, dict[str, str]]:
    """Per taxonomy, the guideline text a Guard version's prompt carries under each category (Guard 1's)."""
    text = (resources.files("llama_zoo.registry") / "guard_guidelines.yaml").read_text()
    return yaml.load(text, Loader=_Loader)


def build_catalog(directory: Path | None = None) -> Catalog:
    raw, published = load_documents(directory)
    resolver = _Resolver(raw)
    specs: dict[str, ModelSpec] = {}
    for model_id in raw:
        try:
            specs[model_id] = ModelSpec.model_validate(resolver.resolve(model_id))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise RegistryError(f"{raw[model_id].path}: entry {model_id!r} is invalid:\n{exc}") from exc
    return Catalog(specs=specs, raw=raw, taxonomies=load_taxonomies(), _resolver=resolver,
                   published_files=published, with_packaged_published=directory is None)


@functools.lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The packaged registry and the user's entries, loaded once per process."""
    return build_catalog()


def get_model(name: str) -> ModelSpec:
    return load_catalog().get(name)


def spec_hash(spec: ModelSpec) -> str:
    """A digest of what the registry says that can change a result (architecture, tokenizer,
    capabilities), part of a run's identity. Links, notes and unverified marks are left out, so
    bookkeeping edits do not invalidate stored runs."""
    import hashlib

    relevant = spec.model_dump_json(include={"id", "architecture", "tokenizer", "capabilities"})
    return hashlib.sha256(relevant.encode()).hexdigest()
