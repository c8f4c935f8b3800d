"""The vLLM backend (extra ``llama-zoo[vllm]``), written against vLLM's documented API.

vLLM cannot be installed on the machines this project is developed and tested on (it needs CUDA),
so this module is untested here; the import is lazy and its absence is a clear error.
"""

from __future__ import annotations

from typing import Any, Sequence

from llama_zoo.registry.schema import ModelSpec
from llama_zoo.backends.base import (
    BackendInfo,
    Generation,
    GenerateRequest,
    GenerateWithImageRequest,
    NextTokenRequest,
    TOKENS,
    BackendError,
    TokenWindow,
)
from llama_zoo.backends.tokenizers import load_tokenizer, tokenizer_hash
from llama_zoo.backends.weights import WeightsSource


def default_tensor_parallel(spec: ModelSpec, context: int, weights: str) -> int:
    """``derive.tensor_parallel_size`` on this machine's first GPU, no more than are visible."""
    import torch

    from llama_zoo.registry.derive import tensor_parallel_size

    have = torch.cuda.device_count()
    size = tensor_parallel_size(spec, context, torch.cuda.get_device_properties(0).total_memory, dtype=weights)
    if size is None or size > have:
        needs = f"{size} GPUs" if size else "more GPUs than a power of two dividing its attention heads allows"
        raise BackendError(f"{spec.id} needs {needs} for tensor parallelism here and {have} are visible; "
                          "give --tensor-parallel, or --quantize")
    return size


def import_vllm():
    try:
        import vllm
    except ImportError:
        raise BackendError("--backend vllm needs vLLM, which is not installed: pip install 'llama-zoo[vllm]' "
                          "(on a CUDA machine)") from None
    return vllm


class VLLMBackend:
    QUANTIZATION = {"fp8": "fp8", "int4": "bitsandbytes"}  # vLLM's in-flight schemes: dynamic FP8, bitsandbytes 4-bit
    info = BackendInfo(
        name="vllm", summary="vLLM on CUDA (extra vllm); written against its documented API, untested here",
        inputs=TOKENS, answers=frozenset({TokenWindow, GenerateRequest, GenerateWithImageRequest, NextTokenRequest}),
        placement=frozenset({"quantize", "tensor_parallel"}), quantize=tuple(QUANTIZATION),
        chunk_requests=4096)  # vLLM schedules continuously: the more it sees at once, the better

    @classmethod
    def check_quantize(cls, scheme: str) -> None:
        if scheme not in cls.QUANTIZATION:
            raise BackendError(f"--quantize {scheme}: vLLM quantises in flight to {' or '.join(cls.QUANTIZATION)} "
                              "only; use --backend hf for int8")

    @classmethod
    def resolve(cls, device: str, dtype: str) -> tuple[str, str]:
        import_vllm()
        return "cuda", dtype

    @classmethod
    def load_tokenizer(cls, spec: ModelSpec, source: WeightsSource, tokenizer: str | None = None) -> tuple[Any, str]:
        """The tokenizer vLLM itself will load (the checkpoint's, or ``--tokenizer``, handed to vLLM
        too), so the run records the tokenizer that ran."""
        if source.kind not in ("hub", "local"):
            raise BackendError("--backend vllm loads real checkpoints only (--weights PATH or the hub); "
                              "use --backend hf for --shadow and --random-weights")
        return load_tokenizer(spec, source, tokenizer)

    def __init__(self, spec: ModelSpec, source: WeightsSource, *, device: str = "auto", dtype: str = "auto",
                 batch_size: int | None = None, max_length: int | None = None, tokenizer: str | None = None,
                 loaded_tokenizer: tuple[Any, str] | None = None, options: dict[str, Any] | None = None,
                 tensor_parallel: int | None = None, quantize: str | None = None):
        # vLLM places, batches and tokenizes itself (the tokenizer it loads is the one hashed): device,
        # batch_size and loaded_tokenizer are the loop's common keywords, unused here
        self.info.resolve_options(options or {})
        vllm = import_vllm()
        self.spec, self.source, self.model_id = spec, source, spec.id
        self.max_length = min(max_length or spec.max_context or 4096, spec.max_context or 4096)
        self.tensor_parallel = tensor_parallel or default_tensor_parallel(spec, self.max_length, quantize or "bf16")
        extra = {"quantization": self.QUANTIZATION[quantize]} if quantize else {}
        if quantize == "int4":
            extra["load_format"] = "bitsandbytes"
        self.llm = vllm.LLM(model=source.ref, tokenizer=tokenizer or source.ref,
                            revision=source.revision if source.kind == "hub" else None,
                            dtype=dtype, max_model_len=self.max_length, tensor_parallel_size=self.tensor_parallel,
                            seed=0, **extra)
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm

    def loglikelihood_rolling(self, windows: Sequence[TokenWindow]) -> list[list[float]]:
        # prompt_logprobs=0 returns the log-probability of each prompt token given what precedes it
        params = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        prompts = [{"prompt_token_ids": list(w.context) + list(w.targets)} for w in windows]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for w, out in zip(windows, outputs):
            ids = list(w.context) + list(w.targets)
            per_position = out.prompt_logprobs  # None for the first token
            first = len(w.context)
            results.append([per_position[i][ids[i]].logprob for i in range(first, len(ids))])
        return results

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        prompts, params = [], []
        for req in requests:
            prompts.append({"prompt_token_ids": list(req.prompt)})
            params.append(self._vllm.SamplingParams(
                n=req.n, max_tokens=req.max_new_tokens, temperature=req.temperature, top_p=req.top_p,
                stop=list(req.stop_strings) or None, stop_token_ids=list(req.stop_token_ids) or None, seed=req.seed,
                ignore_eos=req.ignore_eos, min_tokens=req.max_new_tokens if req.ignore_eos else 0))
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [Generation(texts=[c.text for c in o.outputs], new_tokens=[len(c.token_ids) for c in o.outputs],
                           tokens=[list(c.token_ids) for c in o.outputs]) for o in outputs]

    def generate_with_image(self, requests: Sequence[GenerateWithImageRequest]) -> list[Generation]:
        prompts, params = [], []
        for req in requests:
            g = req.generation
            prompts.append({"prompt": req.prompt, "multi_modal_data": {"image": req.image}})
            params.append(self._vllm.SamplingParams(n=g.n, max_tokens=g.max_new_tokens, temperature=g.temperature,
                                                    top_p=g.top_p, stop=list(g.stop_strings) or None, seed=g.seed))
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [Generation(texts=[c.text for c in o.outputs], new_tokens=[len(c.token_ids) for c in o.outputs])
                for o in outputs]

    def next_token_scores(self, requests: Sequence[NextTokenRequest]) -> list[list[float]]:
        # vLLM returns the top-k log-probabilities of the generated position; candidates outside
        # the top 20 are reported as -inf.
        params = self._vllm.SamplingParams(max_tokens=1, logprobs=20, temperature=0.0)
        outputs = self.llm.generate([{"prompt_token_ids": list(r.prompt)} for r in requests], params, use_tqdm=False)
        scores = []
        for req, out in zip(requests, outputs):
            top = out.outputs[0].logprobs[0]
            scores.append([top[c].logprob if c in top else float("-inf") for c in req.candidates])
        return scores

    def provenance(self) -> dict[str, Any]:
        return {"backend": self.info.name, "weights_source": self.source.kind, "weights_ref": self.source.ref,
                "weights_revision": self.source.revision, "weights_hash": self.source.content_hash,
                "tokenizer_hash": tokenizer_hash(self.tokenizer), "dtype": "auto", "config_differences": {},
                "tensor_parallel": self.tensor_parallel}
