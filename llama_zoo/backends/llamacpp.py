"""The llama.cpp backend (extra ``llama-zoo[llamacpp]`` = llama-cpp-python): a GGUF file run as
quantised, in this process, on the CPU.

Scoring asks llama.cpp for the logits of the scored positions only (llama.cpp then computes the
output layer for those rows alone) and takes their log-softmax in float64; consecutive inputs that
begin alike (a question's choices, in ``shared_inputs``' order) keep their common prefix in the KV
cache, so a question's context is read once for all its choices. The KV cache is kept in F32
(llama.cpp's default is F16), so a difference from another engine on the same weights is the
weights' arithmetic, not the cache's rounding. The tokenizer is llama.cpp's
own, read from the GGUF file: it is the one that runs, so it is the one recorded.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from llama_zoo.registry.schema import ModelSpec
from llama_zoo.options import Option
from llama_zoo.backends.base import (
    TOKENS,
    BackendInfo,
    Generation,
    GenerateRequest,
    NextTokenRequest,
    BackendError,
    TokenWindow,
    cut_at_stop,
)
from llama_zoo.backends.shared_inputs import hosts
from llama_zoo.backends.tokenizers import tokenizer_hash
from llama_zoo.backends.weights import WeightsSource

GGML_TYPE_F32 = 0


def import_llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise BackendError("--backend llama.cpp needs llama-cpp-python: pip install 'llama-zoo[llamacpp]' "
                          "(it builds llama.cpp from source: cmake and a C++ compiler)") from None
    plain_cpu_weights(llama_cpp)
    return llama_cpp


def plain_cpu_weights(llama_cpp: Any) -> None:
    """Load weights without llama.cpp's "extra buffer types" (weights repacked for AMX or other
    CPU kernels). A llama.cpp built natively on a CPU with AMX (Sapphire Rapids) repacks Q4_1
    weights for AMX and crashes in the first decode (llama-cpp-python 0.3.36, ggml 0.25.3); the
    plain CPU path computes the same and is what every figure here was measured with.
    ``llama_cpp.Llama`` takes no such argument, so the defaults it starts from are changed, once."""
    low = llama_cpp.llama_cpp
    if getattr(low.llama_model_default_params, "_plain_cpu", False):
        return
    original = low.llama_model_default_params

    def defaults():
        params = original()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    defaults._plain_cpu = True  # type: ignore[attr-defined]
    low.llama_model_default_params = defaults


def _gguf_path(source: WeightsSource) -> str:
    if source.kind != "local" or not source.gguf_file:
        raise BackendError("--backend llama.cpp runs GGUF files: give --model path/to/model.gguf")
    return str(source.ref)


class GGUFTokenizer:
    """llama.cpp's tokenizer for a GGUF file, with the few transformers-tokenizer methods suites use."""

    def __init__(self, path: str):
        llama_cpp = import_llama_cpp()
        self.path = path
        self._llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        meta = self._llm.metadata
        self.bos_token_id = _int(meta.get("tokenizer.ggml.bos_token_id"))
        self.eos_token_id = _int(meta.get("tokenizer.ggml.eos_token_id"))
        self.pad_token_id = _int(meta.get("tokenizer.ggml.padding_token_id"))
        self._add_bos = meta.get("tokenizer.ggml.add_bos_token", "true") == "true"
        self.chat_template = meta.get("tokenizer.chat_template")

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens and self._add_bos, special=True)

    def __call__(self, text: str, add_special_tokens: bool = True):
        return _Encoding(self.encode(text, add_special_tokens))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        data = self._llm.detokenize(list(ids), special=not skip_special_tokens)
        return data.decode("utf-8", errors="replace")

    def apply_chat_template(self, messages, add_generation_prompt: bool = True, tokenize: bool = False, **_: Any):
        if not self.chat_template:
            raise BackendError(f"{self.path} has no chat template")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        text = env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=self.decode([self.bos_token_id]) if self.bos_token_id is not None else "",
            eos_token=self.decode([self.eos_token_id]) if self.eos_token_id is not None else "")
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def get_vocab(self) -> dict[str, int]:
        model = self._llm._model
        return {f"{i}:{model.token_get_text(i)}": i for i in range(self._llm.n_vocab())}

    def __len__(self) -> int:
        return self._llm.n_vocab()


class _Encoding:
    def __init__(self, ids: list[int]):
        self.input_ids = ids


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


class LlamaCppBackend:
    info = BackendInfo(
        name="llama.cpp", summary="llama.cpp (extra llamacpp): a GGUF file as quantised, on the CPU", inputs=TOKENS,
        answers=frozenset({TokenWindow, GenerateRequest, NextTokenRequest}), chunk_requests=64,
        # how fast, not what: the thread count is recorded in the run's provenance, outside its identity
        options=(Option("threads", None, "llama.cpp: CPU threads (default: every core).", type=int, minimum=1),))

    @classmethod
    def resolve(cls, device: str, dtype: str) -> tuple[str, str]:
        import_llama_cpp()
        if device not in ("auto", "cpu"):
            raise BackendError("--backend llama.cpp runs on the CPU here (llama-cpp-python as built by pip)")
        if dtype != "auto":
            raise BackendError("--backend llama.cpp computes in the GGUF file's own types: drop --dtype")
        return "cpu", "gguf"

    @classmethod
    def load_tokenizer(cls, spec: ModelSpec, source: WeightsSource, tokenizer: str | None = None) -> tuple[Any, str]:
        path = _gguf_path(source)
        if tokenizer:
            raise BackendError("--backend llama.cpp tokenizes with the GGUF file's own vocabulary: drop --tokenizer")
        return GGUFTokenizer(path), f"gguf:{path}"

    def __init__(self, spec: ModelSpec, source: WeightsSource, *, device: str = "auto", dtype: str = "auto",
                 batch_size: int | None = None, max_length: int | None = None, tokenizer: str | None = None,
                 loaded_tokenizer: tuple[Any, str] | None = None, options: dict[str, Any] | None = None):
        # resolve and load_tokenizer have refused a --device, --dtype or --tokenizer it cannot honour;
        # it evaluates one sequence at a time, so batch_size is unused
        threads = self.info.resolve_options(options or {})["threads"]
        llama_cpp = import_llama_cpp()
        self.spec, self.source, self.model_id = spec, source, spec.id
        limit = spec.max_context or 2048
        self.max_length = min(max_length or limit, limit)
        self.threads = threads or os.cpu_count() or 1
        self.tokenizer, self.tokenizer_source = loaded_tokenizer or self.load_tokenizer(spec, source)
        self.llm = llama_cpp.Llama(model_path=_gguf_path(source), n_ctx=self.max_length + 1, n_batch=512,
                                   n_threads=self.threads, type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, seed=0,
                                   verbose=False)
        self._llama_cpp = llama_cpp
        self._version = llama_cpp.__version__

    def loglikelihood_rolling(self, windows: Sequence[TokenWindow]) -> list[list[float]]:
        for w in windows:
            if w.length > self.max_length:
                raise BackendError(f"a window of {w.length} tokens exceeds the model's {self.max_length}")
        out: list[list[float]] = [[] for _ in windows]
        self.llm.reset()  # what generation left in the cache is not this input's
        self.llm._ctx.kv_cache_clear()
        cached: tuple[int, ...] = ()  # the tokens whose keys and values the cache holds, from position 0
        # windows whose input is a prefix of another's are read from its evaluation (shared_inputs.py)
        for host in hosts(windows):
            wanted: dict[int, set[int]] = {}  # position: the targets read there
            for read in host.reads:
                for j, target in enumerate(read.targets):
                    wanted.setdefault(read.first + j, set()).add(target)
            # the cache keeps what this input shares with the last, up to the first position read now
            keep = min(len(os.path.commonprefix([cached, host.ids])), min(wanted))
            self.llm._ctx.kv_cache_seq_rm(0, keep, -1)
            logprob = self._decode(host.ids, keep, wanted)
            cached = host.ids
            for read in host.reads:
                out[read.window] = [logprob[(read.first + j, t)] for j, t in enumerate(read.targets)]
        self.llm.reset()
        return out

    def _decode(self, ids: Sequence[int], start: int, wanted: dict[int, set[int]]) -> dict[tuple[int, int], float]:
        """``ids[start:]`` decoded after the cached ``ids[:start]``, in batches of ``n_batch``, with
        logits at the ``wanted`` positions only: {(position, target): log-probability}."""
        low, ctx, batch = self._llama_cpp, self.llm._ctx, self.llm._batch
        vocab = self.llm.n_vocab()
        out: dict[tuple[int, int], float] = {}
        for lo in range(start, len(ids), self.llm.n_batch):
            chunk = ids[lo:lo + self.llm.n_batch]
            b = batch.batch
            b.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i] = token, lo + i, 1
                b.seq_id[i][0] = 0
                b.logits[i] = lo + i in wanted
            ctx.decode(batch)
            for i in range(len(chunk)):
                if lo + i in wanted:
                    row = np.ctypeslib.as_array(low.llama_get_logits_ith(ctx.ctx, i), shape=(vocab,)).astype(np.float64)
                    top = row.max()
                    logz = top + np.log(np.exp(row - top).sum())
                    for target in wanted[lo + i]:
                        out[(lo + i, target)] = float(row[target] - logz)
        return out

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        out = []
        for req in requests:
            texts, counts, token_lists = [], [], []
            for k in range(req.n):
                tokens = self._one(req, None if req.seed is None else req.seed + k)
                texts.append(cut_at_stop(self.tokenizer.decode(tokens), req.stop_strings))
                counts.append(len(tokens))
                token_lists.append(tokens)
            out.append(Generation(texts=texts, new_tokens=counts, tokens=token_lists))
        return out

    def _one(self, req: GenerateRequest, seed: int | None) -> list[int]:
        if len(req.prompt) + req.max_new_tokens > self.max_length + 1:
            raise BackendError(f"a prompt of {len(req.prompt)} tokens plus {req.max_new_tokens} new ones exceeds the "
                              f"context of {self.max_length}: lower --max-new-tokens or raise --context")
        if seed is not None:
            self.llm.set_seed(seed)
        stops = () if req.ignore_eos else set(req.stop_token_ids)
        tokens: list[int] = []
        # plain greedy or nucleus sampling: llama.cpp's default top-k and min-p filters off
        for token in self.llm.generate(list(req.prompt), temp=req.temperature, top_p=req.top_p, top_k=0, min_p=0.0,
                                       repeat_penalty=1.0, reset=True):
            if token in stops:
                break
            tokens.append(token)
            if len(tokens) >= req.max_new_tokens:
                break
            if req.stop_strings and not req.ignore_eos:
                tail = self.tokenizer.decode(tokens[-16:])
                if any(s in tail for s in req.stop_strings):
                    break
        return tokens

    def next_token_scores(self, requests: Sequence[NextTokenRequest]) -> list[list[float]]:
        out = []
        for req in requests:
            logprobs = self.loglikelihood_rolling([TokenWindow(list(req.prompt), [c]) for c in req.candidates])
            out.append([lp[0] for lp in logprobs])
        return out

    def provenance(self) -> dict[str, Any]:
        return {"backend": self.info.name, "weights_source": self.source.kind, "weights_ref": self.source.ref,
                "weights_hash": self.source.content_hash, "quantization": self.source.quantization,
                "tokenizer_source": self.tokenizer_source, "dtype": "gguf", "kv_cache": "f32",
                "threads": self.threads, "llama_cpp_python": self._version, "device_name": "cpu",
                "tokenizer_hash": tokenizer_hash(self.tokenizer)}
