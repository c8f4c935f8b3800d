"""Batched text generation with transformers, with its own decode loop (dynamic cache on any device,
a static cache and a compiled decode step on CUDA) and per-row seeded sampling."""

from __future__ import annotations

from typing import Any, Sequence

from llama_zoo.backends.base import Generation, GenerateRequest, BackendError, cut_at_stop
from llama_zoo.backends.hf.common import without_autograd

# Rows per generation batch on CPU without --batch-size. On a 2-core Xeon, greedy HumanEval (164 prompts,
# 64 new tokens) on the shadow llama-3.2-1b ran at about 2,800-3,100 / 3,400-4,000 / 3,400-3,900 /
# 2,700-2,800 new tokens/s with 16 / 32 / 64 / 128 rows (one at a time: about 500); 32 is as fast as 64
# within noise and halves the fp32 KV cache of a real model (an 8B one: 8 GiB at 32 rows x 1,024 positions).
_CPU_GENERATION_BATCH = 32



PREFILL_CHUNK = 8192  # prompt tokens per prefill step: an 8B model's activations for it stay under a GiB or two


class Generating:
    """``HFBackend``'s ``generate``; the runner sets what it reads (body, head, tokenizer, device,
    dtype, batch_size, whether CUDA graphs are used) and offers ``_pad_id`` and ``_empty_cache``."""

    body: Any
    head: Any
    tokenizer: Any
    device: str
    dtype: Any
    batch_size: int | None
    _cuda_graphs: bool

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
                raise BackendError("a generation request needs at least one prompt token")
            rows += [_Row(index, req, k) for k in range(req.n)]
        # longest first; prompts of one length in token order, as lm-eval sorts them: alike prompts tend
        # to get alike lengths of answer, so a batch's rows finish together rather than one long row
        # keeping a batch of finished ones going (with lm-eval's own order, 141 steps instead of 167 for
        # the same 100 questions in benchmarks/lm_eval_vs_zoo.py)
        order = sorted((r for r in rows if r.max_new > 0), key=lambda r: (-len(r.prompt), r.prompt))
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
        logits = self._prefill(ids, mask, positions, cache)
        if cache.get_seq_length() == 0:  # an older transformers that ignored the `cache` keyword
            raise BackendError("this transformers did not fill the KV cache: llama-zoo needs transformers >= 5.24")
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
        tokens are ignored) until every row is done. Run on an H200 (docs/benchmarks.md: 2,689 new
        tokens/s at batch 32, each greedy token checked against one full forward pass by
        benchmarks/gpu.py); the tests run this code on the CPU with the step uncompiled and hold it
        equal to _generate_dynamic.
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
        logits = self._prefill(ids, mask, positions, cache, full_mask=True)
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

    def _prefill(self, ids, mask, positions, cache, full_mask: bool = False):
        """The prompt into the cache, ``prefill_chunk`` tokens at a time, and the last position's logits.

        Attention of a piece over everything before it is what one pass over the whole prompt
        computes, so the result is the same; the activations held at once are a piece's, not the
        prompt's, and a prompt fits where its KV cache fits. ``full_mask``: the mask already spans
        the cache (a static cache), so each piece takes it whole instead of the columns up to its end.
        """
        width = ids.shape[1]
        starts = range(0, width, getattr(self, "prefill_chunk", PREFILL_CHUNK) or width)
        for start, end in zip(starts, starts[1:]):  # every piece but the last only fills the cache
            self.body(input_ids=ids[:, start:end], attention_mask=mask if full_mask else mask[:, :end],
                      position_ids=positions[:, start:end], cache=cache, use_cache=True)
        return self._last_logits(ids[:, starts[-1]:], mask, positions[:, starts[-1]:], cache)

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
