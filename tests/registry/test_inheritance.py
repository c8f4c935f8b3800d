"""``base:`` inheritance: variants override only what differs, and the checker catches copies."""

from __future__ import annotations

import textwrap

import pytest

from llama_zoo.registry.catalog import RegistryError, build_catalog, load_catalog
from llama_zoo.registry.validate import copied_overrides, problems

BASE = """
family: fam
defaults:
  license: Fam License
models:
  - id: fam-1b
    name: Fam 1B
    hf_repo: org/fam-1b
    architecture: {model_type: llama, num_hidden_layers: 2, hidden_size: 64, intermediate_size: 128,
                   num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 1000,
                   max_position_embeddings: 2048, rms_norm_eps: 1.0e-05, torch_dtype: bfloat16}
    tokenizer: {kind: sentencepiece-bpe, size: 1000, bos_token_id: 1, eos_token_id: 2}
"""


def write(tmp_path, name: str, text: str):
    (tmp_path / name).write_text(textwrap.dedent(text))


def test_registry_variants_restate_nothing_they_inherit():
    catalog = load_catalog()
    derived = [s.id for s in catalog if s.base]
    assert len(derived) > 30
    copies = {m: list(copied_overrides(catalog.raw[m].own, catalog.inherited(m))) for m in derived}
    assert {m: c for m, c in copies.items() if c} == {}


def test_registry_has_no_problems():
    assert [str(p) for p in problems(load_catalog())] == []


def test_variant_inherits_and_overrides(tmp_path):
    write(tmp_path, "fam.yaml", BASE + """
  - id: fam-1b-chat
    name: Fam 1B Chat
    base: fam-1b
    hf_repo: org/fam-1b-chat
    derived_from: {how: instruction-tuned}
    capabilities: {instruct: true}
    tokenizer: {eos_token_id: [2, 3]}
""")
    catalog = build_catalog(tmp_path)
    chat = catalog.get("fam-1b-chat")
    assert chat.architecture == catalog.get("fam-1b").architecture
    assert chat.tokenizer.eos_token_id == [2, 3] and chat.tokenizer.bos_token_id == 1
    assert chat.license == "Fam License" and chat.capabilities.instruct
    assert chat.derived_from.parent == "fam-1b"  # defaults to the base
    assert catalog.get("org/FAM-1B-chat").id == "fam-1b-chat"  # hub ids, case-insensitive


def test_checker_flags_a_restated_value(tmp_path):
    write(tmp_path, "fam.yaml", BASE + """
  - id: fam-1b-copy
    name: Fam 1B copy
    base: fam-1b
    hf_repo: org/fam-1b-copy
    architecture: {hidden_size: 64, num_hidden_layers: 4}
""")
    catalog = build_catalog(tmp_path)
    assert list(copied_overrides(catalog.raw["fam-1b-copy"].own, catalog.inherited("fam-1b-copy"))) == [
        "architecture.hidden_size"]
    assert any("restates inherited value 'architecture.hidden_size'" in str(p) for p in problems(catalog))


def test_family_defaults_apply_once_so_a_same_family_base_keeps_its_overrides():
    # code-llama.yaml's defaults say vocab 32016 with FIM; 34B overrides both, and 34B-Python,
    # whose base is 34B in the same file, must keep 34B's values rather than get the defaults again.
    catalog = load_catalog()
    assert catalog.get("code-llama-7b").architecture.vocab_size == 32016
    python_34b = catalog.get("code-llama-34b-python")
    assert python_34b.architecture.vocab_size == 32000 and python_34b.tokenizer.fim is None
    assert "architecture" not in catalog.raw["code-llama-34b-python"].own


def test_another_model_type_starts_a_fresh_architecture(tmp_path):
    write(tmp_path, "fam.yaml", BASE)
    write(tmp_path, "cls.yaml", """
    family: cls
    models:
      - id: cls-tiny
        name: classifier
        base: fam-1b
        hf_repo: org/cls
        architecture: {model_type: deberta-v2, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2,
                       intermediate_size: 64, vocab_size: 100, max_position_embeddings: 512,
                       id2label: {0: A, 1: B, 2: C}, torch_dtype: float32}
        tokenizer: {kind: deberta-v3-spm, size: 100}
      - id: cls-binary
        name: binary
        base: cls-tiny
        hf_repo: org/cls2
        architecture: {id2label: {0: A, 1: Z}}
    """)
    catalog = build_catalog(tmp_path)
    assert catalog.get("cls-tiny").model_type == "deberta-v2"
    assert catalog.get("cls-tiny").tokenizer.bos_token_id is None  # a new tokenizer kind starts afresh
    assert catalog.get("cls-binary").architecture.id2label == {0: "A", 1: "Z"}  # labels replaced whole


@pytest.mark.parametrize("extra,message", [
    ("  - id: loop-a\n    name: a\n    base: loop-b\n  - id: loop-b\n    name: b\n    base: loop-a\n", "cycle"),
    ("  - id: orphan\n    name: o\n    base: nowhere\n", "unknown base 'nowhere'"),
    ("  - id: fam-1b\n    name: again\n", "duplicate id 'fam-1b'"),
    ("  - id: typo\n    name: t\n    base: fam-1b\n    architecture: {hiden_size: 3}\n", "hiden_size"),
])
def test_broken_registries_are_rejected_with_a_reason(tmp_path, extra, message):
    write(tmp_path, "fam.yaml", BASE + extra)
    with pytest.raises(RegistryError, match=message):
        build_catalog(tmp_path)


def test_unverified_marks_follow_the_values(tmp_path):
    write(tmp_path, "fam.yaml", BASE.replace("license: Fam License", "license: Fam License\n  unverified: [license]") + """
    training: {tokens: 1000}
    unverified: [training.tokens, architecture]
  - id: fam-1b-chat
    name: chat
    base: fam-1b
    hf_repo: org/chat
  - id: fam-1b-retrained
    name: retrained
    base: fam-1b
    hf_repo: org/re
    training: {tokens: 2000}
    architecture: {num_hidden_layers: 4}
""")
    write(tmp_path, "other.yaml", """
    family: other
    defaults: {license: Other License}
    models:
      - id: other-1b
        name: other
        base: fam-1b-chat
        hf_repo: org/other
    """)
    catalog = build_catalog(tmp_path)
    assert catalog.get("fam-1b").unverified == ["architecture", "license", "training.tokens"]  # defaults' marks too
    assert catalog.get("fam-1b-chat").unverified == ["architecture", "license", "training.tokens"]
    # a value written anew is no longer the unconfirmed one; a mapping written in part still is
    assert catalog.get("fam-1b-retrained").unverified == ["architecture", "license"]
    # another family's defaults state the license: its mark goes, the others stay
    assert catalog.get("other-1b").unverified == ["architecture", "training.tokens"]


def test_the_vision_model_takes_its_text_config_from_the_text_base():
    catalog = load_catalog()
    vision, text = catalog.get("llama-3.2-11b-vision"), catalog.get("llama-3.1-8b")
    t = vision.architecture.text_config
    for field in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                  "vocab_size", "max_position_embeddings", "rope_theta", "rope_scaling", "rms_norm_eps"):
        assert getattr(t, field) == getattr(text.architecture, field), field
    own_text = catalog.raw["llama-3.2-11b-vision"].own["architecture"]["text_config"]
    assert set(own_text) == {"num_hidden_layers", "cross_attention_layers"}


def test_names_must_be_unique(tmp_path):
    write(tmp_path, "fam.yaml", BASE + """
  - id: fam-2b
    name: two
    base: fam-1b
    hf_repo: org/fam-1b
    architecture: {num_hidden_layers: 4}
""")
    with pytest.raises(RegistryError, match="'org/fam-1b' names both"):
        build_catalog(tmp_path)


def test_yaml_syntax_errors_name_the_file(tmp_path):
    write(tmp_path, "fam.yaml", BASE + "  - id: [unclosed\n")
    with pytest.raises(RegistryError, match="fam.yaml: not valid YAML"):
        build_catalog(tmp_path)
