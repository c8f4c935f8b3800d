"""Export to transformers and shadow configs: the right classes, the registry's values, tiny."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer

from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.to_transformers import model_class, shadow_config, to_hf_config

CATALOG = load_catalog()
SHADOWABLE = [s.id for s in CATALOG if s.architecture is not None and not getattr(s.architecture, "output_vocab_size", None)]


@pytest.mark.parametrize("model_id,config_class,model_cls", [
    ("llama-3.1-405b", "LlamaConfig", "LlamaForCausalLM"),
    ("llama-3.2-90b-vision-instruct", "MllamaConfig", "MllamaForConditionalGeneration"),
    ("llama-4-maverick-17b-128e", "Llama4Config", "Llama4ForConditionalGeneration"),
    ("prompt-guard-86m", "DebertaV2Config", "DebertaV2ForSequenceClassification"),
])
def test_exported_config_json_loads_with_autoconfig(tmp_path, model_id, config_class, model_cls):
    spec = CATALOG.get(model_id)
    (tmp_path / "config.json").write_text(json.dumps(to_hf_config(spec)))
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config).__name__ == config_class
    assert config.architectures == [model_cls]
    text = config.get_text_config()
    expected = spec.text_arch or spec.architecture
    assert text.num_hidden_layers == expected.num_hidden_layers
    assert text.hidden_size == expected.hidden_size
    assert text.vocab_size == expected.vocab_size


def test_exported_llama_config_keeps_rope_scaling_and_special_ids(tmp_path):
    spec = CATALOG.get("llama-3.1-8b-instruct")
    (tmp_path / "config.json").write_text(json.dumps(to_hf_config(spec)))
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.rope_parameters["rope_type"] == "llama3" and config.rope_parameters["factor"] == 8.0
    assert config.rope_parameters["rope_theta"] == 500000.0
    assert config.eos_token_id == [128001, 128008, 128009]


@pytest.mark.parametrize("model_id", SHADOWABLE)
def test_shadow_builds_small_and_keeps_the_family(model_id):
    """How long a shadow takes to build is measured by benchmarks/build_speeds.py, not asserted here."""
    spec = CATALOG.get(model_id)
    config = shadow_config(spec)
    model = model_class(spec.model_type)(config)
    assert sum(p.numel() for p in model.parameters()) < 80_000_000
    text, real = config.get_text_config(), spec.text_arch or spec.architecture
    assert text.vocab_size == real.vocab_size  # real tokenizers still fit
    if spec.text_arch is not None:
        ratio = real.num_attention_heads // real.num_key_value_heads
        assert text.num_attention_heads // text.num_key_value_heads == ratio
        assert text.tie_word_embeddings == real.tie_word_embeddings


def test_shadow_keeps_moe_interleave_and_shared_expert():
    for model_id, all_moe in (("llama-4-scout-17b-16e", True), ("llama-4-maverick-17b-128e", False)):
        model = model_class("llama4")(shadow_config(CATALOG.get(model_id)))
        layers = model.language_model.model.layers
        moe = [hasattr(layer.feed_forward, "router") for layer in layers]
        assert all(moe) if all_moe else (any(moe) and not all(moe))
        assert all(hasattr(layer.feed_forward, "shared_expert") for layer, m in zip(layers, moe) if m)
        first_moe = layers[moe.index(True)].feed_forward
        assert first_moe.experts.num_experts == CATALOG.get(model_id).architecture.text_config.num_local_experts
    guard = model_class("llama4")(shadow_config(CATALOG.get("llama-guard-4-12b")))
    assert not any(hasattr(layer.feed_forward, "router") for layer in guard.language_model.model.layers)


def test_shadow_keeps_cross_attention_period():
    config = shadow_config(CATALOG.get("llama-3.2-11b-vision"))
    assert config.text_config.cross_attention_layers == [3, 8]
    model = model_class("mllama")(config)
    kinds = [type(layer).__name__ for layer in model.model.language_model.layers]
    assert [i for i, k in enumerate(kinds) if "CrossAttention" in k] == [3, 8]


def test_shadow_runs_with_the_real_llama3_tokenizer(shared):
    tokenizer = AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama3_1")
    spec = CATALOG.get("llama-3.1-8b")
    model = model_class("llama")(shadow_config(spec)).eval()
    ids = tokenizer("The llama is a domesticated South American camelid.", return_tensors="pt").input_ids
    assert ids[0, 0].item() == spec.tokenizer.bos_token_id
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], spec.architecture.vocab_size)


def test_shadow_prompt_guard_keeps_labels():
    spec = CATALOG.get("prompt-guard-86m")
    model = model_class("deberta-v2")(shadow_config(spec))
    assert model.config.id2label == {0: "BENIGN", 1: "INJECTION", 2: "JAILBREAK"}
    assert model.classifier.out_features == 3
