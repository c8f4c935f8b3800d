"""Known traps of the Llama family, each pinned to the registry's data and to transformers."""

from __future__ import annotations

import pytest

from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.derive import kv_cache_bytes_per_token, llama4_moe_layers, param_count
from llama_zoo.registry.to_transformers import meta_model

CATALOG = load_catalog()


def test_llama32_small_models_tie_embeddings_but_guard_3_1b_does_not():
    assert CATALOG.get("llama-3.2-3b").architecture.tie_word_embeddings
    small, guard = CATALOG.get("llama-3.2-1b"), CATALOG.get("llama-guard-3-1b")
    assert small.architecture.tie_word_embeddings and not guard.architecture.tie_word_embeddings
    arch = small.architecture
    assert param_count(guard).total - param_count(small).total == arch.vocab_size * arch.hidden_size
    model = meta_model(guard)
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    model = meta_model(small)
    assert model.lm_head.weight is model.model.embed_tokens.weight


@pytest.mark.parametrize("model_id,vocab", [
    ("code-llama-7b", 32016), ("code-llama-13b", 32016), ("code-llama-70b", 32016),
    ("code-llama-7b-instruct", 32016), ("code-llama-13b-instruct", 32016), ("code-llama-70b-instruct", 32016),
    ("code-llama-7b-python", 32000), ("code-llama-13b-python", 32000), ("code-llama-34b-python", 32000),
    ("code-llama-34b", 32000), ("code-llama-34b-instruct", 32000),
])
def test_code_llama_vocabulary(model_id, vocab):
    assert CATALOG.get(model_id).architecture.vocab_size == vocab


def test_code_llama_fim_tokens_only_where_infilling_was_trained():
    fim = {s.id for s in CATALOG if s.family == "code-llama" and s.tokenizer.fim}
    assert {"code-llama-7b", "code-llama-13b", "code-llama-7b-instruct", "code-llama-13b-instruct"} <= fim
    assert not any("34b" in m or "python" in m for m in fim)
    tokens = CATALOG.get("code-llama-7b").tokenizer.fim
    assert (tokens.prefix, tokens.suffix, tokens.middle, tokens.eot) == (32007, 32008, 32009, 32010)


def test_code_llama_70b_instruct_context_differs_from_its_base():
    base, instruct = CATALOG.get("code-llama-70b"), CATALOG.get("code-llama-70b-instruct")
    assert base.max_context == 16384
    assert instruct.max_context == 4096 and instruct.architecture.rope_theta == 10000.0
    assert instruct.tokenizer.chat_format == "codellama-70b-source"
    assert instruct.tokenizer.stop_strings == ["<step>"]  # its turns end with <step>, not </s>
    assert CATALOG.get("code-llama-70b-python").training.context_length == 4096


def test_scout_is_moe_in_every_layer_maverick_in_every_other():
    scout = CATALOG.get("llama-4-scout-17b-16e").architecture.text_config
    maverick = CATALOG.get("llama-4-maverick-17b-128e").architecture.text_config
    assert llama4_moe_layers(scout) == list(range(48))
    assert llama4_moe_layers(maverick) == list(range(1, 48, 2))
    # transformers agrees: look at which layers it builds as mixtures of experts
    for model_id, expected in (("llama-4-scout-17b-16e", 48), ("llama-4-maverick-17b-128e", 24)):
        layers = meta_model(CATALOG.get(model_id)).language_model.model.layers
        assert sum(hasattr(layer.feed_forward, "router") for layer in layers) == expected


def test_llama_guard_4_is_scout_without_routed_experts():
    guard = CATALOG.get("llama-guard-4-12b")
    assert llama4_moe_layers(guard.architecture.text_config) == []
    count = param_count(guard)
    assert count.inactive_experts == 0 and count.active == count.total - count.vision  # dense
    assert guard.derived_from.parent == "llama-4-scout-17b-16e"


def test_prompt_guard_sizes_name_the_encoder_only():
    for model_id, named in (("prompt-guard-86m", 86e6), ("prompt-guard-2-86m", 86e6), ("prompt-guard-2-22m", 22e6)):
        count = param_count(CATALOG.get(model_id))
        assert count.total > 2.5 * named  # the word embedding dwarfs the backbone
        assert abs(count.non_embedding - named) / named < 0.03, (model_id, count.non_embedding)
    assert param_count(CATALOG.get("prompt-guard-86m")).embedding == 251000 * 768


def test_mllama_cross_attention_layers_do_not_cache_text_tokens():
    vision = CATALOG.get("llama-3.2-11b-vision")
    text = CATALOG.get("llama-3.1-8b")
    # 32 self-attention layers either way: the same KV cache per text token
    assert kv_cache_bytes_per_token(vision) == kv_cache_bytes_per_token(text) == 2 * 32 * 8 * 128 * 2


def test_llama4_chunked_attention_caps_the_kv_cache():
    scout = CATALOG.get("llama-4-scout-17b-16e")
    short = kv_cache_bytes_per_token(scout, context=8192)
    long = kv_cache_bytes_per_token(scout, context=1_048_576)
    assert long < short / 3  # only the 12 global (NoPE) layers keep every token


def test_guard_taxonomies_per_version():
    tax = CATALOG.taxonomies
    assert list(tax["llama-guard-1"]) == [f"O{i}" for i in range(1, 7)]
    assert list(tax["llama-guard-2"]) == [f"S{i}" for i in range(1, 12)]
    assert list(tax["llama-guard-3-13"]) == [f"S{i}" for i in range(1, 14)]
    assert tax["llama-guard-3-14"]["S14"] == "Code Interpreter Abuse"
    # the names the models are prompted with (the model cards' tables use longer ones)
    assert (tax["llama-guard-3-14"]["S3"], tax["llama-guard-3-14"]["S11"]) == ("Sex Crimes", "Self-Harm")
    assert tax["llama-guard-2"]["S10"] == "Self-Harm"
    expected = {"llama-guard-7b": "llama-guard-1", "llama-guard-2-8b": "llama-guard-2",
                "llama-guard-3-8b": "llama-guard-3-14", "llama-guard-3-1b": "llama-guard-3-13",
                "llama-guard-3-11b-vision": "llama-guard-3-13", "llama-guard-4-12b": "llama-guard-3-14"}
    for model_id, taxonomy in expected.items():
        assert CATALOG.get(model_id).capabilities.safety.taxonomy == taxonomy


def test_lineage():
    parent = {s.id: s.derived_from.parent for s in CATALOG if s.derived_from}
    assert parent["code-llama-7b"] == "llama-2-7b"
    assert parent["code-llama-34b"] == "llama-2-34b" and CATALOG.get("llama-2-34b").status == "unreleased"
    assert parent["llama-guard-3-1b"] == "llama-3.2-1b"
    assert parent["llama-3.2-11b-vision"] == "llama-3.1-8b"
    assert parent["llama-3.2-90b-vision"] == "llama-3.1-70b"


@pytest.mark.parametrize("tokenizer_dir,model_id", [
    ("llama2", "llama-2-7b"), ("llama3", "llama-3-8b-instruct"), ("llama3_1", "llama-3.1-8b-instruct"),
    ("llama3_1", "llama-3.2-11b-vision"),
])
def test_special_token_ids_match_the_real_tokenizers(shared, tokenizer_dir, model_id):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared / "tokenizers" / tokenizer_dir)
    spec = CATALOG.get(model_id)
    vocab = tokenizer.get_vocab()
    checked = {name: token_id for name, token_id in spec.tokenizer.special_tokens.items() if name in vocab}
    assert {name: vocab[name] for name in checked} == checked
    # The fixture's 3.1 tokenizer (an npm copy) keeps Llama 3's reserved names where Meta's 3.1
    # tokenizer names tool-use tokens (<|eom_id|>, <|python_tag|>...): the ids must still be special
    # slots. <|image|> (128256) is added by the vision processor, past the text vocabulary.
    for name, token_id in spec.tokenizer.special_tokens.items():
        if name not in vocab and name != "<|image|>":
            assert tokenizer.convert_ids_to_tokens(token_id).startswith("<|reserved_special_token_"), name
    assert tokenizer.bos_token_id == spec.tokenizer.bos_token_id
    assert len(tokenizer) == spec.tokenizer.size
