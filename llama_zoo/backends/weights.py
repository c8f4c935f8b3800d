"""Where a model's weights come from (the hub, a local directory, random, or shadow) and how they load.

The source is part of a run's identity and provenance: a shadow or random run is never shown as if
it measured the real model.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_zoo.registry.checkpoint import hash_file_list
from llama_zoo.registry.query import flatten
from llama_zoo.registry.to_transformers import MODEL_CLASSES, config_from_dict, model_class, shadow_hf_config, to_hf_config
from llama_zoo.registry.schema import DebertaV2Arch, ModelSpec
from llama_zoo.backends.base import BackendError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class WeightsSource:
    kind: str  # hub | local | random | shadow | external
    ref: str | None = None  # repo id or path (a directory, or a .gguf file)
    revision: str | None = None
    content_hash: str | None = None  # local files; "seed=N" for random and shadow
    seed: int = 0
    config_differences: dict[str, Any] = field(default_factory=dict)
    gguf_file: str | None = None  # a GGUF checkpoint: the file's name in its directory
    quantization: str | None = None  # a GGUF checkpoint's file type, as stored (transformers dequantises it)

    @property
    def directory(self) -> str | None:
        return str(Path(self.ref).parent) if self.gguf_file and self.ref else self.ref

    @property
    def quantisable(self) -> bool:
        """Only a checkpoint's from_pretrained quantises as it loads: a model built in memory would run
        unquantised under the scheme's name, and a GGUF file is quantised already."""
        return self.kind in ("hub", "local") and not self.gguf_file


def choose_source(spec: ModelSpec, *, shadow: bool = False, random_weights: bool = False,
                  weights: str | None = None, revision: str | None = None, seed: int = 0,
                  checkpoint: Any = None) -> WeightsSource:
    if sum(bool(x) for x in (shadow, random_weights, weights)) > 1:
        raise BackendError("choose one of --shadow, --random-weights and --weights")
    if checkpoint is not None:  # a model given by its path is evaluated as itself
        if shadow or random_weights or weights:
            raise BackendError(f"{checkpoint.path} is evaluated with its own weights: drop --shadow, --random-weights "
                              "and --weights")
        return WeightsSource("local", ref=checkpoint.path, content_hash=checkpoint.content_hash,
                             gguf_file=checkpoint.gguf_file, quantization=checkpoint.quantization)
    if shadow:
        return WeightsSource("shadow", content_hash=f"seed={seed}", seed=seed)
    if random_weights:
        return WeightsSource("random", content_hash=f"seed={seed}", seed=seed)
    if weights:
        path = Path(weights).expanduser()
        if not (path / "config.json").is_file():
            raise BackendError(f"--weights {weights}: no config.json there (a transformers checkpoint directory is needed)")
        try:
            local = json.loads((path / "config.json").read_text())
        except json.JSONDecodeError:
            raise BackendError(f"--weights {weights}: config.json is not JSON") from None
        return WeightsSource("local", ref=str(path.resolve()), content_hash=hash_files(path),
                             config_differences=config_differences(spec, local))
    if spec.hf_repo is None:
        raise BackendError(f"{spec.id} has no published weights (status: {spec.status})")
    return WeightsSource("hub", ref=spec.hf_repo, revision=revision or "main")


def hash_files(path: Path, patterns: tuple[str, ...] = ("*.safetensors", "*.bin", "config.json")) -> str:
    """SHA-256 over a checkpoint's files (names and bytes), pattern by pattern, streamed."""
    return hash_file_list([file for pattern in patterns for file in sorted(path.glob(pattern))])


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


def hub_kwargs() -> dict[str, Any]:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    return {"token": token, "local_files_only": offline}


def load_model(spec: ModelSpec, source: WeightsSource, device: str, dtype: "Any", *, quantize: str | None = None,
               device_map: str | None = None) -> "PreTrainedModel":
    """The model on ``device`` in ``dtype``; a checkpoint quantised as it loads (``quantize``) and
    spread over the GPUs (``device_map``; on CUDA a checkpoint is spread by default)."""
    import torch

    if spec.architecture is None or spec.model_type not in MODEL_CLASSES:
        raise BackendError(f"{spec.id} has no architecture that transformers can build")
    cls = model_class(spec.model_type)
    if quantize and not source.quantisable:  # the library refuses it as the CLI does
        what = "a GGUF file" if source.gguf_file else f"{source.kind} weights"
        raise BackendError(f"--quantize {quantize} quantises a checkpoint as it loads, not {what}")
    if source.kind == "shadow":
        torch.manual_seed(source.seed)
        model = cls(config_from_dict(shadow_hf_config(spec)))
        _open_cross_attention_gates(model)
        return _spread(_cast_floating(model.to(device), dtype).eval(), device, device_map)
    if source.kind == "random":
        torch.manual_seed(source.seed)
        config = config_from_dict(to_hf_config(spec))
        with torch.device("cpu" if device_map and device == "cuda" else device):  # built whole, then spread
            model = cls._from_config(config, dtype=dtype)
        return _spread(model.eval(), device, device_map)
    if source.kind == "local":
        if source.config_differences:
            shown = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in list(source.config_differences.items())[:6])
            warnings.warn(f"{source.ref} differs from the registry's {spec.id}: {shown}; loading it as it is",
                          stacklevel=2)
        if source.gguf_file:
            return _from_gguf(cls, source, device, dtype)
        return _from_pretrained(cls, source.ref, device, dtype, {}, quantize, device_map)
    model = _from_pretrained(cls, source.ref, device, dtype, {"revision": source.revision, **hub_kwargs()},
                             quantize, device_map)
    source.revision = getattr(model.config, "_commit_hash", None) or source.revision
    return model


def _open_cross_attention_gates(model) -> None:
    """Mllama's cross-attention gates start at zero (tanh(0) = 0: the image has no effect), as they
    did before training; a shadow opens them so that its answers depend on the image, as a trained
    model's do."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                p.fill_(1.0)


def _cast_floating(model, dtype):
    """Cast real floating tensors only: ``Module.to(dtype)`` would also cast Llama 4's complex
    rotary table for the image encoder to real numbers."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point() and tensor.dtype != dtype:
            tensor.data = tensor.data.to(dtype)
    return model


def _from_gguf(cls, source: WeightsSource, device: str, dtype):
    """transformers dequantises a GGUF file's tensors into ordinary ones; it still marks the model as
    quantized, which nothing downstream needs (and which makes save_pretrained refuse it)."""
    from transformers.utils import logging as hf_logging

    from llama_zoo.registry.gguf_files import read_once

    hf_logging.disable_progress_bar()  # its per-tensor bar would cut through the CLI's progress
    try:
        with read_once():
            model = cls.from_pretrained(source.directory, gguf_file=source.gguf_file, dtype=dtype, use_kernels=False)
    except ImportError as exc:
        raise BackendError(f"loading a GGUF file through transformers needs the gguf package: {exc}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise BackendError(f"cannot load {source.ref}: {' '.join(str(exc).split())[:300]}") from None
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model.to(device).eval()


def _spread(model, device: str, device_map: str | None):
    if device_map and device == "cuda":
        from llama_zoo.backends.placement import dispatch

        return dispatch(model, device_map)
    return model


def _from_pretrained(cls, ref: str, device: str, dtype, kwargs: dict[str, Any], quantize: str | None = None,
                     device_map: str | None = None):
    if device == "cuda":
        device_map = device_map or "auto"
    else:  # one device: quantised layers are placed as they load, the others moved after
        device_map = device if quantize else None
    if quantize:
        from llama_zoo.backends import quantize as quantization

        kwargs = {**kwargs, "quantization_config": quantization.config(quantize, device, dtype)}
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its per-tensor bar would cut through the CLI's progress
    try:
        # use_kernels=False: transformers 5.25 (not 5.24) otherwise swaps in layers fetched from the hub's
        # kernels-community on CUDA (and fails offline); a run measures the checkpoint with transformers' own code
        model = cls.from_pretrained(ref, dtype=dtype, device_map=device_map, use_kernels=False, **kwargs)
    except OSError as exc:
        raise BackendError(f"cannot load {ref}: {' '.join(str(exc).split())[:300]}") from None
    if device_map is None:
        model = model.to(device)
    return model.eval()


def has_language_model_head(spec: ModelSpec) -> bool:
    return spec.architecture is not None and not isinstance(spec.architecture, DebertaV2Arch) \
        and not getattr(spec.architecture, "output_vocab_size", None)
