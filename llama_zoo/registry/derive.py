"""Numbers computed from an architecture, never stored: parameters, memory, KV cache, FLOPs, fit.

Parameter counts follow the tensors that transformers builds for each family, group by group,
so that they equal both the published counts and a meta-device model built from the export.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llama_zoo.registry.schema import (
    DebertaV2Arch,
    Llama4Arch,
    Llama4TextArch,
    Llama4VisionArch,
    LlamaArch,
    MllamaArch,
    MllamaTextArch,
    MllamaVisionArch,
    ModelSpec,
)

# Bytes per weight. int4 ignores per-group scales (about 3% more at group size 128).
DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}

# Usable memory in bytes as sold (GB = 1e9 bytes, the unit vendors quote).
GPUS = {
    "H100-80GB": 80e9,
    "A100-80GB": 80e9,
    "A100-40GB": 40e9,
    "L4-24GB": 24e9,
    "RTX4090-24GB": 24e9,
}


# Dense bf16 tensor-core FLOP/s (no sparsity) and memory bandwidth in bytes/s, from the vendors'
# data sheets (the SXM form where there are two): what ``plan`` assumes a fraction of.
GPU_SPEED = {
    "H100-80GB": (989e12, 3.35e12),
    "A100-80GB": (312e12, 2.039e12),
    "A100-40GB": (312e12, 1.555e12),
    "L4-24GB": (121e12, 0.300e12),
    "RTX4090-24GB": (165e12, 1.008e12),
}

VISION_GROUPS = ("vision_model", "multi_modal_projector")


@dataclass(frozen=True)
class ParamCount:
    """Learned parameters by group.

    ``active`` is one text token's path through the language model: the image encoder (which runs
    once per image) and the routed experts a token does not use are left out, as in Meta's
    "17B active" for Llama 4.
    """

    groups: dict[str, int]
    embedding: int  # input token embeddings (and position tables of encoders)
    inactive_experts: int = 0
    total: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum(self.groups.values()))

    @property
    def vision(self) -> int:
        return sum(self.groups.get(g, 0) for g in VISION_GROUPS)

    @property
    def active(self) -> int:
        return self.total - self.vision - self.inactive_experts

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding


def _gated_mlp(hidden: int, inner: int, bias: bool = False) -> int:
    return 3 * hidden * inner + (2 * inner + hidden if bias else 0)


def _attention(hidden: int, heads: int, kv_heads: int, head_dim: int, bias: bool = False) -> int:
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    weights = hidden * q_out + 2 * hidden * kv_out + q_out * hidden
    return weights + ((q_out + 2 * kv_out + hidden) if bias else 0)


def _llama_text(arch: LlamaArch) -> ParamCount:
    h, v = arch.hidden_size, arch.vocab_size
    per_layer = (
        _attention(h, arch.num_attention_heads, arch.num_key_value_heads, arch.resolved_head_dim, arch.attention_bias)
        + _gated_mlp(h, arch.intermediate_size, arch.mlp_bias)
        + 2 * h  # input and post-attention RMSNorm
    )
    out_rows = arch.output_vocab_size or v
    groups = {
        "embed_tokens": v * h,
        "layers": arch.num_hidden_layers * per_layer,
        "norm": h,
        "lm_head": 0 if arch.tie_word_embeddings else out_rows * h,
    }
    return ParamCount(groups=groups, embedding=v * h)


def _mllama_text(t: MllamaTextArch) -> dict[str, int]:
    h, hd = t.hidden_size, t.resolved_head_dim
    attn = _attention(h, t.num_attention_heads, t.num_key_value_heads, hd)
    mlp_norms = _gated_mlp(h, t.intermediate_size) + 2 * h
    n_cross = len(t.cross_attention_layers)
    n_self = t.num_hidden_layers - n_cross
    # Cross-attention layers add q/k RMSNorms over the head dim and two tanh gates.
    cross = attn + 2 * hd + 2 + mlp_norms
    return {
        # Eight extra rows hold the image token and reserved ids beyond the tokenizer's vocabulary.
        "embed_tokens": (t.vocab_size + 8) * h,
        "self_attention_layers": n_self * (attn + mlp_norms),
        "cross_attention_layers": n_cross * cross,
        "norm": h,
        "lm_head": 0 if t.tie_word_embeddings else t.vocab_size * h,
    }


def _vision_block(hidden: int, inner: int, qkv_bias: bool) -> int:
    attn = 4 * hidden * hidden + (4 * hidden if qkv_bias else 0)
    mlp = 2 * hidden * inner + inner + hidden
    return attn + mlp + 4 * hidden  # two LayerNorms with bias


def _mllama_vision(v: MllamaVisionArch) -> int:
    h = v.hidden_size
    patches = (v.image_size // v.patch_size) ** 2 + 1  # + class token
    aspect_rows = len(v.supported_aspect_ratios) + 1  # id 0 is padding
    embeddings = (
        v.num_channels * v.patch_size**2 * h  # patch conv, no bias
        + h  # class embedding
        + patches * h + 1  # gated positional embedding
        + aspect_rows * v.max_num_tiles * patches * h  # per-aspect-ratio tile position table
        + 2 * (aspect_rows * v.max_num_tiles * h + 1)  # pre/post tile embeddings with gates
        + 4 * h  # layernorm_pre, layernorm_post
    )
    local = v.num_hidden_layers * _vision_block(h, v.intermediate_size, qkv_bias=False)
    global_ = v.num_global_layers * (_vision_block(h, v.intermediate_size, qkv_bias=False) + 2)
    return embeddings + local + global_


def _mllama(arch: MllamaArch) -> ParamCount:
    t, v = arch.text_config, arch.vision_config
    groups = _mllama_text(t)
    groups["vision_model"] = _mllama_vision(v)
    groups["multi_modal_projector"] = v.vision_output_dim * t.hidden_size + t.hidden_size
    return ParamCount(groups=groups, embedding=groups["embed_tokens"])


def llama4_moe_layers(t: Llama4TextArch) -> list[int]:
    """Layer indices that hold experts; as transformers derives them when the config gives none."""
    if t.moe_layers is not None:
        return list(t.moe_layers)
    step = t.interleave_moe_layer_step
    if step <= 0:
        return []
    return list(range(step - 1, t.num_hidden_layers, step))


def _llama4_text(t: Llama4TextArch) -> tuple[dict[str, int], int]:
    h = t.hidden_size
    attn = _attention(h, t.num_attention_heads, t.num_key_value_heads, t.head_dim, t.attention_bias)
    n_moe = len(llama4_moe_layers(t))
    n_dense = t.num_hidden_layers - n_moe
    expert = 3 * h * t.intermediate_size
    moe_ffn = t.num_local_experts * expert + h * t.num_local_experts + expert  # experts, router, shared
    groups = {
        "embed_tokens": t.vocab_size * h,
        "attention_and_norms": t.num_hidden_layers * (attn + 2 * h),
        "dense_ffn": n_dense * _gated_mlp(h, t.intermediate_size_mlp),
        "moe_ffn": n_moe * moe_ffn,
        "norm": h,
        "lm_head": 0 if t.tie_word_embeddings else t.vocab_size * h,
    }
    inactive = n_moe * (t.num_local_experts - t.num_experts_per_tok) * expert
    return groups, inactive


def _llama4_vision(v: Llama4VisionArch) -> int:
    h = v.hidden_size
    patches = (v.image_size // v.patch_size) ** 2 + 1
    embeddings = v.num_channels * v.patch_size**2 * h + h + patches * h + 4 * h
    layers = v.num_hidden_layers * _vision_block(h, v.intermediate_size, qkv_bias=True)
    adapter = v.intermediate_size * v.projector_input_dim + v.projector_output_dim**2
    return embeddings + layers + adapter


def _llama4(arch: Llama4Arch) -> ParamCount:
    groups, inactive = _llama4_text(arch.text_config)
    groups["vision_model"] = _llama4_vision(arch.vision_config)
    groups["multi_modal_projector"] = arch.vision_config.vision_output_dim * arch.text_config.hidden_size
    return ParamCount(groups=groups, embedding=groups["embed_tokens"], inactive_experts=inactive)


def _deberta(arch: DebertaV2Arch) -> ParamCount:
    h, inner = arch.hidden_size, arch.intermediate_size
    layer = 4 * (h * h + h) + (h * inner + inner) + (inner * h + h) + 2 * (2 * h)
    rel_rows = 0
    if arch.relative_attention:
        rel_rows = 2 * (arch.position_buckets if arch.position_buckets > 0 else
                        (arch.max_relative_positions if arch.max_relative_positions > 0
                         else arch.max_position_embeddings))
    embedding = arch.vocab_size * h
    embedding += arch.max_position_embeddings * h if arch.position_biased_input else 0
    embedding += arch.type_vocab_size * h
    pooler = arch.pooler_hidden_size or h
    labels = len(arch.id2label)
    groups = {
        "embeddings": embedding + 2 * h,  # + embedding LayerNorm
        "encoder_layers": arch.num_hidden_layers * layer,
        "relative_embeddings": rel_rows * h + (2 * h if "layer_norm" in arch.norm_rel_ebd else 0),
        "classifier": (h * pooler + pooler) + (pooler * labels + labels),
    }
    return ParamCount(groups=groups, embedding=embedding)


def param_count(spec: ModelSpec) -> ParamCount | None:
    """Learned parameters, or None for a model whose architecture is not public."""
    arch = spec.architecture
    if isinstance(arch, LlamaArch):
        return _llama_text(arch)
    if isinstance(arch, MllamaArch):
        return _mllama(arch)
    if isinstance(arch, Llama4Arch):
        return _llama4(arch)
    if isinstance(arch, DebertaV2Arch):
        return _deberta(arch)
    return None


def rotary_buffer_elements(spec: ModelSpec) -> int:
    """Elements of the per-layer ``inv_freq`` buffers that old Llama checkpoints saved with the weights."""
    arch = spec.text_arch
    if arch is None:
        return 0
    return arch.num_hidden_layers * (arch.resolved_head_dim // 2)


def weight_bytes(spec: ModelSpec, dtype: str = "bf16") -> float | None:
    count = param_count(spec)
    return None if count is None else count.total * DTYPE_BYTES[dtype]


@dataclass(frozen=True)
class AttentionLayout:
    """Which self-attention layers see every earlier text token, and which only a chunk of them."""

    full: int
    chunked: int = 0
    chunk: int | None = None

    def keys_attended(self, context: int) -> float:
        """Keys one token at position ``context`` attends to, summed over layers."""
        return self.full * context + self.chunked * min(context, self.chunk or context)


def attention_layout(spec: ModelSpec) -> AttentionLayout | None:
    """Mllama's cross-attention layers attend to image features, not text, so they are not counted.
    Llama 4 keeps full attention on its NoPE layers and chunks it on the others."""
    t = spec.text_arch
    if t is None:
        return None
    layers = t.num_hidden_layers
    if isinstance(t, MllamaTextArch):
        layers -= len(t.cross_attention_layers)
    if isinstance(t, Llama4TextArch) and t.attention_chunk_size:
        full = _llama4_global_layers(t)
        return AttentionLayout(full=full, chunked=layers - full, chunk=t.attention_chunk_size)
    return AttentionLayout(full=layers)


def _llama4_global_layers(t: Llama4TextArch) -> int:
    # no_rope_layers[i] == 0 marks a NoPE layer with full (global) attention; others are chunked.
    if t.no_rope_layers:
        return sum(1 for flag in t.no_rope_layers if flag == 0)
    return t.num_hidden_layers // t.no_rope_layer_interval


def kv_cache_bytes_per_token(spec: ModelSpec, dtype: str = "bf16", context: int | None = None) -> float | None:
    """K and V bytes per token of context, averaged over a ``context``-token sequence.

    Chunked layers keep at most one chunk, so past it a long context adds only full-layer cache.
    """
    t, layout = spec.text_arch, attention_layout(spec)
    if t is None or layout is None:
        return None
    per_layer = 2 * t.num_key_value_heads * t.resolved_head_dim * DTYPE_BYTES[dtype]
    if context is None or not layout.chunked:
        return per_layer * (layout.full + layout.chunked)
    return per_layer * layout.keys_attended(context) / context


def flops_per_token(spec: ModelSpec, context: int) -> float | None:
    """Forward FLOPs for one text token at position ``context``.

    2 FLOPs per multiply-add through the token's matmul weights: the active language-model
    parameters less the input embedding look-up, plus the output projection (which a tied model
    shares with the embedding). Image encoders and cross-attention K/V run once per image and are
    left out. Attention adds 2 x 2 x keys attended x heads x head_dim (QK^T and attention x V).
    """
    count, t, layout = param_count(spec), spec.text_arch, attention_layout(spec)
    if count is None or t is None or layout is None:
        return None
    matmul = count.active - count.embedding
    if t.tie_word_embeddings:
        matmul += t.vocab_size * t.hidden_size
    if isinstance(t, MllamaTextArch):
        matmul -= len(t.cross_attention_layers) * 2 * t.hidden_size * t.num_key_value_heads * t.resolved_head_dim
    attention = 4.0 * layout.keys_attended(context) * t.num_attention_heads * t.resolved_head_dim
    return 2.0 * matmul + attention


@dataclass(frozen=True)
class Fit:
    gpu: str
    needed_bytes: float
    available_bytes: float

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.available_bytes


def fit_on_gpu(
    spec: ModelSpec,
    gpu: str,
    context: int,
    batch: int = 1,
    dtype: str = "bf16",
    kv_dtype: str = "bf16",
    gpus: int = 1,
    overhead: float = 0.10,
) -> Fit | None:
    """Whether the weights and the larger of a full KV cache and a forward pass's activations fit
    (``memory_needed``)."""
    needed = memory_needed(spec, context, batch, dtype, kv_dtype, overhead)
    if needed is None:
        return None
    return Fit(gpu=gpu, needed_bytes=needed, available_bytes=GPUS[gpu] * gpus)


def tensor_parallel_size(spec: ModelSpec, context: int, gpu_bytes: float, dtype: str = "bf16",
                         most: int = 64) -> int | None:
    """GPUs for vLLM's tensor parallelism: the smallest power of two whose memory holds the weights
    and one sequence's KV cache (``memory_needed``) and which divides the attention heads, as vLLM
    requires; None when no such size up to ``most`` exists."""
    # vLLM prefills in chunks of a bounded token count: its activations are not a whole window's
    needed = memory_needed(spec, context, dtype=dtype, activations=False)
    if needed is None or spec.text_arch is None:
        return None
    heads = spec.text_arch.num_attention_heads
    size = 1
    while size <= most:
        if size * gpu_bytes >= needed and heads % size == 0:
            return size
        size *= 2
    return None


def activation_bytes(spec: ModelSpec, tokens: int, dtype: str = "bf16") -> float | None:
    """The largest activations of one forward pass over ``tokens`` tokens at once, as the transformers
    backend scores a batch of whole windows: the widest dense MLP's three intermediate-width tensors
    (the activated gate, the up projection, their product) and four hidden-width ones (the residual
    stream, the normed input, the attention and MLP outputs). Quantised weights compute in bf16.
    A 131,072-token window of Llama 3.1 8B: 15.6 GB, where its weights are 16.1 GB."""
    t = spec.text_arch
    if t is None:
        return None
    width = max(t.intermediate_size, getattr(t, "intermediate_size_mlp", 0))
    return tokens * (3 * width + 4 * t.hidden_size) * (4.0 if dtype == "fp32" else 2.0)


def memory_needed(spec: ModelSpec, context: int, batch: int = 1, dtype: str = "bf16", kv_dtype: str = "bf16",
                  overhead: float = 0.10, activations: bool = True) -> float | None:
    """Bytes for the weights and the larger of what a run holds beside them, plus ``overhead`` for
    the runtime: a full KV cache (generating: the prompt is prefilled in pieces, whose activations the
    overhead covers) or (``activations``) one forward pass over the whole batch of windows (scoring,
    which keeps no cache). Llama 3.2 1B's activations outgrow its KV cache twofold; Llama 3.1 8B's
    come close to it (15.6 against 17.2 GB for a 128K window)."""
    weights = weight_bytes(spec, dtype)
    kv = kv_cache_bytes_per_token(spec, kv_dtype, context)
    forward = activation_bytes(spec, context * batch, dtype) if activations else 0.0
    if weights is None or kv is None or forward is None:
        return None
    return (weights + max(kv * context * batch, forward)) * (1 + overhead)
