"""Models outside the registry, evaluated as themselves: a transformers checkpoint directory and a
GGUF file of the real SmolLM2-135M-Instruct, and every way to point at one wrongly."""

from __future__ import annotations

import json
import math
import os

import pytest

from llama_zoo.suites.perplexity.corpora import stdlib_docs
from llama_zoo.suites.perplexity.suite import build_units
from llama_zoo.registry.checkpoint import from_path


def test_a_gguf_file_describes_itself(smollm2_gguf):
    from llama_zoo.registry.derive import param_count

    spec, checkpoint = from_path(str(smollm2_gguf))
    arch = spec.architecture
    assert (arch.num_hidden_layers, arch.hidden_size, arch.num_attention_heads, arch.num_key_value_heads,
            arch.vocab_size, arch.tie_word_embeddings) == (30, 576, 9, 3, 49152, True)
    assert spec.tokenizer.kind == "byte-level-bpe" and spec.tokenizer.chat_format == "chatml"
    assert spec.tokenizer.eos_token_id == 2 and spec.capabilities.instruct
    assert checkpoint.quantization == "Q4_1" and spec.id.startswith("smollm2-135m-q4-1-")
    assert spec.id.endswith(checkpoint.content_hash[:8]) and spec.family == "community"
    assert param_count(spec).total == 134_515_008  # SmolLM2-135M: embeddings tied, counted once


def test_a_checkpoint_directory_describes_itself_and_a_base_adds_lineage(smollm2_dir):
    spec, checkpoint = from_path(str(smollm2_dir), base=None)
    assert spec.architecture.num_hidden_layers == 30 and spec.tokenizer.chat_format == "chatml"
    from llama_zoo.registry.catalog import load_catalog

    derived, _ = from_path(str(smollm2_dir), base=load_catalog().get("llama-3.2-1b"))
    assert derived.derived_from.parent == "llama-3.2-1b" and derived.family == "llama-3.2" and derived.id == spec.id


@pytest.mark.slow
def test_perplexity_of_a_checkpoint_directory_equals_plain_transformers(zoo, smollm2_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = stdlib_docs().texts[:3]
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    done = zoo("eval", "--model", str(smollm2_dir), "--suite", "perplexity", "--dataset", str(data), "--context", "256",
               "--device", "cpu", "--dtype", "float32", "--format", "json", db=tmp_path / "r.db")
    assert done.returncode == 0, done.stderr
    ours = json.loads(done.stdout)
    assert ours["model_id"].startswith("smollm2-135m-instruct-") and not ours["cached"]

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for unit in build_units("rolling", texts, tokenizer, 256):
            for w in unit.windows:
                ids = torch.tensor([list(w.context) + list(w.targets[:-1])])
                logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
                first = len(w.context) - 1
                nll -= sum(logprobs[first + i, t].item() for i, t in enumerate(w.targets))
                tokens += len(w.targets)
    assert ours["metrics"]["token_perplexity"]["value"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)

    shown = json.loads(zoo("runs", "show", ours["run_id"], "--format", "json", db=tmp_path / "r.db").stdout)
    assert shown["weights_source"] == "local" and shown["weights_ref"] == str(smollm2_dir.resolve())
    assert shown["options"]["checkpoint"]["params"] == 134_515_008


def test_a_gguf_file_is_parsed_once_and_loads_what_transformers_loads(smollm2_gguf, smollm2_dir, monkeypatch, capfd):
    """Describing the file, its tokenizer and its weights parse the GGUF once (transformers alone
    parses it three times), and draw no bar of transformers' own through the CLI's progress; the
    tokenizer and every tensor are what transformers' own conversion gives."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llama_zoo.backends.tokenizers import load_tokenizer
    from llama_zoo.backends.weights import choose_source, load_model
    from llama_zoo.registry import gguf_files

    parsed = []

    class Counting(gguf.GGUFReader):
        def __init__(self, path, *args, **kwargs):
            parsed.append(str(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", Counting)
    monkeypatch.setattr(gguf_files, "_originals", {})  # taken afresh: the counting class
    monkeypatch.setattr(gguf_files, "_last", None)
    spec, checkpoint = from_path(str(smollm2_gguf))
    source = choose_source(spec, checkpoint=checkpoint)
    tokenizer, _ = load_tokenizer(spec, source)
    capfd.readouterr()
    model = load_model(spec, source, "cpu", torch.float32)
    drawn = capfd.readouterr()
    assert "GGUF tensors" not in drawn.err + drawn.out and "Loading weights" not in drawn.err + drawn.out, drawn.err
    assert parsed == [str(smollm2_gguf)]
    assert gguf.GGUFReader is Counting  # put back once the loads are done

    text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # Grüße"
    assert tokenizer(text)["input_ids"] == AutoTokenizer.from_pretrained(smollm2_dir)(text)["input_ids"]
    plain = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).state_dict()
    mine = model.state_dict()
    assert mine.keys() == plain.keys() and all(torch.equal(mine[k], plain[k]) for k in plain)


@pytest.mark.slow
def test_humaneval_through_the_checkpoints_own_chat_template(zoo, smollm2_gguf, tmp_path):
    done = zoo("eval", "--model", str(smollm2_gguf), "--suite", "humaneval", "--limit", "2", "--max-new-tokens", "96",
               "--format", "json", db=tmp_path / "r.db")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    shown = json.loads(zoo("runs", "show", run_id, "--format", "json", "--samples", "2", db=tmp_path / "r.db").stdout)
    assert shown["options"]["instruct"] is True and shown["options"]["checkpoint"]["quantization"] == "Q4_1"
    for sample in shown["samples"]:  # real code, cut at the model's own end of turn, not invented chat turns
        assert "def " in sample["output"] or "return" in sample["output"], sample["output"]
        assert "<|im_start|>" not in sample["output"] and "<|im_end|>" not in sample["output"]


def test_bad_checkpoints_are_one_line(zoo, smollm2_dir, tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf file at all")
    no_config = tmp_path / "empty"
    no_config.mkdir()
    no_tokenizer = tmp_path / "weights-only"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        os.symlink(smollm2_dir / name, no_tokenizer / name)
    other = tmp_path / "gpt2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    cases = [
        ((str(fake),), "is not a GGUF file"),
        ((str(tmp_path / "missing.gguf"),), "no such file or directory"),
        ((str(no_config),), "no config.json"),
        ((str(no_tokenizer),), "no tokenizer"),
        ((str(other),), "model_type 'gpt2'"),
        ((str(smollm2_dir), "--backend", "llama.cpp"), "--backend llama.cpp runs GGUF files"),
        ((str(smollm2_dir), "--shadow"), "is evaluated with its own weights"),
        (("llama-3.2-1b", "--base", "llama-2-7b", "--shadow"), "is a registry model already"),
    ]
    for args, message in cases:
        result = zoo("eval", "--model", *args, "--suite", "perplexity", "--limit", "1", db=tmp_path / "r.db")
        assert result.returncode == 2, (args, result.stdout)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    runs = json.loads(zoo("runs", "list", "--format", "json", db=tmp_path / "r.db").stdout)
    assert runs == []  # nothing stored, let alone as completed


def test_registry_names_win_over_folders_of_the_same_name(tmp_path, monkeypatch, smollm2_dir):
    from llama_zoo.registry.checkpoint import find_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "meta-llama").mkdir()
    os.symlink(smollm2_dir, tmp_path / "meta-llama" / "Llama-3.2-1B")  # a hub-style --local-dir layout
    spec, checkpoint = find_model("meta-llama/Llama-3.2-1B")
    assert spec.id == "llama-3.2-1b" and checkpoint is None
    spec, checkpoint = find_model("./meta-llama/Llama-3.2-1B")  # written as a path: the folder itself
    assert checkpoint is not None and spec.id.startswith("llama-3.2-1b-")
    os.symlink(smollm2_dir, tmp_path / "my-tune")
    assert find_model("my-tune")[1] is not None  # no registry model of that name: the folder
