"""The output layer a chunk of rows at a time, every chunk in one buffer with the log-sum-exp done in
place: each row's log-probability of its target is one log-softmax's over that row, whatever the
chunk size (a last chunk shorter than the rest included), for a plain float32 layer and for layers
that compute their own way (bfloat16, a torchao float8 weight that reports float32)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from llama_zoo.backends.hf import scoring  # noqa: E402

VOCAB, WIDTH, ROWS = 257, 16, 10


def _scorer(head):
    scorer = scoring.Scoring()
    scorer.head, scorer.device = head, "cpu"
    return scorer


def _expected(head, hidden, targets) -> list[float]:
    with torch.no_grad():
        logits = head(hidden).double()
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(targets)[:, None])[:, 0].tolist()


def _head(kind: str):
    torch.manual_seed(0)
    head = torch.nn.Linear(WIDTH, VOCAB, bias=False)
    if kind == "bfloat16":
        return head.to(torch.bfloat16)
    if kind == "float8":
        quantization = pytest.importorskip("torchao.quantization", reason="the float8 layer needs torchao")
        quantization.quantize_(head, quantization.Float8WeightOnlyConfig())
        assert head.weight.dtype == torch.float32 and type(head.weight) is not torch.nn.Parameter
    return head


@pytest.mark.parametrize("kind", ["float32", "bfloat16", "float8"])
@pytest.mark.parametrize("rows_per_chunk", [1, 3, 4, ROWS, 1000])
def test_every_chunking_gives_one_log_softmax(monkeypatch, kind, rows_per_chunk):
    head = _head(kind)
    monkeypatch.setattr(scoring, "LOGIT_BYTES_PER_CHUNK", rows_per_chunk * VOCAB * 4)
    torch.manual_seed(1)
    # logits in the hundreds: exp() of them overflows float32 unless the maximum comes off first
    hidden = 100 * torch.randn(ROWS, WIDTH, dtype=head.weight.dtype if kind == "bfloat16" else torch.float32)
    targets = torch.randint(0, VOCAB, (ROWS,)).tolist()
    with torch.no_grad():
        got = _scorer(head)._target_logprobs(hidden, targets)
    assert got == pytest.approx(_expected(head, hidden, targets), rel=1e-6, abs=1e-5)
    assert len(got) == ROWS and all(value <= 0 for value in got) and min(got) < -100


def test_scoring_passes_keep_no_kv_cache():
    """Scoring reads the last hidden states only: a KV cache filled beside them is a second copy of
    every key and value (17 GB for one 128K window of Llama 3.1 8B, seen on an H200)."""
    from llama_zoo.backends.base import NextTokenRequest, TokenWindow
    from llama_zoo.backends.hf import HFBackend
    from llama_zoo.backends.weights import choose_source
    from llama_zoo.registry.catalog import load_catalog

    spec = load_catalog().get("llama-3.2-1b")
    runner = HFBackend(spec, choose_source(spec, shadow=True), device="cpu", dtype="float32")
    caches = []
    runner.body.register_forward_hook(lambda module, args, output: caches.append(output.past_key_values))
    runner.loglikelihood_rolling([TokenWindow((1,), (5, 6, 7, 8))])
    runner.next_token_scores([NextTokenRequest((1, 5, 6), (7, 8))])
    assert len(caches) == 2 and caches == [None, None]
