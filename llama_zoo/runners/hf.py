"""The transformers backend.

Log-probabilities come from the final hidden states, a chunk of positions at a time: the output
projection and log-softmax never see a whole batch at once, so 128K-vocabulary models never
materialise batch x length x vocab fp32 logits. Windows are sorted by length and batched; on CUDA
the largest batch that fits is found once per model and window length and remembered.
"""

from __future__ import annotations

from typing import Any, Sequence

from llama_zoo.registry.schema import ModelSpec
from llama_zoo.runners.base import (
    Generation,
    GenerateRequest,
    GenerateWithImageRequest,
    NextTokenRequest,
    RunnerError,
    TokenWindow,
)
from llama_zoo.runners.loading import WeightsSource, load_model, load_tokenizer, tokenizer_hash

# Rows of fp32 logits computed at once: about 512 MB whatever the vocabulary.
LOGIT_BYTES_PER_CHUNK = 512 * 2**20


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RunnerError("--device cuda: no CUDA device here")
    return device


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


class HFRunner:
    backend = "hf"

    def __init__(self, spec: ModelSpec, source: WeightsSource, *, device: str = "auto", dtype: str = "auto",
                 batch_size: int | None = None, max_length: int | None = None, tokenizer: str | None = None,
                 loaded_tokenizer: tuple[Any, str] | None = None):
        import torch

        self.spec, self.source = spec, source
        self.model_id = spec.id
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.tokenizer, self.tokenizer_source = loaded_tokenizer or load_tokenizer(spec, source, tokenizer)
        self.model = load_model(spec, source, self.device, self.dtype)
        self.body, self.head = _text_parts(self.model)
        limit = spec.max_context or 2048
        self.max_length = min(max_length or limit, limit)
        self.batch_size = batch_size
        self._fitted_batch: dict[int, int] = {}  # window length -> largest batch that fit
        torch.set_grad_enabled(False)

    # -- scoring

    def loglikelihood_rolling(self, windows: Sequence[TokenWindow]) -> list[list[float]]:
        for w in windows:
            if w.length > self.max_length:
                raise RunnerError(f"a window of {w.length} tokens exceeds the model's {self.max_length}")
        order = sorted(range(len(windows)), key=lambda i: -windows[i].length)
        results: list[list[float] | None] = [None] * len(windows)
        start = 0
        while start < len(order):
            length = windows[order[start]].length
            batch = self._batch_for(length)
            chunk = order[start:start + batch]
            try:
                scored = self._score_batch([windows[i] for i in chunk])
            except RuntimeError as exc:  # CUDA out of memory: halve, remember, retry
                if "out of memory" not in str(exc).lower() or batch == 1:
                    raise
                self._fitted_batch[length] = max(1, batch // 2)
                self._empty_cache()
                continue
            for i, values in zip(chunk, scored):
                results[i] = values
            start += len(chunk)
        return results  # type: ignore[return-value]

    def _batch_for(self, length: int) -> int:
        if self.batch_size:
            return self.batch_size
        if self.device != "cuda":
            return 8
        if length not in self._fitted_batch:
            # start from a guess that fills about half the free memory with activations; OOM halves it
            import torch

            free, _ = torch.cuda.mem_get_info()
            per_row = length * self.body.config.hidden_size * 2 * 40  # activations, generously
            self._fitted_batch[length] = max(1, min(256, int(free * 0.5 // per_row)))
        return self._fitted_batch[length]

    def _score_batch(self, windows: list[TokenWindow]) -> list[list[float]]:
        import torch

        inputs = [list(w.context) + list(w.targets[:-1]) for w in windows]
        width = max(len(x) for x in inputs)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(inputs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for row, seq in enumerate(inputs):  # right padding: positions of real tokens stay 0..n-1
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        hidden = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
        # gather the positions that predict targets, then project them a chunk at a time
        rows, cols, targets, owners = [], [], [], []
        for row, w in enumerate(windows):
            first = len(w.context) - 1
            n = len(w.targets)
            rows += [row] * n
            cols += range(first, first + n)
            targets += list(w.targets)
            owners.append(n)
        picked = hidden[torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device)]
        target_ids = torch.tensor(targets, device=self.device)
        vocab = self.head.weight.shape[0]
        step = max(1, LOGIT_BYTES_PER_CHUNK // (vocab * 4))
        logprobs = []
        for i in range(0, picked.shape[0], step):
            logits = self.head(picked[i:i + step]).float()
            logprobs.append(torch.log_softmax(logits, dim=-1).gather(1, target_ids[i:i + step, None])[:, 0])
        flat = torch.cat(logprobs).tolist()
        out, pos = [], 0
        for n in owners:
            out.append(flat[pos:pos + n])
            pos += n
        return out

    def next_token_scores(self, requests: Sequence[NextTokenRequest]) -> list[list[float]]:
        import torch

        out = []
        for req in requests:
            ids = torch.tensor([list(req.prompt)], device=self.device)
            hidden = self.body(input_ids=ids).last_hidden_state[:, -1]
            logprobs = torch.log_softmax(self.head(hidden).float(), dim=-1)[0]
            out.append([logprobs[c].item() for c in req.candidates])
        return out

    # -- generation

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        import torch

        out = []
        for req in requests:
            if req.seed is not None:
                torch.manual_seed(req.seed)
            ids = torch.tensor([list(req.prompt)], device=self.device)
            eos = list(req.stop_token_ids) or None
            kwargs: dict[str, Any] = dict(max_new_tokens=req.max_new_tokens, num_return_sequences=req.n,
                                          eos_token_id=eos, pad_token_id=self._pad_id())
            if req.temperature > 0:
                kwargs.update(do_sample=True, temperature=req.temperature, top_p=req.top_p)
            else:
                kwargs.update(do_sample=False)
            if req.stop_strings:
                kwargs.update(stop_strings=list(req.stop_strings), tokenizer=self.tokenizer)
            if self.device == "cuda":
                kwargs.update(cache_implementation="static")
            generated = self.model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
            texts, counts, token_lists = [], [], []
            for seq in generated[:, ids.shape[1]:]:
                tokens = seq.tolist()
                if eos:
                    for k, t in enumerate(tokens):
                        if t in eos:
                            tokens = tokens[:k]
                            break
                text = self.tokenizer.decode(tokens, skip_special_tokens=False)
                texts.append(_cut_at_stop(text, req.stop_strings))
                counts.append(len(tokens))
                token_lists.append(tokens)
            out.append(Generation(texts=texts, new_tokens=counts, tokens=token_lists))
        return out

    def generate_with_image(self, requests: Sequence[GenerateWithImageRequest]) -> list[Generation]:
        """Image + text through the checkpoint's own processor (which places image tokens and tiles)."""
        import torch

        if self.spec.capabilities.vision is None:
            raise RunnerError(f"{self.spec.id} has no vision encoder")
        processor = self._processor()
        out = []
        for req in requests:
            g = req.generation
            if g.seed is not None:
                torch.manual_seed(g.seed)
            inputs = processor(images=req.image, text=req.prompt, return_tensors="pt").to(self.device)
            kwargs: dict[str, Any] = dict(max_new_tokens=g.max_new_tokens, num_return_sequences=g.n,
                                          pad_token_id=self._pad_id(), eos_token_id=list(g.stop_token_ids) or None)
            kwargs.update(dict(do_sample=True, temperature=g.temperature, top_p=g.top_p) if g.temperature > 0
                          else dict(do_sample=False))
            generated = self.model.generate(**inputs, **kwargs)[:, inputs["input_ids"].shape[1]:]
            texts = [_cut_at_stop(self.tokenizer.decode(seq, skip_special_tokens=True), g.stop_strings)
                     for seq in generated]
            out.append(Generation(texts=texts, new_tokens=[len(seq) for seq in generated]))
        return out

    def _processor(self):
        if getattr(self, "_image_processor", None) is None:
            if self.source.kind not in ("hub", "local"):
                raise RunnerError("image + text generation needs the checkpoint's processor: use --weights PATH "
                                  "or the hub checkpoint, not shadow or random weights")
            from transformers import AutoProcessor

            try:
                self._image_processor = AutoProcessor.from_pretrained(self.source.ref)
            except (OSError, ValueError) as exc:
                raise RunnerError(f"cannot load the processor of {self.source.ref}: {exc}") from None
        return self._image_processor

    def _pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

    def _empty_cache(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.empty_cache()

    def provenance(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "weights_source": self.source.kind,
            "weights_ref": self.source.ref,
            "weights_revision": self.source.revision,
            "weights_hash": self.source.content_hash,
            "tokenizer_hash": tokenizer_hash(self.tokenizer),
            "tokenizer_source": self.tokenizer_source,
            "dtype": str(self.dtype).removeprefix("torch."),
            "config_differences": self.source.config_differences,
        }


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text


def _text_parts(model) -> tuple[Any, Any]:
    """The decoder body (returning final-norm hidden states) and the output projection."""
    name = type(model).__name__
    if name == "LlamaForCausalLM":
        return model.model, model.lm_head
    if name == "MllamaForConditionalGeneration":
        return model.model.language_model, model.lm_head
    if name == "Llama4ForConditionalGeneration":
        return model.language_model.model, model.language_model.lm_head
    raise RunnerError(f"{name} has no language-model head to score text with")

