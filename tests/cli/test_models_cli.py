"""``llama-zoo models`` end to end, as a user runs it: ``main()`` in this process (the ``zoo``
fixture), real exit codes; the import-time checks and the console script itself in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest


def test_list_json_rows_carry_ids_repos_and_counts(zoo):
    result = zoo("models", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert len(rows) >= 56
    row = rows["llama-3.1-405b"]
    assert row["hf_repo"] == "meta-llama/Llama-3.1-405B"
    assert row["params"] == row["official_params"] == 405_853_388_800
    assert rows["llama-4-behemoth-288b-16e"]["params"] is None


def test_list_where_sort_and_csv(zoo):
    result = zoo("models", "list", "--where", "max_position_embeddings >= 131072 and not instruct and not safety",
                 "--sort", "-params", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and all(int(r["max_position_embeddings"]) >= 131072 for r in rows)
    assert all(r["instruct"] == "False" for r in rows)
    params = [int(r["params"]) for r in rows]
    assert params == sorted(params, reverse=True)
    assert rows[0]["id"] == "llama-3.1-405b"


def test_list_by_family_and_capability(zoo):
    result = zoo("models", "list", "--family", "code-llama", "--capability", "fim", "--format", "json")
    ids = {r["id"] for r in json.loads(result.stdout)}
    assert {"code-llama-7b", "code-llama-13b-instruct"} <= ids and not any("python" in i for i in ids)


def test_show_accepts_hub_ids_and_reports_derived_numbers(zoo):
    result = zoo("models", "show", "meta-llama/Llama-3.2-1B", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id"] == "llama-3.2-1b"
    assert data["derived"]["params"] == 1_235_814_400
    assert data["derived"]["fits"]["L4-24GB"] is True
    table = zoo("models", "show", "llama-3.1-405b")
    assert "405,853,388,800 ✓ matches official" in table.stdout
    assert "fits H100-80GB (bf16, batch 1)     no" in table.stdout


@pytest.mark.parametrize("args,message", [
    (("models", "show", "llama-3.1-8"), "did you mean 'llama-3.1-8b'"),
    (("models", "show", "codellama-7b"), "did you mean 'code-llama-7b'"),
    (("models", "list", "--where", "paramz > 1B"), "did you mean 'params'"),
    (("models", "list", "--family", "llama-5"), "unknown family 'llama-5'"),
    (("models", "list", "--sort", "speed"), "unknown field 'speed'"),
    (("models", "export", "llama-guard-3-1b-int4"), "not a transformers checkpoint"),
    (("models", "export", "llama-4-behemoth"), "no published architecture"),
    (("models", "list", "--format", "xml"), "'xml' is not one of"),
    (("models", "list", "--bogus"), "No such option: --bogus"),
    (("models", "show", "llama-3.1-8b", "--context", "0"), "greater than or equal to 1"),
    (("models", "show"), "Missing argument"),
])
def test_user_errors_are_one_line_without_traceback(zoo, args, message):
    result = zoo(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_validate_passes(zoo):
    result = zoo("models", "validate")
    assert result.returncode == 0, result.stdout
    assert "registry valid" in result.stdout


def test_diff_names_the_differences(zoo):
    result = zoo("models", "diff", "llama-3.2-1b", "llama-guard-3-1b", "--format", "json")
    fields = {r["field"]: r for r in json.loads(result.stdout)}
    assert fields["architecture.tie_word_embeddings"] == {
        "field": "architecture.tie_word_embeddings", "llama-3.2-1b": True, "llama-guard-3-1b": False}
    assert "architecture.hidden_size" not in fields


def test_tree_shows_lineage(zoo):
    result = zoo("models", "tree", "llama-3.2-1b")
    assert result.returncode == 0
    assert "llama-guard-3-1b-int4" in result.stdout and "llama-3.2-1b-instruct" in result.stdout


def test_export_hf_config_prints_a_config_json(zoo):
    result = zoo("models", "export", "code-llama-7b")
    config = json.loads(result.stdout)
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["vocab_size"] == 32016 and config["rope_theta"] == 1e6


@pytest.mark.slow
def test_registry_commands_never_import_torch_or_transformers():
    probe = (
        "import sys\n"
        "from llama_zoo.cli import app\n"
        "for args in (['models','list','--format','json'], ['models','show','llama-4-scout','--format','json'],\n"
        "             ['models','export','llama-3.1-8b'], ['models','validate'], ['models','tree']):\n"
        "    try:\n"
        "        app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_importtime_of_the_cli_shows_no_torch():
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import llama_zoo.cli"],
                            capture_output=True, text=True, timeout=120)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "llama_zoo.cli.models" in imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "transformers")}


def test_user_registry_entries_inherit_from_packaged_ones_and_are_validated(zoo, tmp_path):
    own = tmp_path / "mine"
    own.mkdir()
    entry = ("family: my-finetunes\nmodels:\n  - id: my-llama-3.1-8b-medical\n    name: My Llama 3.1 8B Medical\n"
             "    base: llama-3.1-8b-instruct\n    hf_repo: me/llama-3.1-8b-medical\n"
             "    derived_from: {how: fine-tuned, note: SFT on medical QA}\n    training: {data: medical QA pairs}\n")
    (own / "mine.yaml").write_text(entry)
    run = lambda *a, **env: zoo(*a, env=env)  # noqa: E731
    shown = json.loads(run("--registry", str(own), "models", "show", "me/llama-3.1-8b-medical", "--format", "json").stdout)
    assert shown["id"] == "my-llama-3.1-8b-medical" and shown["architecture"]["hidden_size"] == 4096
    assert shown["derived_from"]["parent"] == "llama-3.1-8b-instruct" and shown["tokenizer"]["chat_format"] == "llama3-header"
    assert run("models", "validate", LLAMA_ZOO_REGISTRY=str(own)).returncode == 0  # the variable works as the flag does
    assert run("models", "show", "my-llama-3.1-8b-medical").returncode == 2  # not without the directory

    (own / "mine.yaml").write_text(entry + "    architecture: {hidden_size: 4096}\n")
    restated = run("--registry", str(own), "models", "validate")
    assert restated.returncode != 0 and "hidden_size" in restated.stdout + restated.stderr
    (own / "mine.yaml").write_text(entry.replace("my-llama-3.1-8b-medical", "llama-3.1-8b"))
    clash = run("--registry", str(own), "models", "list")
    assert clash.returncode == 2 and "duplicate id 'llama-3.1-8b'" in clash.stderr
    missing = run("--registry", str(tmp_path / "nowhere"), "models", "list")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.slow
def test_the_console_script_prints_and_fails_as_in_process():
    """Once through a real interpreter: ``python -m llama_zoo`` answers, and a user error is one
    line with exit code 2 (the in-process ``zoo`` fixture runs the same ``main()``)."""
    run = lambda *a: subprocess.run([sys.executable, "-m", "llama_zoo", *a], capture_output=True,  # noqa: E731
                                    text=True, timeout=120)
    shown = run("models", "show", "llama-3.2-1b", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["derived"]["params"] == 1_235_814_400
    wrong = run("models", "show", "llama-3.1-8")
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.startswith("error: ") and "did you mean 'llama-3.1-8b'" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr
