"""Batched generation in the transformers runner: a batch gives what one request at a time gives,
token for token, with left padding, per-row stop criteria and finished rows leaving the batch.

The shadows' default initialisation is so small that a shadow just repeats its last input token,
which no batching bug could change; the weights are redrawn larger here so that every token depends
on the whole prompt (a batch that let rows attend to padding fails these tests).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from llama_zoo.suites.code import humaneval, infilling
from llama_zoo.backends.base import GenerateRequest
from llama_zoo.backends.hf import HFBackend
from llama_zoo.backends.weights import choose_source
from llama_zoo.suites.core.base import eos_ids

# Code Llama's 16 extra tokens (32000-32015), as in tests/suites/test_infilling.py
CODE_LLAMA_EXTRA = ["▁<SU", "▁<SUF", "▁<PRE", "▁<M", "▁<MID", "▁<E", "▁<EOT", "▁<PRE>", "▁<SUF>", "▁<MID>"]
CODE_LLAMA_EXTRA += ["▁" + "<EOT>" * k for k in range(1, 7)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Shadows are too small to gain from intra-op threads, and on a busy 2-core machine two threads
    waiting on each other make these tests several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shadow_runner(catalog, model_id: str, tokenizer=None) -> HFBackend:
    spec = catalog.get(model_id)
    runner = HFBackend(spec, choose_source(spec, shadow=True), device="cpu", dtype="float32",
                      loaded_tokenizer=(tokenizer, "test") if tokenizer is not None else None)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in runner.model.parameters():
            if p.dim() == 2 and p.is_floating_point():
                p.normal_(0.0, 0.2, generator=generator)
    return runner


class Recorder:
    """Every forward of the decoder body: rows and positions fed, rows and positions held by the KV cache."""

    def __init__(self, runner: HFBackend):
        self.calls: list[tuple[int, int, int]] = []
        self.cached_lengths: list[int] = []
        self.positions: list[torch.Tensor] = []
        runner.body.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        ids, cache = kwargs["input_ids"], kwargs["cache"]
        used = [layer.keys for layer in cache.layers if layer.is_initialized and layer.keys.numel()]
        self.calls.append((ids.shape[0], ids.shape[1], max((k.shape[0] for k in used), default=ids.shape[0])))
        self.cached_lengths.append(max((k.shape[-2] for k in used), default=0))
        if ids.shape[1] > 1:  # a prefill
            self.positions.append(kwargs["position_ids"].clone())

    def reset(self) -> None:
        self.calls, self.positions, self.cached_lengths = [], [], []


@pytest.fixture(scope="module")
def llama3(shared, catalog):
    from transformers import AutoTokenizer

    runner = shadow_runner(catalog, "llama-3.2-1b", AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama3"))
    return runner, Recorder(runner)


@pytest.fixture(scope="module")
def code_llama(shared, catalog):
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama2")
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in CODE_LLAMA_EXTRA], special_tokens=True)
    assert len(tokenizer) == 32016
    return shadow_runner(catalog, "code-llama-7b", tokenizer)


def one_at_a_time(runner: HFBackend, requests: list[GenerateRequest]):
    return [runner.generate([r])[0] for r in requests]


@pytest.mark.slow
def test_humaneval_batch_equals_one_at_a_time(humaneval_problems, llama3):
    runner, recorder = llama3
    tok = runner.tokenizer
    eos = eos_ids(runner.spec)
    prompts = [tuple(tok(p["prompt"]).input_ids) for p in list(humaneval_problems.tasks.values())[:16]]
    base = [GenerateRequest(p, max_new_tokens=48, stop_strings=humaneval.STOP_STRINGS, stop_token_ids=eos)
            for p in prompts]
    # random weights never write "\ndef" or the end of text: make a few rows stop early on their own
    # criteria, from what they generate alone (a stop id met at step 3, a stop string in the text)
    probe0, probe1 = one_at_a_time(runner, base[:2])
    stop_id = probe0.tokens[0][3]
    piece = tok.decode(probe1.tokens[0][:10], skip_special_tokens=False)[-3:]
    requests = [dataclasses.replace(base[0], stop_token_ids=eos + (stop_id,)),
                dataclasses.replace(base[1], stop_strings=humaneval.STOP_STRINGS + (piece,))]
    requests += [dataclasses.replace(r, max_new_tokens=12 + (7 * i) % 37) for i, r in enumerate(base[2:])]

    alone = one_at_a_time(runner, requests)
    # one row alone is transformers' own greedy search
    ids = torch.tensor([requests[3].prompt])
    reference = runner.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, eos_token_id=None,
                                      max_new_tokens=requests[3].max_new_tokens, pad_token_id=0)
    assert alone[3].tokens[0] == reference[0, ids.shape[1]:].tolist()

    recorder.reset()
    batched = runner.generate(requests)
    assert batched == alone  # token for token and text for text
    assert alone[0].new_tokens == [probe0.tokens[0].index(stop_id)] and alone[0].new_tokens[0] <= 3
    assert piece not in alone[1].texts[0] and alone[1].new_tokens[0] <= 10
    assert len({g.new_tokens[0] for g in alone}) > 5  # rows finish at many different steps
    for g, r in zip(alone[2:], requests[2:]):
        assert g.new_tokens == [r.max_new_tokens] and len(g.tokens[0]) == r.max_new_tokens

    # one batch of all 16 rows; finished rows left the batch and the KV cache at once
    rows = [n for n, _, _ in recorder.calls]
    assert recorder.calls[0][:2] == (16, max(len(p) for p in prompts))
    assert all(width == 1 for _, width, _ in recorder.calls[1:])
    assert all(n == cached for n, _, cached in recorder.calls[1:])
    assert rows == sorted(rows, reverse=True) and rows[-1] == 1 and len(set(rows)) > 5
    # once the longest prompts are done, the padding columns no live row needs leave the cache too
    lengths = recorder.cached_lengths[1:]
    assert sum(b < a for a, b in zip(lengths, lengths[1:])) >= 2
    assert len(recorder.calls) == max(g.new_tokens[0] for g in alone)  # a prefill, then a step per further token
    # left padding: each row's real tokens sit at positions 0..len-1
    positions = recorder.positions[0]
    for row, length in enumerate(sorted((len(p) for p in prompts), reverse=True)):
        assert positions[row, -length:].tolist() == list(range(length))

    # several batches (and their last, smaller one) give the same
    runner.batch_size = 5
    try:
        recorder.reset()
        assert runner.generate(requests) == alone
        assert [n for n, width, _ in recorder.calls if width > 1] == [5, 5, 5, 1]
    finally:
        runner.batch_size = None


def test_infilling_batch_equals_one_at_a_time(humaneval_problems, code_llama):
    runner = code_llama
    tok, fim = runner.tokenizer, runner.spec.tokenizer.fim
    tasks = list(infilling.load_tasks("single-line", humaneval_problems).tasks.values())[::90][:12]
    prompts = [infilling.fim_prompt(tok, fim, t["prompt"], t["suffix"], "psm", bos=tok.bos_token_id) for t in tasks]
    assert len(set(map(len, prompts))) >= 10  # a batch of very different lengths: much left padding
    requests = [GenerateRequest(tuple(p), max_new_tokens=10 + (5 * i) % 23, stop_token_ids=(fim.eot,))
                for i, p in enumerate(prompts)]
    alone = one_at_a_time(runner, requests)
    batched = runner.generate(requests)
    assert batched == alone
    assert [g.new_tokens[0] for g in alone] == [r.max_new_tokens for r in requests]


@pytest.mark.slow
def test_sampling_lengths_and_ignore_eos(humaneval_problems, llama3):
    runner, _ = llama3
    prompts = [tuple(runner.tokenizer(p["prompt"]).input_ids) for p in list(humaneval_problems.tasks.values())[20:24]]
    greedy = [GenerateRequest(p, max_new_tokens=6 + 3 * i) for i, p in enumerate(prompts)]
    expected = one_at_a_time(runner, greedy)

    # n samples per request, mixed with greedy rows and per-row lengths in one batch
    sampled = [GenerateRequest(prompts[0], max_new_tokens=5, temperature=1.0, n=3, seed=7),
               greedy[1],
               GenerateRequest(prompts[2], max_new_tokens=9, temperature=0.8, top_p=0.9, n=2, seed=3),
               GenerateRequest(prompts[3], max_new_tokens=7, temperature=1.0, top_p=1e-6, n=2, seed=3)]
    out = runner.generate(sampled)
    for g, n in zip(out, [3, 1, 2, 2]):
        assert len(g.texts) == len(g.tokens) == len(g.new_tokens) == n
    assert out[0].new_tokens == [5, 5, 5] and out[2].new_tokens == [9, 9] and out[3].new_tokens == [7, 7]
    assert out[1] == expected[1]  # a greedy row among sampled ones is still greedy
    assert out[3].tokens == [expected[3].tokens[0][:7]] * 2  # top_p ~ 0 keeps only the most likely token
    assert len({tuple(t) for t in out[0].tokens}) > 1  # random weights: samples differ
    assert runner.generate(sampled) == out  # seeded: the same call samples the same
    # each seeded sample has its own stream: batching, order and company never change it
    alone = one_at_a_time(runner, sampled)
    assert alone == out and runner.generate(sampled[::-1]) == out[::-1]
    split = runner.generate([dataclasses.replace(sampled[0], n=1), dataclasses.replace(sampled[0], n=1, seed=8)])
    assert [g.tokens[0] for g in split] == out[0].tokens[:2]  # sample k of seed s is sample 0 of seed s + k

    # max_new_tokens of 0 asks for nothing
    assert runner.generate([GenerateRequest(prompts[0], max_new_tokens=0)])[0].new_tokens == [0]

    # ignore_eos: exactly max_new_tokens, even past a stop id and a stop string that would end it
    if "ignore_eos" not in {f.name for f in dataclasses.fields(GenerateRequest)}:
        pytest.skip("GenerateRequest has no ignore_eos field yet")
    stop_id = expected[3].tokens[0][2]
    piece = runner.tokenizer.decode(expected[3].tokens[0][:4], skip_special_tokens=False)[-2:]
    stopping = GenerateRequest(prompts[3], max_new_tokens=15, stop_token_ids=(stop_id,), stop_strings=(piece,))
    stopped, forced = runner.generate([stopping, dataclasses.replace(stopping, ignore_eos=True)])
    assert stopped.new_tokens[0] <= 2
    assert forced.new_tokens == [15] and forced.tokens[0][:15] == one_at_a_time(
        runner, [GenerateRequest(prompts[3], max_new_tokens=15)])[0].tokens[0]
    assert forced.texts[0] == runner.tokenizer.decode(forced.tokens[0], skip_special_tokens=False)


@pytest.mark.parametrize("model_id", ["llama-3.2-11b-vision", "llama-4-scout-17b-16e"])
@pytest.mark.slow
def test_other_model_classes_batch_equals_one_at_a_time(catalog, model_id):
    """Mllama (cross-attention layers left empty) and Llama 4 (chunked attention over 16 tokens in
    the shadow, MoE) through the same loop, with left padding across chunk boundaries."""
    runner = shadow_runner(catalog, model_id)
    texts = ["def add(a, b):\n    return a + b\n", "Once upon", "x = 1\ny = 2\nprint(x + y)\n# and some more words",
             "hi", "Once upon"]
    requests = [GenerateRequest(tuple(runner.tokenizer(t).input_ids), max_new_tokens=8 + 4 * i)
                for i, t in enumerate(texts)]
    assert max(len(r.prompt) for r in requests) > 32
    assert runner.generate(requests) == one_at_a_time(runner, requests)


@pytest.mark.slow
def test_static_cache_path_run_eagerly_on_cpu(humaneval_problems, llama3):
    """The CUDA path (static cache, batches padded to fixed shapes, finished rows kept until all are
    done) run on CPU with its decode step left uncompiled: the same completions. Only torch.compile
    and CUDA graphs go untested here."""
    runner, _ = llama3
    prompts = [tuple(runner.tokenizer(p["prompt"]).input_ids) for p in list(humaneval_problems.tasks.values())[30:41]]
    requests = [GenerateRequest(p, max_new_tokens=6 + 3 * i, stop_strings=humaneval.STOP_STRINGS,
                                stop_token_ids=eos_ids(runner.spec)) for i, p in enumerate(prompts)]
    requests.append(GenerateRequest(prompts[0], max_new_tokens=5, temperature=1.0, n=2, seed=1))
    dynamic = runner.generate(requests[:-1])
    body, head = runner.body, runner.head

    def eager_step(ids, mask, positions, cache):
        return head(body(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                         use_cache=True).last_hidden_state[:, -1]).float()

    runner._decode_step, runner.batch_size = eager_step, 8
    runner._generate_dynamic = lambda rows: runner._generate_static(rows, runner.batch_size)
    try:
        static = runner.generate(requests)
        size, length = runner._static_cache_key  # of the last batch: its 5 rows padded to 8, 256 positions
        assert size == 8 and length % 256 == 0
    finally:
        del runner._generate_dynamic
        runner._decode_step = runner._static_cache = runner._static_cache_key = None
        runner.batch_size = None
    assert static[:-1] == dynamic
    assert static[-1].new_tokens == [5, 5]


@pytest.mark.parametrize("model_id", ["llama-3.2-1b", "llama-4-scout-17b-16e"])
def test_a_prompt_prefilled_in_pieces_continues_as_one_prefilled_whole(catalog, model_id):
    """Chunked prefill (how a 128K-token prompt fits where its KV cache fits): pieces of 7 tokens,
    with left padding in the first piece and Llama 4's chunked attention across piece boundaries,
    give the tokens one whole prefill gives, in both cache paths; the recorder sees the pieces."""
    runner = shadow_runner(catalog, model_id)
    texts = ["def add(a, b):\n    return a + b\n# and then some more words to make it long", "Once upon a time",
             "x = 1\ny = 2\nprint(x + y)\n"]
    requests = [GenerateRequest(tuple(runner.tokenizer(t).input_ids), max_new_tokens=6 + 2 * i)
                for i, t in enumerate(texts)]
    runner.prefill_chunk = 0
    whole = runner.generate(requests)
    recorder = Recorder(runner)
    runner.prefill_chunk = 7
    try:
        assert runner.generate(requests) == whole
        width, pieces = max(len(r.prompt) for r in requests), -(-max(len(r.prompt) for r in requests) // 7)
        assert [n for _, n, _ in recorder.calls[:pieces]] == [7] * (pieces - 1) + [width - 7 * (pieces - 1)]
        runner.batch_size = 4
        runner._generate_dynamic = lambda rows: runner._generate_static(rows, runner.batch_size)
        runner._decode_step = lambda ids, mask, positions, cache: runner.head(runner.body(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True
        ).last_hidden_state[:, -1]).float()
        assert runner.generate(requests) == whole
    finally:
        runner.__dict__.pop("_generate_dynamic", None)
        runner.prefill_chunk, runner.batch_size = 8192, None
