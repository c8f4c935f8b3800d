"""From a registry entry to transformers: the exported ``config.json``, shadow configs, meta models.

``to_hf_config`` is pure data and imports nothing heavy (the CLI's ``models export`` uses it);
the rest imports transformers lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llama_zoo.errors import LlamaZooError
from llama_zoo.registry.schema import (
    DebertaV2Arch,
    Llama4Arch,
    LlamaArch,
    MllamaArch,
    ModelSpec,
)

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

MODEL_CLASSES = {
    "llama": "LlamaForCausalLM",
    "mllama": "MllamaForConditionalGeneration",
    "llama4": "Llama4ForConditionalGeneration",
    "deberta-v2": "DebertaV2ForSequenceClassification",
}

# Registry-only fields that are facts about a checkpoint but not transformers config keys.
_NOT_IN_CONFIG = {"output_vocab_size"}


class NotExportableError(LlamaZooError):
    pass


def _token_ids(spec: ModelSpec) -> dict[str, Any]:
    tok = spec.tokenizer
    if tok is None:
        return {}
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    return {k: v for k, v in ids.items() if v is not None}


def _plain(model: Any) -> dict[str, Any]:
    return {k: v for k, v in model.model_dump(exclude_none=True).items() if k not in _NOT_IN_CONFIG}


def to_hf_config(spec: ModelSpec) -> dict[str, Any]:
    """The ``config.json`` of the model as transformers expects it."""
    arch = spec.architecture
    if arch is None:
        raise NotExportableError(f"{spec.id}: no published architecture to export")
    if isinstance(arch, LlamaArch) and arch.output_vocab_size:
        raise NotExportableError(
            f"{spec.id}: its output layer is pruned to {arch.output_vocab_size} ids, which "
            "LlamaForCausalLM cannot express; it is not a transformers checkpoint"
        )
    config: dict[str, Any] = {"architectures": [MODEL_CLASSES[arch.model_type]]}
    if isinstance(arch, LlamaArch):
        config |= _plain(arch) | _token_ids(spec)
    elif isinstance(arch, (MllamaArch, Llama4Arch)):
        config |= _plain(arch)
        config["text_config"] = config["text_config"] | _token_ids(spec)
    elif isinstance(arch, DebertaV2Arch):
        config |= _plain(arch)
        config["label2id"] = {label: i for i, label in arch.id2label.items()}
        config |= _token_ids(spec)
    return config


def config_from_dict(data: dict[str, Any]) -> "PretrainedConfig":
    from transformers import AutoConfig

    data = dict(data)
    return AutoConfig.for_model(data.pop("model_type"), **data)


def transformers_config(spec: ModelSpec) -> "PretrainedConfig":
    return config_from_dict(to_hf_config(spec))


# --------------------------------------------------------------------------- shadow configs

SHADOW_LAYERS = 2


def _round8(x: float) -> int:
    return max(8, int(round(x / 8)) * 8)


def _shadow_heads(heads: int, kv_heads: int) -> tuple[int, int]:
    """Fewest heads that keep the grouped-query ratio."""
    group = heads // kv_heads
    shadow_kv = 1 if group > 1 else 4
    return shadow_kv * group, shadow_kv


def _shadow_text(text: dict[str, Any], layers: int) -> dict[str, Any]:
    heads, kv = _shadow_heads(text["num_attention_heads"], text["num_key_value_heads"])
    head_dim = 16 if heads <= 8 else 8  # keeps the widest (405B: 16 query heads per KV head) small
    hidden = heads * head_dim
    ratio = text["intermediate_size"] / text["hidden_size"]
    shadow = dict(
        text,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        hidden_size=hidden,
        intermediate_size=_round8(hidden * ratio),
    )
    if "head_dim" in text:
        shadow["head_dim"] = head_dim
    return shadow


def shadow_hf_config(spec: ModelSpec) -> dict[str, Any]:
    """A tiny ``config.json`` of the same family: random weights build in well under a second.

    Kept: the vocabulary size (so the real tokenizer works), special token ids, the grouped-query
    ratio, tied or untied embeddings, RoPE settings, the cross-attention period, MoE expert count,
    interleave step and shared expert, chunked/NoPE attention, classifier labels.
    """
    config = to_hf_config(spec)
    arch = spec.architecture
    if isinstance(arch, LlamaArch):
        return _shadow_text(config, SHADOW_LAYERS)
    if isinstance(arch, MllamaArch):
        cross = arch.text_config.cross_attention_layers
        period = cross[1] - cross[0] if len(cross) > 1 else arch.text_config.num_hidden_layers
        layers = cross[0] + period + 1  # two cross-attention layers at the real offset and period
        text = _shadow_text(config["text_config"], layers)
        text["cross_attention_layers"] = [cross[0], cross[0] + period]
        vision = dict(
            config["vision_config"],
            hidden_size=32, attention_heads=2, intermediate_size=64,
            num_hidden_layers=2, num_global_layers=1, image_size=56,
            intermediate_layers_indices=[0, 1],
        )
        vision["vision_output_dim"] = 32 * (len(vision["intermediate_layers_indices"]) + 1)
        return dict(config, text_config=text, vision_config=vision)
    if isinstance(arch, Llama4Arch):
        t = arch.text_config
        step = t.interleave_moe_layer_step
        text = _shadow_text(config["text_config"], layers=max(4, 2 * step))  # both layer kinds appear
        text["intermediate_size_mlp"] = _round8(text["hidden_size"] * t.intermediate_size_mlp / t.hidden_size)
        if t.moe_layers != []:  # [] marks a dense model (Llama Guard 4); otherwise derive from the step
            text.pop("moe_layers", None)
        text.pop("no_rope_layers", None)
        text["no_rope_layer_interval"] = 2  # one NoPE layer in two, so a 4-layer model has both kinds
        if t.attention_chunk_size:
            text["attention_chunk_size"] = 16  # chunking must trigger on short test inputs
        # the encoder's MLP width is also the pixel-shuffled patch width (hidden / ratio^2) that the
        # projector's first layer takes, as in the real models (1408 x 4 = 5632)
        shuffled = round(32 / arch.vision_config.pixel_shuffle_ratio ** 2)
        vision = dict(
            config["vision_config"],
            hidden_size=32, num_attention_heads=2, intermediate_size=shuffled, num_hidden_layers=2,
            image_size=56, projector_input_dim=32, projector_output_dim=32, vision_output_dim=32,
        )
        return dict(config, text_config=text, vision_config=vision)
    if isinstance(arch, DebertaV2Arch):
        return dict(config, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                    num_hidden_layers=2, pooler_hidden_size=32)
    raise NotExportableError(f"{spec.id}: no shadow for model type {arch.model_type!r}")


def shadow_config(spec: ModelSpec) -> "PretrainedConfig":
    return config_from_dict(shadow_hf_config(spec))


# --------------------------------------------------------------------------- building models


def model_class(model_type: str) -> type["PreTrainedModel"]:
    import transformers

    return getattr(transformers, MODEL_CLASSES[model_type])


def meta_model(spec: ModelSpec) -> "PreTrainedModel":
    """The full-size transformers model on the meta device: shapes without memory."""
    import torch

    config = transformers_config(spec)
    with torch.device("meta"):
        return model_class(spec.model_type)._from_config(config)


def count_parameters(model: "PreTrainedModel") -> int:
    # parameters() yields a tied tensor once, as the published counts do.
    return sum(p.numel() for p in model.parameters())
