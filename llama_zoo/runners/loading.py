"""Where a model's weights and tokenizer come from: the hub, a local directory, random, or shadow.

The source is part of a run's identity and provenance: a shadow or random run is never shown as if
it measured the real model.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_zoo.registry.hf import MODEL_CLASSES, config_from_dict, model_class, shadow_hf_config, to_hf_config
from llama_zoo.registry.query import flatten
from llama_zoo.registry.schema import DebertaV2Arch, ModelSpec
from llama_zoo.runners.base import RunnerError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class WeightsSource:
    kind: str  # hub | local | random | shadow
    ref: str | None = None  # repo id or path
    revision: str | None = None
    content_hash: str | None = None  # local files; "seed=N" for random and shadow
    seed: int = 0
    config_differences: dict[str, Any] = field(default_factory=dict)


def choose_source(spec: ModelSpec, *, shadow: bool = False, random_weights: bool = False,
                  weights: str | None = None, revision: str | None = None, seed: int = 0) -> WeightsSource:
    if sum(bool(x) for x in (shadow, random_weights, weights)) > 1:
        raise RunnerError("choose one of --shadow, --random-weights and --weights")
    if shadow:
        return WeightsSource("shadow", content_hash=f"seed={seed}", seed=seed)
    if random_weights:
        return WeightsSource("random", content_hash=f"seed={seed}", seed=seed)
    if weights:
        path = Path(weights).expanduser()
        if not (path / "config.json").is_file():
            raise RunnerError(f"--weights {weights}: no config.json there (a transformers checkpoint directory is needed)")
        try:
            local = json.loads((path / "config.json").read_text())
        except json.JSONDecodeError:
            raise RunnerError(f"--weights {weights}: config.json is not JSON") from None
        return WeightsSource("local", ref=str(path.resolve()), content_hash=hash_files(path),
                             config_differences=config_differences(spec, local))
    if spec.hf_repo is None:
        raise RunnerError(f"{spec.id} has no published weights (status: {spec.status})")
    return WeightsSource("hub", ref=spec.hf_repo, revision=revision or "main")


def hash_files(path: Path, patterns: tuple[str, ...] = ("*.safetensors", "*.bin", "config.json")) -> str:
    """SHA-256 over a checkpoint's files (names and bytes), streamed."""
    digest = hashlib.sha256()
    for pattern in patterns:
        for file in sorted(path.glob(pattern)):
            digest.update(file.name.encode())
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


ARCHITECTURE_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                     "num_key_value_heads", "vocab_size", "head_dim", "tie_word_embeddings", "num_local_experts",
                     "interleave_moe_layer_step", "cross_attention_layers", "model_type")


def config_differences(spec: ModelSpec, local_config: dict[str, Any]) -> dict[str, Any]:
    """Architecture fields where a local checkpoint differs from the registry: {field: [registry, checkpoint]}."""
    ours, theirs = flatten(to_hf_config(spec)), flatten(local_config)
    diffs = {}
    for key, value in ours.items():
        if key.split(".")[-1] in ARCHITECTURE_KEYS and key in theirs and theirs[key] != value:
            diffs[key] = [value, theirs[key]]
    return diffs


def _hub_kwargs() -> dict[str, Any]:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    return {"token": token, "local_files_only": offline}


def load_model(spec: ModelSpec, source: WeightsSource, device: str, dtype: "Any") -> "PreTrainedModel":
    import torch

    if spec.architecture is None or spec.model_type not in MODEL_CLASSES:
        raise RunnerError(f"{spec.id} has no architecture that transformers can build")
    cls = model_class(spec.model_type)
    if source.kind == "shadow":
        torch.manual_seed(source.seed)
        model = cls(config_from_dict(shadow_hf_config(spec)))
        return _cast_floating(model.to(device), dtype).eval()
    if source.kind == "random":
        torch.manual_seed(source.seed)
        config = config_from_dict(to_hf_config(spec))
        with torch.device(device):
            model = cls._from_config(config, dtype=dtype)
        return model.eval()
    if source.kind == "local":
        if source.config_differences:
            shown = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in list(source.config_differences.items())[:6])
            warnings.warn(f"{source.ref} differs from the registry's {spec.id}: {shown}; loading it as it is",
                          stacklevel=2)
        return _from_pretrained(cls, source.ref, device, dtype, {})
    model = _from_pretrained(cls, source.ref, device, dtype, {"revision": source.revision, **_hub_kwargs()})
    source.revision = getattr(model.config, "_commit_hash", None) or source.revision
    return model


def _cast_floating(model, dtype):
    """Cast real floating tensors only: ``Module.to(dtype)`` would also cast Llama 4's complex
    rotary table for the image encoder to real numbers."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point() and tensor.dtype != dtype:
            tensor.data = tensor.data.to(dtype)
    return model


def _from_pretrained(cls, ref: str, device: str, dtype, kwargs: dict[str, Any]):
    device_map = "auto" if device == "cuda" else None
    try:
        model = cls.from_pretrained(ref, dtype=dtype, device_map=device_map, **kwargs)
    except OSError as exc:
        raise RunnerError(f"cannot load {ref}: {' '.join(str(exc).split())[:300]}") from None
    if device_map is None:
        model = model.to(device)
    return model.eval()


# --------------------------------------------------------------------------- tokenizers


def load_tokenizer(spec: ModelSpec, source: WeightsSource, tokenizer: str | None = None) -> tuple["PreTrainedTokenizerBase", str]:
    """The tokenizer and where it came from. Shadow and random runs use ``--tokenizer PATH``, else a
    cached copy of the hub tokenizer, else a byte-level stand-in (said so in provenance)."""
    from transformers import AutoTokenizer

    if tokenizer:
        if not Path(tokenizer).expanduser().exists():
            raise RunnerError(f"--tokenizer {tokenizer}: no such directory")
        return AutoTokenizer.from_pretrained(Path(tokenizer).expanduser()), f"local:{tokenizer}"
    if source.kind in ("local", "hub"):
        kwargs = {"revision": source.revision, **_hub_kwargs()} if source.kind == "hub" else {}
        try:
            return AutoTokenizer.from_pretrained(source.ref, **kwargs), f"{source.kind}:{source.ref}"
        except OSError as exc:
            raise RunnerError(f"cannot load the tokenizer of {source.ref}: {' '.join(str(exc).split())[:300]}") from None
    if spec.hf_repo:
        try:
            return AutoTokenizer.from_pretrained(spec.hf_repo, local_files_only=True), f"hub-cache:{spec.hf_repo}"
        except (OSError, ValueError):
            pass
    return byte_level_tokenizer(spec), "byte-level-stand-in"


def byte_level_tokenizer(spec: ModelSpec) -> "PreTrainedTokenizerBase":
    """A tokenizer for shadow runs where no real one is at hand: one token per byte, with the
    model's real BOS/EOS ids, so every code path (windows, special tokens, decoding) still runs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = spec.tokenizer
    text = spec.text_arch
    if tok is None or text is None:
        raise RunnerError(f"{spec.id} has no text tokenizer to stand in for")
    bos = tok.bos_token_id if tok.bos_token_id is not None else 1
    eos_ids = tok.eos_token_id if isinstance(tok.eos_token_id, list) else [tok.eos_token_id or 2]
    # the model's special ids keep their meaning: BOS, EOS and, for Code Llama, the FIM tokens
    named = {"<s>": bos, "</s>": eos_ids[0]}
    if tok.fim:
        named.update({"▁<PRE>": tok.fim.prefix, "▁<SUF>": tok.fim.suffix, "▁<MID>": tok.fim.middle, "▁<EOT>": tok.fim.eot})
    specials = {*named.values(), *eos_ids}
    byte_chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    ids = [i for i in range(3, text.vocab_size) if i not in specials][: len(byte_chars)]
    vocab = dict(zip(byte_chars, ids))
    vocab.update(named)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                   additional_special_tokens=[n for n in named if n not in ("<s>", "</s>")])
    return fast


def tokenizer_hash(tokenizer: "PreTrainedTokenizerBase") -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    payload = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def has_language_model_head(spec: ModelSpec) -> bool:
    return spec.architecture is not None and not isinstance(spec.architecture, DebertaV2Arch) \
        and not getattr(spec.architecture, "output_vocab_size", None)
