"""Invariants of the registry beyond what the schema can say about one entry in isolation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from llama_zoo.registry.catalog import DISCRIMINATORS, NOT_INHERITED, REPLACED_WHOLE, Catalog, has_path, same_kind
from llama_zoo.registry.derive import param_count, rotary_buffer_elements
from llama_zoo.registry.schema import Llama4Arch, LlamaArch, MllamaArch, ModelSpec


@dataclass(frozen=True)
class Problem:
    model_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.model_id}: {self.message}"


def copied_overrides(own: dict[str, Any], inherited: dict[str, Any], path: str = "") -> Iterator[str]:
    """Dotted paths where an entry restates exactly what it would inherit anyway."""
    for key, value in own.items():
        if (not path and key in NOT_INHERITED | {"unverified"}) or key in DISCRIMINATORS:
            continue  # checkpoint facts, and the kind a mapping declares, are not copies
        where = f"{path}{key}"
        below = inherited.get(key)
        if key not in inherited or (isinstance(value, dict) and isinstance(below, dict) and not same_kind(below, value)):
            continue
        if isinstance(value, dict) and isinstance(below, dict) and key not in REPLACED_WHOLE:
            yield from copied_overrides(value, inherited[key], where + ".")
        elif value == below:
            yield where


def _lineage_cycle(catalog: Catalog, model_id: str) -> bool:
    seen, current = set(), catalog.specs[model_id]
    while current.derived_from and current.derived_from.parent in catalog.specs:
        if current.id in seen:
            return True
        seen.add(current.id)
        current = catalog.specs[current.derived_from.parent]
    return False


def _text_invariants(spec: ModelSpec) -> Iterator[str]:
    text = spec.text_arch
    if text is None:
        return
    if text.num_attention_heads % text.num_key_value_heads:
        yield f"{text.num_attention_heads} heads do not split into {text.num_key_value_heads} KV groups"
    if isinstance(text, LlamaArch) and text.head_dim is None and text.hidden_size % text.num_attention_heads:
        yield "hidden_size is not a multiple of num_attention_heads and no head_dim is given"
    scaling = text.rope_scaling or {}
    original = scaling.get("original_max_position_embeddings")
    if original and original >= text.max_position_embeddings:
        yield "rope_scaling.original_max_position_embeddings must be below max_position_embeddings"
    arch = spec.architecture
    if isinstance(arch, MllamaArch):
        bad = [i for i in arch.text_config.cross_attention_layers if i >= arch.text_config.num_hidden_layers]
        if bad:
            yield f"cross_attention_layers {bad} are beyond num_hidden_layers"
    if isinstance(arch, Llama4Arch) and arch.text_config.moe_layers:
        if max(arch.text_config.moe_layers) >= arch.text_config.num_hidden_layers:
            yield "moe_layers name layers beyond num_hidden_layers"


def _token_invariants(spec: ModelSpec) -> Iterator[str]:
    tok, text = spec.tokenizer, spec.text_arch
    if tok is None or text is None:
        return
    ids = [tok.bos_token_id, tok.pad_token_id, *tok.special_tokens.values()]
    eos = tok.eos_token_id
    ids += eos if isinstance(eos, list) else [eos]
    if tok.fim:
        ids += [tok.fim.prefix, tok.fim.suffix, tok.fim.middle, tok.fim.eot]
    rows = text.vocab_size + (8 if isinstance(spec.architecture, MllamaArch) else 0)
    for token_id in ids:
        if token_id is not None and token_id >= rows:
            yield f"token id {token_id} is outside the {rows}-row embedding"
    if tok.fim and tok.size > text.vocab_size:
        yield "FIM tokens need a tokenizer that fits the embedding"


def _param_invariants(spec: ModelSpec) -> Iterator[str]:
    official = spec.official_params
    count = param_count(spec)
    if official is None or count is None:
        return
    if count.total != official.value:
        yield f"computed {count.total:,} parameters but official_params is {official.value:,}"
    if official.checkpoint_tensors is not None:
        stored = count.total + rotary_buffer_elements(spec)
        if stored != official.checkpoint_tensors:
            yield (f"checkpoint_tensors {official.checkpoint_tensors:,} is not parameters + rotary "
                   f"buffers ({stored:,})")


def _published_problems(catalog: Catalog) -> Iterator[Problem]:
    """Published results naming no entry, and one number given twice for one model (values are
    numbers already: the schema refuses anything else when the results are attached)."""
    catalog.attach_published()
    for path, model_id in catalog.unknown_published:
        yield Problem(model_id, f"published results in {path} name no registry model")
    for spec in catalog:
        seen: set[tuple] = set()
        for r in spec.published:
            key = (r.benchmark, r.metric, r.shots, r.table, r.variant, r.source)
            if key in seen:
                yield Problem(spec.id, f"published result {key} is given twice")
            seen.add(key)


def problems(catalog: Catalog) -> list[Problem]:
    """Everything wrong with the registry; empty when it is sound."""
    found: list[Problem] = list(_published_problems(catalog))
    for spec in catalog:
        messages: list[str] = []
        if spec.derived_from and spec.derived_from.parent not in catalog.specs:
            messages.append(f"derived_from names unknown model {spec.derived_from.parent!r}")
        safety = spec.capabilities.safety
        if safety and safety.taxonomy and safety.taxonomy not in catalog.taxonomies:
            messages.append(f"unknown safety taxonomy {safety.taxonomy!r}")
        if spec.status in ("released", "deprecated") and not spec.hf_repo:
            messages.append("a released model needs hf_repo")
        messages += [f"unverified names {p!r}, which the entry does not have"
                     for p in spec.unverified if not has_path(catalog.resolved(spec.id), p)]
        if _lineage_cycle(catalog, spec.id):
            messages.append("derived_from leads back to this model")
        messages += [f"restates inherited value {p!r}" for p in
                     copied_overrides(catalog.raw[spec.id].own, catalog.inherited(spec.id))]
        messages += list(_text_invariants(spec))
        messages += list(_token_invariants(spec))
        messages += list(_param_invariants(spec))
        found += [Problem(spec.id, m) for m in messages]
    return found
