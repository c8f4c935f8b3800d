"""The registry's schema: what a model entry may say, validated with pydantic.

Architecture fields use transformers' config names so that export to ``config.json`` is a
mapping, not a translation. Each architecture class lists the fields it knows and forbids the
rest, so a typo in a YAML file is an error rather than a silently ignored key.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- architecture


class LlamaArch(_Strict):
    """A decoder-only Llama (``LlamaForCausalLM``): Llama 1-3.3, Code Llama, Llama Guard 1-3 text."""

    model_type: Literal["llama"]
    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int | None = None
    vocab_size: int
    max_position_embeddings: int
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    rms_norm_eps: float
    tie_word_embeddings: bool = False
    torch_dtype: Literal["float16", "bfloat16", "float32"]
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    mlp_bias: bool = False
    # Some pruned checkpoints keep the full input vocabulary but emit scores over fewer ids.
    output_vocab_size: int | None = None

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads


class MllamaTextArch(_Strict):
    model_type: Literal["mllama_text_model"] = "mllama_text_model"
    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    max_position_embeddings: int
    rope_theta: float
    rope_scaling: dict[str, Any] | None = None
    rms_norm_eps: float
    tie_word_embeddings: bool = False
    cross_attention_layers: list[int]
    hidden_act: Literal["silu"] = "silu"
    torch_dtype: Literal["float16", "bfloat16", "float32"] | None = None

    @property
    def resolved_head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


class MllamaVisionArch(_Strict):
    model_type: Literal["mllama_vision_model"] = "mllama_vision_model"
    hidden_size: int
    num_hidden_layers: int
    num_global_layers: int
    attention_heads: int
    intermediate_size: int
    image_size: int
    patch_size: int
    max_num_tiles: int
    num_channels: int = 3
    intermediate_layers_indices: list[int]
    vision_output_dim: int
    supported_aspect_ratios: list[list[int]]
    norm_eps: float = 1e-5
    hidden_act: str = "gelu"
    torch_dtype: Literal["float16", "bfloat16", "float32"] | None = None


class MllamaArch(_Strict):
    """Llama 3.2 Vision: a Llama 3.1 text model with interleaved cross-attention to an image encoder."""

    model_type: Literal["mllama"]
    image_token_index: int
    torch_dtype: Literal["float16", "bfloat16", "float32"]
    tie_word_embeddings: bool = False
    text_config: MllamaTextArch
    vision_config: MllamaVisionArch


class Llama4TextArch(_Strict):
    model_type: Literal["llama4_text"] = "llama4_text"
    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int  # per expert and shared expert
    intermediate_size_mlp: int  # dense (non-MoE) layers
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    rope_theta: float
    rope_scaling: dict[str, Any] | None = None
    rms_norm_eps: float
    num_local_experts: int
    num_experts_per_tok: int
    interleave_moe_layer_step: int
    # Explicit lists are optional: transformers derives them from the step and chunk settings.
    moe_layers: list[int] | None = None
    no_rope_layers: list[int] | None = None
    no_rope_layer_interval: int = 4  # every 4th layer: NoPE with global attention; the rest RoPE, chunked
    attention_chunk_size: int | None = None
    use_qk_norm: bool = True
    attn_temperature_tuning: bool | int = True
    floor_scale: int | None = None
    attn_scale: float | None = None
    tie_word_embeddings: bool = False
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    torch_dtype: Literal["float16", "bfloat16", "float32"] | None = None

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim


class Llama4VisionArch(_Strict):
    model_type: Literal["llama4_vision_model"] = "llama4_vision_model"
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    image_size: int
    patch_size: int
    num_channels: int = 3
    pixel_shuffle_ratio: float
    projector_input_dim: int
    projector_output_dim: int
    vision_output_dim: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    vision_feature_layer: int = -1
    vision_feature_select_strategy: str = "default"
    multi_modal_projector_bias: bool = False
    projector_dropout: float = 0.0
    hidden_act: str = "gelu"
    torch_dtype: Literal["float16", "bfloat16", "float32"] | None = None


class Llama4Arch(_Strict):
    """Llama 4: early-fusion multimodal mixture of experts with interleaved NoPE/chunked attention."""

    model_type: Literal["llama4"]
    torch_dtype: Literal["float16", "bfloat16", "float32"]
    image_token_index: int
    boi_token_index: int | None = None
    eoi_token_index: int | None = None
    tie_word_embeddings: bool = False
    text_config: Llama4TextArch
    vision_config: Llama4VisionArch


class DebertaV2Arch(_Strict):
    """Prompt Guard: a DeBERTa-v2/v3 encoder with a sequence-classification head."""

    model_type: Literal["deberta-v2"]
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int = 0
    relative_attention: bool = True
    max_relative_positions: int = -1
    position_buckets: int = 256
    pos_att_type: list[str] = ["p2c", "c2p"]
    position_biased_input: bool = False
    norm_rel_ebd: str = "layer_norm"
    share_att_key: bool = True
    layer_norm_eps: float = 1e-7
    hidden_act: str = "gelu"
    pooler_hidden_size: int | None = None
    pooler_hidden_act: str = "gelu"
    id2label: dict[int, str]
    torch_dtype: Literal["float16", "bfloat16", "float32"]


Architecture = Annotated[
    Union[LlamaArch, MllamaArch, Llama4Arch, DebertaV2Arch], Field(discriminator="model_type")
]


# --------------------------------------------------------------------------- everything else


ChatFormat = Literal[
    "llama2-inst",  # <s>[INST] <<SYS>>..<</SYS>> user [/INST] answer </s>
    "llama3-header",  # <|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>
    "llama4-header",  # <|header_start|>role<|header_end|>\n\n ... <|eot|>
    "codellama-70b-source",  # Source: user\n\n ... <step> Source: assistant\nDestination: user
    "llama-guard",  # a single user turn carrying the policy and the conversation
    "chatml",  # <|im_start|>role\n ... <|im_end|> (community fine-tunes: SmolLM2, ...)
]


class FimTokens(_Strict):
    prefix: int
    suffix: int
    middle: int
    eot: int
    modes: list[Literal["psm", "spm"]]


class Tokenizer(_Strict):
    # byte-level-bpe: GPT-2 style (community Llama-architecture models such as SmolLM2)
    kind: Literal["sentencepiece-bpe", "tiktoken-bpe", "byte-level-bpe", "deberta-v3-spm", "mdeberta-v3-spm"]
    size: int  # entries in the tokenizer itself, which may be fewer than the embedding rows
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    special_tokens: dict[str, int] = {}
    fim: FimTokens | None = None
    chat_format: ChatFormat | None = None
    # Turn ends that are text rather than one id (Code Llama 70B Instruct's "<step>").
    stop_strings: list[str] = []


class SafetyClassifier(_Strict):
    role: Literal["content-moderation", "prompt-attack"]
    taxonomy: str | None = None  # a key of taxonomies.yaml
    # Llama Guard decides by the first generated token: these are read by next-token scoring.
    verdict_tokens: dict[str, str] | None = None
    # How a Llama Guard version is prompted (llama_zoo.suites.safety.guard_prompts renders each).
    prompt_format: Literal["guard-1", "guard-2", "guard-3-8b", "guard-3", "guard-4"] | None = None
    multimodal: bool = False


class Capabilities(_Strict):
    text_generation: bool = True
    instruct: bool = False
    code: bool = False
    vision: Literal["cross-attention", "early-fusion"] | None = None
    safety: SafetyClassifier | None = None
    languages: list[str] = ["en"]


class Training(_Strict):
    tokens: int | None = None
    data: str | None = None
    context_length: int | None = None
    knowledge_cutoff: str | None = None


class Links(_Strict):
    paper: str | None = None
    blog: str | None = None
    model_card: str | None = None
    github: str | None = None


class Lineage(_Strict):
    parent: str  # registry id
    how: Literal[
        "instruction-tuned",
        "continued-pretraining",
        "fine-tuned",
        "pruned-distilled",
        "pruned-quantized",
        "vision-adapter",
        "distilled",
    ]
    note: str | None = None


class OfficialParams(_Strict):
    value: int
    source: str
    # Llama 2 / Code Llama checkpoints also store rotary inv_freq buffers; their tensor totals are
    # recorded apart from the learned parameters so neither is mistaken for the other.
    checkpoint_tensors: int | None = None


class PublishedResult(_Strict):
    """One number of a benchmark table as Meta's model card prints it (``published/*.yaml``, made by
    ``scripts/published_from_cards.py``), on the checkpoint it was published for."""

    benchmark: str
    category: str | None
    shots: str | None  # as printed: "5", "3-5"; None where the table gives none
    metric: str | None
    value: float
    table: str  # the card's section heading above the table
    source: str  # "owner/repo:path#anchor"
    variant: str | None = None  # a quantised version of the checkpoint (SpinQuant, QLoRA, INT8, ...)


# announced: public plans, no weights; unreleased: trained and described (in a paper), never published.
Status = Literal["released", "announced", "unreleased", "deprecated"]


class ModelSpec(_Strict):
    """One fully resolved registry entry (base merged in)."""

    id: str
    name: str
    family: str
    base: str | None = None
    status: Status = "released"
    release_date: dt.date | None = None
    license: str | None = None
    hf_repo: str | None = None
    aliases: list[str] = []
    architecture: Architecture | None = None
    tokenizer: Tokenizer | None = None
    capabilities: Capabilities = Capabilities()
    training: Training = Training()
    links: Links = Links()
    derived_from: Lineage | None = None
    official_params: OfficialParams | None = None
    # Published figures for models whose architecture is not public (Behemoth).
    announced: dict[str, Any] | None = None
    # Dotted field paths whose values could not be confirmed from a primary source.
    unverified: list[str] = []
    notes: str | None = None
    # Benchmark results its model cards publish (never inherited: a number belongs to its checkpoint).
    published: tuple[PublishedResult, ...] = ()

    @model_validator(mode="after")
    def _released_models_have_an_architecture(self) -> "ModelSpec":
        if self.status not in ("announced", "unreleased") and self.architecture is None:
            raise ValueError(f"{self.id}: a released model needs an architecture")
        return self

    @property
    def model_type(self) -> str | None:
        return self.architecture.model_type if self.architecture else None

    @property
    def text_arch(self) -> LlamaArch | MllamaTextArch | Llama4TextArch | None:
        """The language-model part of the architecture, whatever the wrapper."""
        arch = self.architecture
        if isinstance(arch, (MllamaArch, Llama4Arch)):
            return arch.text_config
        if isinstance(arch, LlamaArch):
            return arch
        return None

    @property
    def max_context(self) -> int | None:
        arch = self.text_arch
        if arch is not None:
            return arch.max_position_embeddings
        if isinstance(self.architecture, DebertaV2Arch):
            return self.architecture.max_position_embeddings
        return None
