"""The transformers backend.

Log-probabilities come from the final hidden states, a chunk of positions at a time: the output
projection and log-softmax never see a whole batch at once, so 128K-vocabulary models never
materialise batch x length x vocab fp32 logits. Windows are sorted by length and batched; on CUDA
the largest batch that fits is found once per model and window length and remembered.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, TypeVar

from llama_zoo.registry.schema import ModelSpec
from llama_zoo.runners.base import (
    BackendInfo,
    Generation,
    GenerateRequest,
    GenerateWithImageRequest,
    ClassifyRequest,
    NextTokenRequest,
    TOKENS,
    RunnerError,
    TokenWindow,
    cut_at_stop,
)
from llama_zoo.runners.placement import devices_used
from llama_zoo.runners.tokenizers import load_tokenizer, tokenizer_hash
from llama_zoo.runners.weights import WeightsSource, load_model

# Rows of fp32 logits computed at once: about 512 MB whatever the vocabulary.
LOGIT_BYTES_PER_CHUNK = 512 * 2**20


_Method = TypeVar("_Method", bound=Callable[..., Any])


def without_autograd(method: _Method) -> _Method:
    """Run ``method`` with autograd off: only around the runner's own work, so that the process (a
    test, a notebook, a training script that evaluates) keeps autograd as it had it."""
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return method(*args, **kwargs)

    return run  # type: ignore[return-value]


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
    info = BackendInfo(
        name="hf", summary="transformers, in this process (CPU or CUDA)", inputs=TOKENS,
        answers=frozenset({TokenWindow, GenerateRequest, GenerateWithImageRequest, NextTokenRequest, ClassifyRequest}),
        placement=frozenset({"quantize", "device_map"}), quantize=("int8", "int4", "fp8"),
        # requests the loop hands over at once: enough to fill a GPU, few enough to store progress often
        chunk_requests=64, chunk_requests_on={"cuda": 1024})

    @staticmethod
    def check_quantize(scheme: str) -> None:
        from llama_zoo.runners.quantize import check

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

        self.info.resolve_options(options or {})  # it takes none: one meant for another backend is refused
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

    # -- scoring

    @without_autograd
    def loglikelihood_rolling(self, windows: Sequence[TokenWindow]) -> list[list[float]]:
        for w in windows:
            if w.length > self.max_length:
                raise RunnerError(f"a window of {w.length} tokens exceeds the model's {self.max_length}")
        return self._by_length(windows, lambda w: w.length, self._score_batch)

    def _batch_for(self, length: int) -> int:
        if self.batch_size:  # an explicit size, unless it ran out of memory (then halved, like a found one)
            return min(self.batch_size, self._fitted_batch.get(length, self.batch_size))
        if self.device != "cuda":
            return 8
        if length not in self._fitted_batch:
            # start from a guess that fills about half the free memory with activations; OOM halves it
            import torch

            free, _ = torch.cuda.mem_get_info()
            per_row = length * (self.body or self.model).config.hidden_size * 2 * 40  # activations, generously
            self._fitted_batch[length] = max(1, min(256, int(free * 0.5 // per_row)))
        return self._fitted_batch[length]

    def _score_batch(self, windows: list[TokenWindow]) -> list[list[float]]:
        import torch

        # right padding: positions of real tokens stay 0..n-1
        ids, mask = self._right_padded([list(w.context) + list(w.targets[:-1]) for w in windows])
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

    @without_autograd
    def next_token_scores(self, requests: Sequence[NextTokenRequest]) -> list[list[float]]:
        """One forward pass per prompt (batched, right-padded): the log-probabilities of the candidate
        next tokens after its last token."""
        import torch

        def run(batch: list[NextTokenRequest]) -> list[list[float]]:
            ids, mask = self._right_padded([r.prompt for r in batch])
            hidden = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
            last = hidden[torch.arange(len(batch), device=self.device), mask.sum(dim=1) - 1]
            logprobs = torch.log_softmax(self.head(last).float(), dim=-1)
            return [[logprobs[row, c].item() for c in req.candidates] for row, req in enumerate(batch)]

        return self._by_length(requests, lambda r: len(r.prompt), run)

    @without_autograd
    def classify(self, requests: Sequence[ClassifyRequest]) -> list[list[float]]:
        """Class log-probabilities of a sequence classifier, batched and right-padded."""
        import torch

        if self.body is not None:
            raise RunnerError(f"{self.model_id} is a language model, not a sequence classifier")

        def run(batch: list[ClassifyRequest]) -> list[list[float]]:
            ids, mask = self._right_padded([r.tokens for r in batch])
            logits = self.model(input_ids=ids, attention_mask=mask).logits
            return torch.log_softmax(logits.double(), dim=-1).tolist()

        return self._by_length(requests, lambda r: len(r.tokens), run)

    def _right_padded(self, sequences: Sequence[Sequence[int]]):
        import torch

        width = max(len(x) for x in sequences)
        ids = torch.full((len(sequences), width), self._pad_id(), dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, :len(seq)] = torch.tensor(list(seq))
            mask[row, :len(seq)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _by_length(self, requests: Sequence[Any], length, run) -> list[Any]:
        """``run`` over batches of requests of similar length (longest first), answers in request
        order; on CUDA a batch that runs out of memory is halved, and the size remembered per length."""
        order = sorted(range(len(requests)), key=lambda i: -length(requests[i]))
        out: list[Any] = [None] * len(requests)
        start = 0
        while start < len(order):
            size = self._batch_for(length(requests[order[start]]))
            chunk = order[start:start + size]
            try:
                answers = run([requests[i] for i in chunk])
            except RuntimeError as exc:
                if "out of memory" not in str(exc).lower() or size == 1:
                    raise
                self._fitted_batch[length(requests[order[start]])] = max(1, size // 2)
                self._empty_cache()
                continue
            for i, answer in zip(chunk, answers):
                out[i] = answer
            start += len(chunk)
        return out

    # -- generation
    #
    # Each request's n samples become rows. Rows are sorted longest prompt first and cut into
    # batches; a batch is left-padded, and real tokens get positions 0..len-1 whatever the padding,
    # so a row continues exactly as it would alone. After one prefill, a decode loop adds a token per
    # live row per step. On CPU (and any non-CUDA device) the KV cache is a DynamicCache and finished
    # rows leave it: a row is done at a stop token id, a stop string or its own max_new_tokens, and
    # then its keys/values are dropped (Cache.batch_select_indices), as are the padding columns no live
    # row needs any more, so later steps compute only live rows. (Llama 4's chunked attention places
    # its chunks after each row's left padding, which transformers reads from the mask; padding
    # columns are dropped only from caches of plain full-attention layers.) On CUDA the cache is
    # static and the decode step is compiled with CUDA graphs (_generate_static).

    @without_autograd
    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        """Continue each prompt ``n`` times, all requests batched together.

        Per completion: ``tokens`` are the generated ids up to (without) the first stop token id,
        ``texts`` their decoding cut at the first stop string, ``new_tokens`` the number of tokens.
        With ``ignore_eos`` a request generates exactly ``max_new_tokens`` and nothing is cut.

        Greedy rows (temperature 0) give what one-request-at-a-time generation gives. A sampled row
        with a seed draws from its own generator (seed + its number among the request's ``n``), so it
        reproduces whatever the batching; rows without a seed draw from the global RNG.
        """
        rows: list[_Row] = []
        for index, req in enumerate(requests):
            if not req.prompt:
                raise RunnerError("a generation request needs at least one prompt token")
            rows += [_Row(index, req, k) for k in range(req.n)]
        order = sorted((r for r in rows if r.max_new > 0), key=lambda r: -len(r.prompt))
        longest_new = max((r.max_new for r in order), default=0)
        start = 0
        while start < len(order):
            key, batch = self._generation_batch_for(len(order[start].prompt) + longest_new)
            chunk = order[start:start + batch]
            try:
                if self._cuda_graphs:
                    self._generate_static(chunk, batch)
                else:
                    self._generate_dynamic(chunk)
            except RuntimeError as exc:  # CUDA out of memory: halve, remember, retry
                if "out of memory" not in str(exc).lower() or len(chunk) == 1:
                    raise
                self._generation_fitted()[key] = max(1, len(chunk) // 2)
                for r in chunk:
                    r.tokens = []
                self._empty_cache()
                continue
            start += len(chunk)
        out = []
        for index, req in enumerate(requests):
            mine = [r for r in rows if r.request == index]
            cut = not getattr(req, "ignore_eos", False)
            texts = [self.tokenizer.decode(r.tokens, skip_special_tokens=False) for r in mine]
            out.append(Generation(texts=[cut_at_stop(t, req.stop_strings) if cut else t for t in texts],
                                  new_tokens=[len(r.tokens) for r in mine], tokens=[list(r.tokens) for r in mine]))
        return out

    def _generate_dynamic(self, rows: list["_Row"]) -> None:
        """One batch through a DynamicCache; finished rows leave the batch and the cache."""
        import torch
        from transformers import DynamicCache

        ids, mask, positions = self._left_pad(rows, 0)
        cache = DynamicCache(config=self.body.config)
        logits = self._last_logits(ids, mask, positions, cache)
        if cache.get_seq_length() == 0:  # an older transformers that ignored the `cache` keyword
            raise RunnerError("this transformers did not fill the KV cache: llama-zoo needs transformers >= 5.24")
        next_position = positions[:, -1:] + 1
        sampler = _Sampler(rows, self.device)
        live = list(rows)
        while True:
            picked = sampler.pick(logits)
            finished = self._advance(live, picked.tolist())
            keep = [j for j, done in enumerate(finished) if not done]
            if not keep:
                return
            if len(keep) < len(live):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, next_position, picked = mask[index], next_position[index], picked[index]
                sampler.select(index)
                live = [live[j] for j in keep]
                mask = _drop_padding_columns(mask, cache)
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            logits = self._last_logits(picked[:, None], mask, next_position, cache)
            next_position = next_position + 1

    def _generate_static(self, rows: list["_Row"], batch: int) -> None:
        """CUDA: a static KV cache and a decode step compiled once per runner with CUDA graphs
        (torch.compile mode="reduce-overhead"); the prefill runs eagerly.

        Graphs need fixed shapes, so the batch is padded to a power of two (at most ``batch``) with
        copies of the last row, the cache length is rounded up to a multiple of 256, the cache of the
        last shape is kept and reset between batches, and finished rows stay in the batch (their
        tokens are ignored) until every row is done. Not yet run on a GPU: the tests run this code on
        the CPU with the step uncompiled and hold it equal to _generate_dynamic; CUDA graphs are untested.
        """
        import torch
        from transformers import StaticCache

        width = max(len(r.prompt) for r in rows)
        steps = max(r.max_new for r in rows)
        size = max(len(rows), min(batch, 1 << (len(rows) - 1).bit_length()))
        length = -(-(width + steps) // 256) * 256
        if getattr(self, "_static_cache_key", None) != (size, length):
            self._static_cache = self._static_cache_key = None
            self._empty_cache()
            self._static_cache = StaticCache(config=self.body.config, max_cache_len=length)
            self._static_cache_key = (size, length)
        cache = self._static_cache
        cache.reset()
        padded = rows + [rows[-1]] * (size - len(rows))
        ids, prompt_mask, positions = self._left_pad(padded, width)
        mask = torch.ones((size, length), dtype=torch.long, device=self.device)  # later slots: causality hides them
        mask[:, :width] = prompt_mask
        logits = self._last_logits(ids, mask, positions, cache)
        step = self._compiled_decode_step()
        next_position = positions[:, -1:] + 1
        sampler = _Sampler(padded, self.device)
        done = [False] * len(rows)
        for _ in range(steps):
            picked = sampler.pick(logits)
            tokens = picked.tolist()
            live = [j for j in range(len(rows)) if not done[j]]
            finished = self._advance([rows[j] for j in live], [tokens[j] for j in live])
            for j, f in zip(live, finished):
                done[j] = f
            if all(done):
                return
            logits = step(picked[:, None].clone(), mask, next_position, cache).clone()
            next_position = next_position + 1

    def _compiled_decode_step(self):
        """The one-token decode step, compiled once per runner (CUDA only; see _generate_static)."""
        import torch

        if getattr(self, "_decode_step", None) is None:
            body, head = self.body, self.head

            def step(ids, mask, positions, cache):
                hidden = body(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                              use_cache=True).last_hidden_state[:, -1]
                return head(hidden).float()

            self._decode_step = torch.compile(step, mode="reduce-overhead")
        return self._decode_step

    def _advance(self, live: list["_Row"], picked: list[int]) -> list[bool]:
        """Give each live row its next token; whether each is now finished (stop id, length, stop string)."""
        finished = [row.push(token) for row, token in zip(live, picked)]
        # stop strings: decode only each row's last few tokens, the most a new match can span
        checking = [j for j, row in enumerate(live) if row.stops and not finished[j]]
        if checking:
            tails = self.tokenizer.batch_decode([live[j].tokens[-live[j].window:] for j in checking],
                                                skip_special_tokens=False)
            for j, tail in zip(checking, tails):
                finished[j] = any(s in tail for s in live[j].stops)
        return finished

    def _left_pad(self, rows: list["_Row"], width: int):
        """Left-padded ids, the attention mask, and positions 0..len-1 for each row's real tokens."""
        import torch

        width = max(width, max(len(r.prompt) for r in rows))
        pad = self._pad_id()
        ids = torch.tensor([[pad] * (width - len(r.prompt)) + r.prompt for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in rows], device=self.device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return ids, mask, positions

    def _last_logits(self, ids, mask, positions, cache):
        """fp32 logits of the last position only: the body, then the head on one position per row."""
        hidden = self.body(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                           use_cache=True).last_hidden_state[:, -1]
        return self.head(hidden).float()

    def _generation_fitted(self) -> dict[int, int]:
        if getattr(self, "_fitted_generation_batch", None) is None:
            self._fitted_generation_batch: dict[int, int] = {}  # length bucket -> largest batch that fit
        return self._fitted_generation_batch

    def _generation_batch_for(self, length: int) -> tuple[int, int]:
        """(bucket, rows per batch) for rows needing up to ``length`` positions (prompt + new tokens)."""
        bucket = 1 << max(0, length - 1).bit_length()
        fitted = self._generation_fitted()
        if self.batch_size:  # an explicit size, unless it ran out of memory
            return bucket, min(self.batch_size, fitted.get(bucket, self.batch_size))
        if self.device != "cuda":
            return bucket, _CPU_GENERATION_BATCH
        if bucket not in fitted:
            # a guess that fills about half the free memory with the KV cache, prefill activations and
            # logits; an out-of-memory error halves it
            import torch

            free, _ = torch.cuda.mem_get_info()
            c = self.body.config
            element = torch.finfo(self.dtype).bits // 8
            head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
            kv = 2 * c.num_hidden_layers * getattr(c, "num_key_value_heads", c.num_attention_heads) * head_dim
            per_row = bucket * (kv + c.hidden_size * 20) * element + c.vocab_size * 4 * 4
            fitted[bucket] = max(1, min(256, int(free * 0.5 // per_row)))
        return bucket, fitted[bucket]

    @without_autograd
    def generate_with_image(self, requests: Sequence[GenerateWithImageRequest]) -> list[Generation]:
        """Image + text: the checkpoint's own processor places the image tokens and tiles (shadow
        and random weights: one built from the registry, see ``image_inputs``). Greedy requests
        with the same settings are batched (left-padded); a sampled request runs alone, so its seed
        alone decides its draws."""
        if self.spec.capabilities.vision is None:
            raise RunnerError(f"{self.spec.id} has no vision encoder")
        out: list[Generation | None] = [None] * len(requests)
        groups: dict[Any, list[int]] = {}
        for i, req in enumerate(requests):
            g = req.generation
            key = (g.max_new_tokens, g.n, g.stop_token_ids) if g.temperature == 0 else ("alone", i)
            groups.setdefault(key, []).append(i)
        for indices in groups.values():
            step = self.batch_size or _IMAGE_BATCH
            for start in range(0, len(indices), step):
                chunk = indices[start:start + step]
                for i, generation in zip(chunk, self._generate_images([requests[i] for i in chunk])):
                    out[i] = generation
        return out

    def _generate_images(self, requests: list[GenerateWithImageRequest]) -> list[Generation]:
        import torch

        processor = self._processor()
        g = requests[0].generation
        if g.seed is not None:
            torch.manual_seed(g.seed)
        # Mllama's processor takes one list of images per prompt, Llama 4's a flat list
        images = [[r.image] for r in requests] if self.spec.model_type == "mllama" else [r.image for r in requests]
        inputs = processor(images=images, text=[r.prompt for r in requests], padding=True, return_tensors="pt")
        inputs = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                  for k, v in inputs.items() if hasattr(v, "to")}
        kwargs: dict[str, Any] = dict(max_new_tokens=g.max_new_tokens, num_return_sequences=g.n,
                                      pad_token_id=self._pad_id(), eos_token_id=list(g.stop_token_ids) or None)
        kwargs.update(dict(do_sample=True, temperature=g.temperature, top_p=g.top_p) if g.temperature > 0
                      else dict(do_sample=False))
        if self.spec.model_type == "llama4":
            generated = self._generate_fused(inputs, kwargs)
        else:
            generated = self.model.generate(**inputs, **kwargs)[:, inputs["input_ids"].shape[1]:]
        out = []
        for r, start in zip(requests, range(0, len(generated), g.n)):
            rows = [_without_padding(seq.tolist(), self._pad_id(), g.stop_token_ids) for seq in generated[start:start + g.n]]
            texts = [cut_at_stop(self.tokenizer.decode(seq, skip_special_tokens=True), r.generation.stop_strings)
                     for seq in rows]
            out.append(Generation(texts=texts, new_tokens=[len(seq) for seq in rows], tokens=rows))
        return out

    def _generate_fused(self, inputs: dict[str, Any], kwargs: dict[str, Any]):
        """Llama 4's early fusion done here: the projected image features replace the ``<|patch|>``
        embeddings, and the text model generates from the embeddings. (transformers 5.24's
        Llama4ForConditionalGeneration.forward reads ``image_outputs`` from an output that has
        none, so generating through it fails.) Returns the new tokens only."""
        model = self.model
        ids = inputs["input_ids"]
        embeddings = model.get_input_embeddings()(ids)
        features = model.get_image_features(pixel_values=inputs["pixel_values"], return_dict=True).last_hidden_state
        projected = model.multi_modal_projector(features.reshape(-1, features.shape[-1])).to(embeddings.dtype)
        slots = (ids == model.config.image_token_id).unsqueeze(-1).expand_as(embeddings)
        if slots.sum() != projected.numel():
            raise RunnerError(f"{int(slots.sum()) // embeddings.shape[-1]} image token(s) in the prompt for "
                              f"{projected.shape[0]} image features: the prompt and the image tiles disagree")
        embeddings = embeddings.masked_scatter(slots, projected)
        return model.language_model.generate(inputs_embeds=embeddings, attention_mask=inputs["attention_mask"], **kwargs)

    def _processor(self):
        if getattr(self, "_image_processor", None) is None:
            if self.source.kind in ("hub", "local"):
                from transformers import AutoProcessor

                try:
                    processor = AutoProcessor.from_pretrained(self.source.directory)
                except (OSError, ValueError, ImportError) as exc:
                    raise RunnerError(f"cannot load the processor of {self.source.ref}: {exc}") from None
            else:  # shadow and random weights: from the model's own vision config and the run's tokenizer
                from llama_zoo.runners.image_inputs import config_processor

                processor = config_processor(self.model.config, self.tokenizer)
            processor.tokenizer.padding_side = "left"  # generation continues every row from its end
            if processor.tokenizer.pad_token is None:  # the id generate pads finished rows with
                processor.tokenizer.pad_token_id = self._pad_id()
            self._image_processor = processor
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

        from llama_zoo.runners.quantize import LIBRARY

        library = LIBRARY[self.quantize]
        return {"scheme": self.quantize, "library": library, "version": version(library)}

    def _device_name(self) -> str:
        import torch

        return torch.cuda.get_device_name(0) if self.device == "cuda" else "cpu"

    # -- speed facts, for the bench suite

    @without_autograd
    def speed_facts(self, context: int) -> dict[str, Any]:
        """Forward FLOPs per scored token at mid-context, the device's measured dense matmul peak in
        this dtype (the ceiling model-FLOP utilisation is quoted against) and peak GPU memory."""
        import torch

        from llama_zoo.registry import derive

        flops = (derive.flops_per_token(self.spec, context // 2) if self.source.kind == "random"
                 else _loaded_flops(self.model, context))
        return {"model_flops_per_token": flops, "matmul_peak_flops": _matmul_peak_flops(self.device, self.dtype),
                "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if self.device == "cuda" else None}


def _matmul_peak_flops(device: str, dtype, size: int = 4096, repeats: int = 10) -> float:
    import time

    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _loaded_flops(model, context: int) -> float:
    """FLOPs per token of a loaded model that has no registry entry of its size (a shadow): its
    matmul weights (the output projection counted even when tied) and attention at mid-context."""
    params = sum(p.numel() for p in model.parameters())
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    matmul = params - embed.numel() + (head.numel() if head is embed else 0)
    text = model.config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2.0 * matmul + 4.0 * text.num_hidden_layers * (context // 2) * text.num_attention_heads * head_dim


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
    raise RunnerError(f"{name} has no language-model head to score text with")


# Rows per generation batch on CPU without --batch-size. On a 2-core Xeon, greedy HumanEval (164 prompts,
# 64 new tokens) on the shadow llama-3.2-1b ran at about 2,800-3,100 / 3,400-4,000 / 3,400-3,900 /
# 2,700-2,800 new tokens/s with 16 / 32 / 64 / 128 rows (one at a time: about 500); 32 is as fast as 64
# within noise and halves the fp32 KV cache of a real model (an 8B one: 8 GiB at 32 rows x 1,024 positions).
_CPU_GENERATION_BATCH = 32
# image prompts per generate call (each holds its tiles' pixels besides its tokens)
_IMAGE_BATCH = 8


def _without_padding(tokens: list[int], pad: int, stops) -> list[int]:
    """A generated row up to and including its first stop id; what generate padded after it goes."""
    for j, token in enumerate(tokens):
        if token in stops:
            return tokens[:j + 1]
    while tokens and tokens[-1] == pad:
        tokens = tokens[:-1]
    return tokens


class _Row:
    """One completion being generated: a request's prompt, its stop criteria and the tokens so far."""

    __slots__ = ("request", "prompt", "max_new", "stop_ids", "stops", "window", "temperature", "top_p", "seed",
                 "tokens")

    def __init__(self, request: int, req: GenerateRequest, sample: int = 0):
        ignore = getattr(req, "ignore_eos", False)
        self.request = request
        self.prompt = list(req.prompt)
        self.max_new = max(0, req.max_new_tokens)
        self.stop_ids = frozenset() if ignore else frozenset(req.stop_token_ids)
        self.stops = () if ignore else tuple(s for s in req.stop_strings if s)
        # A new match of a stop string of L characters ends in the newest token and starts at most 4L
        # bytes earlier (UTF-8); every token holds at least one byte, so 4L + 1 tokens hold it, and one
        # more keeps SentencePiece's dropped leading space of a decode's first token out of the way.
        self.window = 4 * max((len(s) for s in self.stops), default=0) + 2
        self.temperature, self.top_p = req.temperature, req.top_p
        self.seed = None if req.seed is None else req.seed + sample
        self.tokens: list[int] = []

    def push(self, token: int) -> bool:
        """Take the next token; True when the row is finished (a stop id, which is not kept, or the length)."""
        if token in self.stop_ids:
            return True
        self.tokens.append(token)
        return len(self.tokens) >= self.max_new


class _Sampler:
    """The next token of each row: argmax for temperature 0, else temperature and top-p sampling
    (as transformers' warpers). Each seeded row draws from its own generator (the request's seed
    plus the sample's number), so a sampled completion does not depend on which rows share its
    batch, how large the batch is, or where a resumed run picked up."""

    def __init__(self, rows: list[_Row], device: str):
        import torch

        self.sampling = any(r.temperature > 0 for r in rows)
        if self.sampling:
            self.temperature = torch.tensor([r.temperature for r in rows], dtype=torch.float32, device=device)
            self.top_p = torch.tensor([r.top_p for r in rows], dtype=torch.float32, device=device)
            self.generators = [torch.Generator(device=device).manual_seed(r.seed) if r.seed is not None else None
                               for r in rows]

    def select(self, index) -> None:
        if self.sampling:
            self.temperature, self.top_p = self.temperature[index], self.top_p[index]
            self.generators = [self.generators[i] for i in index.tolist()]

    def pick(self, logits):
        import torch

        greedy = logits.max(dim=-1).indices  # the first maximum, like argmax, and faster on CPU
        if not self.sampling:
            return greedy
        probs = torch.softmax(logits / self.temperature.clamp(min=1e-6)[:, None], dim=-1)
        # always in descending order, top-p or not: a draw maps to a token through the order of the
        # categories, so every row must see the same order whatever its batch-mates ask for
        probs, order = probs.sort(dim=-1, descending=True)
        before = probs.cumsum(dim=-1) - probs
        drop = (before >= self.top_p[:, None]) & (self.top_p < 1)[:, None]  # past top_p's mass (at least one kept)
        drop[:, 0] = False
        probs = probs.masked_fill(drop, 0.0)
        picked = greedy.clone()
        for i in (self.temperature > 0).nonzero()[:, 0].tolist():
            picked[i] = order[i, torch.multinomial(probs[i], 1, generator=self.generators[i])[0]]
        return picked


def _drop_padding_columns(mask, cache):
    """Drop the leading columns that are padding in every remaining row, from the mask and from a
    DynamicCache's keys and values (positions are explicit, so nothing else moves)."""
    from transformers.cache_utils import DynamicLayer

    first = int(mask.any(dim=0).int().argmax())
    layers = getattr(cache, "layers", None)
    if first == 0 or not layers:
        return mask
    used = [layer for layer in layers if layer.is_initialized and layer.keys is not None and layer.keys.numel()]
    if any(type(layer) is not DynamicLayer or layer.keys.shape[-2] != mask.shape[1] for layer in used):
        return mask  # sliding, cross-attention or other layers: keep the columns
    for layer in used:
        layer.keys = layer.keys[..., first:, :]
        layer.values = layer.values[..., first:, :]
    return mask[:, first:]
