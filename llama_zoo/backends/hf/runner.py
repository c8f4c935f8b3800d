"""The transformers backend: what a run resolves to, loading the model, provenance; the work itself
is in the modules beside this one, one per concern, mixed into ``HFBackend``."""

from __future__ import annotations

from typing import Any

from llama_zoo.options import Option
from llama_zoo.registry.schema import ModelSpec
from llama_zoo.backends.base import (
    TOKENS,
    BackendInfo,
    ClassifyRequest,
    GenerateRequest,
    GenerateWithImageRequest,
    NextTokenRequest,
    BackendError,
    TokenWindow,
)
from llama_zoo.backends.hf.common import pick_device, pick_dtype
from llama_zoo.backends.hf.generation import PREFILL_CHUNK, Generating
from llama_zoo.backends.hf.scoring import Scoring
from llama_zoo.backends.hf.speed import Timing
from llama_zoo.backends.hf.vision import Seeing
from llama_zoo.backends.placement import devices_used
from llama_zoo.backends.tokenizers import load_tokenizer, tokenizer_hash
from llama_zoo.backends.weights import WeightsSource, load_model


class HFBackend(Scoring, Generating, Seeing, Timing):
    """The transformers backend: the model and tokenizer loaded once, then scoring
    (``hf/scoring.py``), generation (``hf/generation.py``), image + text generation
    (``hf/vision.py``) and speed facts for ``bench`` (``hf/speed.py``) on them."""

    info = BackendInfo(
        name="hf", summary="transformers, in this process (CPU or CUDA)", inputs=TOKENS,
        answers=frozenset({TokenWindow, GenerateRequest, GenerateWithImageRequest, NextTokenRequest, ClassifyRequest}),
        placement=frozenset({"quantize", "device_map"}), quantize=("int8", "int4", "fp8"),
        # requests the loop hands over at once: enough to fill a GPU, few enough to store progress often
        chunk_requests=64, chunk_requests_on={"cuda": 1024},
        # how, not what: a prompt prefilled in pieces continues exactly as one prefilled whole
        options=(Option("prefill_chunk", PREFILL_CHUNK, "hf: prompt tokens per prefill step when generating; a "
                        "long prompt (a 128K-token needle haystack) is prefilled in pieces of this size, so it fits "
                        "where its KV cache fits (0: the whole prompt at once).", minimum=0),))

    @staticmethod
    def check_quantize(scheme: str) -> None:
        from llama_zoo.backends.quantize import check

        check(scheme)

    @classmethod
    def resolve(cls, device: str, dtype: str) -> tuple[str, str]:
        """The device and dtype a run will really use: part of its identity (bf16 on a GPU and fp32
        on a CPU give different numbers, so neither may be a cache hit for the other)."""
        device = pick_device(device)
        return device, str(pick_dtype(dtype, device)).removeprefix("torch.")

    @classmethod
    def load_tokenizer(cls, spec: ModelSpec, source: WeightsSource, tokenizer: str | None = None) -> tuple[Any, str]:
        return load_tokenizer(spec, source, tokenizer)

    def __init__(self, spec: ModelSpec, source: WeightsSource, *, device: str = "auto", dtype: str = "auto",
                 batch_size: int | None = None, max_length: int | None = None, tokenizer: str | None = None,
                 loaded_tokenizer: tuple[Any, str] | None = None, options: dict[str, Any] | None = None,
                 quantize: str | None = None, device_map: str | None = None):
        import torch

        # an option meant for another backend is refused here
        self.prefill_chunk = self.info.resolve_options(options or {})["prefill_chunk"]
        self.spec, self.source = spec, source
        self.model_id = spec.id
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.tokenizer, self.tokenizer_source = loaded_tokenizer or load_tokenizer(spec, source, tokenizer)
        self.quantize = quantize
        self.model = load_model(spec, source, self.device, self.dtype, quantize=quantize, device_map=device_map)
        # the compiled static-cache decode wants plain weights on one GPU: not quantised layers, not a spread model
        self._cuda_graphs = self.device == "cuda" and not quantize and len(devices_used(self.model)) == 1
        # a sequence classifier (Prompt Guard) has no decoder body and output projection to score text with
        self.body, self.head = _text_parts(self.model) if not _is_classifier(self.model) else (None, None)
        limit = spec.max_context or 2048
        self.max_length = min(max_length or limit, limit)
        self.batch_size = batch_size
        self._fitted_batch: dict[int, int] = {}  # window length -> largest batch that fit
        if self.device == "cuda":  # peak memory from here on: the weights and what runs, not loading's transients
            torch.cuda.reset_peak_memory_stats()

    def _pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

    def _empty_cache(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.empty_cache()

    def provenance(self) -> dict[str, Any]:
        return {
            "backend": self.info.name,
            "weights_source": self.source.kind,
            "weights_ref": self.source.ref,
            "weights_revision": self.source.revision,
            "weights_hash": self.source.content_hash,
            "tokenizer_hash": tokenizer_hash(self.tokenizer),
            "tokenizer_source": self.tokenizer_source,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device_name": self._device_name(),
            "devices": devices_used(self.model),
            "config_differences": self.source.config_differences,
            **({"quantize": self._quantize_versions()} if self.quantize else {}),
        }

    def _quantize_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        from llama_zoo.backends.quantize import LIBRARY

        library = LIBRARY[self.quantize]
        return {"scheme": self.quantize, "library": library, "version": version(library)}

    def _device_name(self) -> str:
        import torch

        return torch.cuda.get_device_name(0) if self.device == "cuda" else "cpu"



def _is_classifier(model) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


def _text_parts(model) -> tuple[Any, Any]:
    """The decoder body (returning final-norm hidden states) and the output projection."""
    name = type(model).__name__
    if name == "LlamaForCausalLM":
        return model.model, model.lm_head
    if name == "MllamaForConditionalGeneration":
        return model.model.language_model, model.lm_head
    if name == "Llama4ForConditionalGeneration":
        return model.language_model.model, model.language_model.lm_head
    raise BackendError(f"{name} has no language-model head to score text with")
