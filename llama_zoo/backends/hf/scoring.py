"""Scoring with transformers: rolling log-likelihoods, next-token and classifier log-probabilities.

Log-probabilities come from the final hidden states, a chunk of positions at a time: the output
projection and log-softmax never see a whole batch at once, so 128K-vocabulary models never
materialise batch x length x vocab fp32 logits. They are logit minus ``logsumexp``, not
``log_softmax``: torch's fp32 ``log_softmax`` on an AVX2 CPU was 2e-5 nats per token off the fp64
value at a 49K vocabulary (``logsumexp`` agreed to 1e-8), enough to move a perplexity by 2e-5.
Requests are sorted by length and batched; on CUDA the largest batch that fits is found by halving
on out-of-memory, once per model and length, and remembered.
"""

from __future__ import annotations

from typing import Any, Sequence

from llama_zoo.backends.base import ClassifyRequest, NextTokenRequest, BackendError, TokenWindow
from llama_zoo.backends.hf.common import without_autograd
from llama_zoo.backends.shared_inputs import Family, Host, Read, families, hosts

# Rows of fp32 logits computed at once: about 512 MB whatever the vocabulary.
LOGIT_BYTES_PER_CHUNK = 512 * 2**20


class Scoring:
    """``HFBackend``'s scoring methods; the runner sets what they read (model, body, head, device,
    max_length, batch_size, the fitted batch sizes) and offers ``_pad_id`` and ``_empty_cache``."""

    model: Any
    body: Any
    head: Any
    device: str
    model_id: str
    max_length: int
    batch_size: int | None
    _fitted_batch: dict[int, int]

    @without_autograd
    def loglikelihood_rolling(self, windows: Sequence[TokenWindow]) -> list[list[float]]:
        for w in windows:
            if w.length > self.max_length:
                raise BackendError(f"a window of {w.length} tokens exceeds the model's {self.max_length}")
        out: list[list[float]] = [[] for _ in windows]
        # windows whose input is a prefix of another's are read from its pass, and inputs that begin
        # with the same context continue from its keys and values (shared_inputs.py)
        shared, alone = families(hosts(windows))
        for answered in [*self._by_length(alone, lambda h: len(h.ids), self._score_batch),
                         *self._by_length(shared, lambda f: max(len(h.ids) for h in f.hosts), self._score_families)]:
            for read, logprobs in answered:
                out[read.window] = logprobs
        return out

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

    def _score_batch(self, batch: list[Host]) -> list[list[tuple[Read, list[float]]]]:
        import torch

        # right padding: positions of real tokens stay 0..n-1
        ids, mask = self._right_padded([h.ids for h in batch])
        # no KV cache: nothing reads it, and it would hold a second copy of every key and value
        # (17 GB for one 128K window of Llama 3.1 8B)
        hidden = self.body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        # gather the positions that predict targets, then project them a chunk at a time
        rows, cols, targets, owners = [], [], [], []
        for row, host in enumerate(batch):
            for read in host.reads:
                n = len(read.targets)
                rows += [row] * n
                cols += range(read.first, read.first + n)
                targets += read.targets
                owners.append((row, read, n))
        picked = hidden[torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device)]
        return _split(self._target_logprobs(picked, targets), owners, len(batch))

    def _score_families(self, batch: list[Family]) -> list[list[tuple[Read, list[float]]]]:
        """Each family's trunk in one pass that keeps its keys and values, then every host's tokens
        after the trunk in a second pass continuing from them (the cache rows repeated per host,
        positions counted on from the trunk's own length). Right padding of the trunks is masked."""
        import torch

        trunk_ids, trunk_mask = self._right_padded([f.trunk for f in batch])
        first = self.body(input_ids=trunk_ids, attention_mask=trunk_mask, use_cache=True)
        owner = [k for k, family in enumerate(batch) for _ in family.hosts]
        index = torch.tensor(owner, device=self.device)
        cache = first.cache
        cache.batch_select_indices(index)
        members = [host for family in batch for host in family.hosts]
        ids, mask = self._right_padded([host.ids[len(batch[k].trunk):] for k, host in zip(owner, members)])
        start = torch.tensor([len(batch[k].trunk) for k in owner], device=self.device)
        after = self.body(input_ids=ids, attention_mask=torch.cat([trunk_mask[index], mask], dim=1),
                          position_ids=start[:, None] + torch.arange(ids.shape[1], device=self.device),
                          cache=cache, use_cache=False).last_hidden_state
        picked, targets, owners = [], [], []
        for row, (k, host) in enumerate(zip(owner, members)):
            length = len(batch[k].trunk)
            for read in host.reads:
                positions = range(read.first, read.first + len(read.targets))
                picked += [first.last_hidden_state[k, p] if p < length else after[row, p - length] for p in positions]
                targets += read.targets
                owners.append((k, read, len(read.targets)))
        return _split(self._target_logprobs(torch.stack(picked), targets), owners, len(batch))

    def _target_logprobs(self, picked, targets: Sequence[int]) -> list[float]:
        """Each hidden state's log-probability of its target token, projected a chunk of rows at a time.

        The chunks reuse one fp32 buffer and ``logsumexp`` is done in place in it (the same steps as
        ``torch.logsumexp``, the same values; only its guard against an infinite maximum, which finite
        weights never produce, is left out): a fresh half-gigabyte tensor per chunk, and another for
        ``exp``, cost the CPU more in page faults than the projection itself at a shadow's width."""
        import torch

        target_ids = torch.tensor(list(targets), device=self.device)
        vocab = self.head.weight.shape[0]
        step = max(1, min(picked.shape[0], LOGIT_BYTES_PER_CHUNK // (vocab * 4)))
        buffer = torch.empty((step, vocab), dtype=torch.float32, device=self.device)
        logprobs = []
        for i in range(0, picked.shape[0], step):
            rows = picked[i:i + step]
            logits = self._project(rows, buffer[:rows.shape[0]])
            target = logits.gather(1, target_ids[i:i + step, None])[:, 0]
            top = logits.amax(dim=-1, keepdim=True)
            logprobs.append(target - (logits.sub_(top).exp_().sum(dim=-1).log_() + top[:, 0]))
        return torch.cat(logprobs).tolist()

    def _project(self, rows, out):
        """The output layer's fp32 logits for ``rows``, written into ``out``."""
        import torch

        head = self.head
        # a plain float32 layer only: a quantised weight (torchao's Float8Tensor says float32 too) is a
        # tensor subclass that computes its own way
        if (type(head) is torch.nn.Linear and head.bias is None and type(head.weight) is torch.nn.Parameter
                and head.weight.dtype == torch.float32):
            return torch.mm(rows, head.weight.t(), out=out)
        return out.copy_(head(rows))

    @without_autograd
    def next_token_scores(self, requests: Sequence[NextTokenRequest]) -> list[list[float]]:
        """One forward pass per prompt (batched, right-padded): the log-probabilities of the candidate
        next tokens after its last token."""
        import torch

        def run(batch: list[NextTokenRequest]) -> list[list[float]]:
            ids, mask = self._right_padded([r.prompt for r in batch])
            hidden = self.body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            last = hidden[torch.arange(len(batch), device=self.device), mask.sum(dim=1) - 1]
            logits = self.head(last).float()
            logprobs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
            return [[logprobs[row, c].item() for c in req.candidates] for row, req in enumerate(batch)]

        return self._by_length(requests, lambda r: len(r.prompt), run)

    @without_autograd
    def classify(self, requests: Sequence[ClassifyRequest]) -> list[list[float]]:
        """Class log-probabilities of a sequence classifier, batched and right-padded."""
        import torch

        if self.body is not None:
            raise BackendError(f"{self.model_id} is a language model, not a sequence classifier")

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


def _split(flat: list[float], owners: list[tuple[int, Read, int]], rows: int) -> list[list[tuple[Read, list[float]]]]:
    """Per batch row, each read with its run of ``flat`` (owners: row, read, targets, in ``flat``'s order)."""
    out: list[list[tuple[Read, list[float]]]] = [[] for _ in range(rows)]
    pos = 0
    for row, read, n in owners:
        out[row].append((read, flat[pos:pos + n]))
        pos += n
    return out
