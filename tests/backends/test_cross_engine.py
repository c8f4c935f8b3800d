"""The same weights through two engines: transformers (the GGUF dequantised, float32) and llama.cpp
(the GGUF itself), scored on identical token windows.

Tolerances: with an F32 GGUF of exactly the weights transformers holds and an F32 KV cache, the two
engines differ only in the order of float32 sums (measured: 2.9e-6 relative in mean NLL, 9e-5 at
worst per token), so 1e-5 relative and 1e-3 per token. The Q4_1 file itself runs llama.cpp's
quantised kernels, which also round the activations to 8 bits: close (0.13% measured), not equal,
so 1% relative.
"""

from __future__ import annotations

import numpy as np
import pytest

from llama_zoo.suites.perplexity.corpora import stdlib_docs
from llama_zoo.suites.perplexity.suite import build_units
from llama_zoo.registry.checkpoint import from_path
from llama_zoo.backends.weights import choose_source

pytest.importorskip("llama_cpp", reason="llama.cpp's tests need llama-cpp-python (a dev extra)")
CONTEXT = 128


def runner(kind: str, path):
    spec, checkpoint = from_path(str(path))
    source = choose_source(spec, checkpoint=checkpoint)
    if kind == "hf":
        from llama_zoo.backends.hf import HFBackend

        return HFBackend(spec, source, device="cpu", dtype="float32", max_length=CONTEXT)
    from llama_zoo.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(spec, source, max_length=CONTEXT)


@pytest.fixture(scope="module")
def windows_and_hf(smollm2_dir):
    hf = runner("hf", smollm2_dir)
    units = build_units("rolling", stdlib_docs().texts[:2], hf.tokenizer, CONTEXT, limit=2)
    windows = [w for u in units for w in u.windows][:6]
    return windows, np.concatenate(hf.loglikelihood_rolling(windows))


@pytest.mark.slow
@pytest.mark.parametrize("file,mean_rel,per_token", [("f32", 1e-5, 1e-3), ("q4_1", 1e-2, None)])
def test_transformers_and_llama_cpp_agree_on_the_same_weights(windows_and_hf, smollm2_gguf, smollm2_f32_gguf,
                                                             file, mean_rel, per_token):
    windows, ours = windows_and_hf
    theirs = np.concatenate(runner("llama.cpp", smollm2_f32_gguf if file == "f32" else smollm2_gguf)
                            .loglikelihood_rolling(windows))
    assert len(ours) == len(theirs) == sum(len(w.targets) for w in windows)
    relative = abs(ours.mean() - theirs.mean()) / abs(ours.mean())
    assert relative < mean_rel, relative
    if per_token is not None:
        assert np.abs(ours - theirs).max() < per_token
    else:
        assert relative > 1e-5  # the quantised kernels really ran: not the F32 numbers


def test_llama_cpp_tokenizer_is_the_gguf_vocabulary(smollm2_gguf):
    from llama_zoo.backends.llamacpp import GGUFTokenizer

    tok = GGUFTokenizer(str(smollm2_gguf))
    ids = tok("def add(a, b):\n    return a + b").input_ids
    assert tok.decode(ids) == "def add(a, b):\n    return a + b" and tok.bos_token_id == 1 and tok.eos_token_id == 2
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and tok.encode(prompt, add_special_tokens=False)[-4] == 1  # <|im_start|> as one id


def test_llama_cpp_reads_what_inputs_share_from_its_cache_as_it_would_afresh(smollm2_gguf):
    """Questions with choices of several tokens (consecutive inputs share the question, kept in the
    KV cache; choices that share all but their last token read from one pass), between unrelated
    windows: each window's log-likelihoods equal those of the window scored alone, on a fresh cache."""
    from llama_zoo.backends.base import TokenWindow

    backend = runner("llama.cpp", smollm2_gguf)
    encode = backend.tokenizer.encode
    windows = []
    for question in ("Question: what is 17 plus 40? Answer:", "Question: name a colour of the sky. Answer:"):
        context = encode(question)
        for choice in (" 57", " 53", " 5", " blue", " light blue", " the colour blue"):
            windows.append(TokenWindow(context, encode(choice, add_special_tokens=False)))
        windows.append(TokenWindow(encode("Unrelated text comes between the questions."), encode(" here", False)))
    together = backend.loglikelihood_rolling(windows)
    alone = [backend.loglikelihood_rolling([w])[0] for w in windows]
    assert [len(t) for t in together] == [len(w.targets) for w in windows]
    np.testing.assert_allclose(np.concatenate(together), np.concatenate(alone), rtol=0, atol=1e-6)  # equal here
