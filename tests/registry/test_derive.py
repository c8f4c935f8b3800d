"""Derived numbers beyond parameter counts: FLOPs, KV cache, fit."""

from __future__ import annotations

from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.derive import (activation_bytes, attention_layout, fit_on_gpu, flops_per_token,
                                      kv_cache_bytes_per_token, memory_needed, weight_bytes)

CATALOG = load_catalog()


def test_tied_and_untied_twins_cost_the_same_flops():
    # Llama Guard 3 1B is Llama 3.2 1B with an untied output layer (and other RoPE scaling)
    tied, untied = CATALOG.get("llama-3.2-1b"), CATALOG.get("llama-guard-3-1b")
    assert flops_per_token(tied, 4096) == flops_per_token(untied, 4096)


def test_flops_follow_the_standard_estimate_for_a_dense_model():
    spec = CATALOG.get("llama-3.1-8b")
    arch = spec.architecture
    non_embedding = 8_030_261_248 - arch.vocab_size * arch.hidden_size
    attention = 4 * 32 * 2048 * arch.hidden_size
    assert flops_per_token(spec, 2048) == 2 * non_embedding + attention


def test_vision_models_cost_what_their_text_model_costs_per_text_token():
    vision, text = CATALOG.get("llama-3.2-11b-vision"), CATALOG.get("llama-3.1-8b")
    # cross-attention layers add Q and O projections and an MLP per text token, no self-attention
    extra = flops_per_token(vision, 1024) - flops_per_token(text, 1024)
    t = vision.architecture.text_config
    per_cross_layer = 2 * (2 * t.hidden_size * t.hidden_size + 3 * t.hidden_size * t.intermediate_size)
    assert abs(extra - 8 * per_cross_layer) / extra < 0.01


def test_llama4_chunked_attention_in_flops_and_kv():
    scout = CATALOG.get("llama-4-scout-17b-16e")
    layout = attention_layout(scout)
    assert (layout.full, layout.chunked, layout.chunk) == (12, 36, 8192)
    at_8k, at_1m = flops_per_token(scout, 8192), flops_per_token(scout, 1 << 20)
    t = scout.architecture.text_config
    per_key = 4 * t.num_attention_heads * t.head_dim
    assert at_1m - at_8k == per_key * 12 * ((1 << 20) - 8192)  # only the 12 global layers grow
    assert kv_cache_bytes_per_token(scout, context=1 << 20) < kv_cache_bytes_per_token(scout, context=8192) / 3


def test_fit():
    spec = CATALOG.get("llama-3.1-70b")
    assert not fit_on_gpu(spec, "H100-80GB", 8192).fits  # 141 GB of bf16 weights
    assert fit_on_gpu(spec, "H100-80GB", 8192, gpus=2).fits
    assert fit_on_gpu(CATALOG.get("llama-3.2-1b"), "L4-24GB", 131072).fits


def test_memory_needed_takes_a_windows_activations_where_they_outgrow_the_cache():
    """Scoring holds no KV cache but a whole window's activations; generating holds the cache. An H200
    ran a 128K window of Llama 3.1 8B at 48.9 GB, over the 36.6 GB that weights + cache x 1.1 gave,
    while the scorer also kept a cache it never read (docs/benchmarks.md)."""
    small, eight = CATALOG.get("llama-3.2-1b"), CATALOG.get("llama-3.1-8b")
    assert activation_bytes(eight, 131072) == 131072 * (3 * 14336 + 4 * 4096) * 2
    for spec, context in ((small, 131072), (eight, 131072), (CATALOG.get("llama-3.1-70b"), 8192)):
        cache = kv_cache_bytes_per_token(spec, context=context) * context
        larger = max(cache, activation_bytes(spec, context))
        assert memory_needed(spec, context) == (weight_bytes(spec, "bf16") + larger) * 1.1
        assert memory_needed(spec, context, activations=False) == (weight_bytes(spec, "bf16") + cache) * 1.1
    # 1B: 64 KiB of activations per token against 32 KiB of keys and values
    assert activation_bytes(small, 131072) > 2 * kv_cache_bytes_per_token(small, context=131072) * 131072 * 0.99
    assert memory_needed(small, 131072, batch=2) > memory_needed(small, 131072) > memory_needed(small, 131072,
                                                                                                activations=False)
