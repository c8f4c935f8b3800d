"""Every run option declared once (``RunRequest``'s fields, ``Scale``, the selection flags), offered
under one spelling by every command that takes it, old spellings taken as hidden flags with a note;
and the one ``Executor`` protocol of the matrix. In process: ``main()`` with ``capsys``."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys

import pytest
import typer

from llama_zoo.cli import app, main
from llama_zoo.cli.options import SELECTION
from llama_zoo.orchestration.executors import SCALE_OPTIONS, Executor, Local, OnRay, Processes, portable
from llama_zoo.orchestration.loop import RUN_OPTIONS, RunRequest
from llama_zoo.orchestration.matrix import Cell

COMMANDS = ("eval", "bench", "plan")
DECLARED = (*SELECTION, *SCALE_OPTIONS, *RUN_OPTIONS)


def zoo(capsys, monkeypatch, *args: str, db) -> tuple[int, str, str]:
    """``llama-zoo ARGS`` in this process, as the console script runs it: exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["llama-zoo", *args])
    monkeypatch.setenv("LLAMA_ZOO_DB", str(db))
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err


def flags(command: str) -> dict:
    """The command's click options by each of their flags."""
    group = typer.main.get_command(app)
    return {flag: p for p in group.commands[command].params for flag in p.opts}


def suite_option(command: str, name: str):
    """The declaration a command's suite gives the flag instead (bench's scoring --batch-size), or None."""
    from llama_zoo.suites import SUITES

    if command != "bench":
        return None
    return {o.name: o for o in SUITES.get("bench").info.options}.get(name)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_declared_option_is_a_flag_of_exactly_the_commands_that_take_it(command):
    offered = flags(command)
    for option in DECLARED:
        if command not in option.commands:
            assert option.flag not in offered, f"{command} offers {option.flag}, declared for {option.commands}"
            continue
        param = offered[option.flag]
        assert not param.hidden and param.name == option.name
        declared = suite_option(command, option.name) or option
        if option.name not in ("suite", "dataset", "backend", "model", "gpu"):  # those list what is installed
            assert param.help == declared.help
        assert param.default == (declared.default if suite_option(command, option.name) else option.default_for(command))
        if option.choices:  # shown as the metavar; old spellings of values are taken, never shown
            assert param.metavar == "[" + "|".join(map(str, option.choices)) + "]"
        assert param.min == option.minimum and param.max == option.maximum
        assert param.multiple == option.many
        for old in option.alias_flags:  # old spellings: taken, never shown
            assert offered[old].hidden and offered[old] is not param


def test_the_commands_agree_on_spellings_and_values():
    """The flags the issue found spelled three ways: one spelling, one set of values, in every command."""
    eval_, bench, plan = (flags(c) for c in COMMANDS)
    for offered in (eval_, bench, plan):
        assert offered["--batch-size"].min == 1 and offered["--batch"].hidden
        assert offered["--dtype"].metavar == "[auto|float32|bfloat16|float16]"
    assert {"--quantize", "--limit", "--context"} <= plan.keys() and "--quantize" in eval_
    assert not bench["--max-new-tokens"].hidden and bench["--new-tokens"].hidden
    assert "--max-new-tokens" in eval_ and eval_["--new-tokens"].hidden  # eval --suite bench takes bench's flags too


def test_help_shows_the_flags_and_none_of_the_old_spellings(capsys, monkeypatch, tmp_path):
    code, out, _ = zoo(capsys, monkeypatch, "plan", "--help", db=tmp_path / "r.db")
    assert code == 0
    assert "--batch-size" in out and "--quantize" in out and "int4" in out and "bfloat16" in out
    assert not re.search(r"--batch(?![-\w])", out) and "bf16" not in out


def _plan(capsys, monkeypatch, *args: str, db) -> tuple[list[dict], str]:
    code, out, err = zoo(capsys, monkeypatch, "plan", "--model", "llama-3.1-70b", "--suite", "perplexity", *args,
                         "--format", "json", db=db)
    assert code == 0, err
    return json.loads(out), err


@pytest.mark.parametrize("old,new,note", [
    (("--batch", "8"), ("--batch-size", "8"), "note: --batch is deprecated: use --batch-size"),
    (("--dtype", "fp32"), ("--dtype", "float32"), "note: --dtype fp32 is deprecated: use --dtype float32"),
    (("--dtype", "int4"), ("--quantize", "int4"), "note: --dtype int4 is deprecated: use --quantize int4"),
])
def test_an_old_spelling_plans_the_same_with_a_one_line_note(old, new, note, capsys, monkeypatch, tmp_path):
    db = tmp_path / "r.db"
    before, noted = _plan(capsys, monkeypatch, *old, db=db)
    after, quiet = _plan(capsys, monkeypatch, *new, db=db)
    assert before == after
    assert noted.strip() == note and quiet == ""
    default, _ = _plan(capsys, monkeypatch, db=db)
    assert default != after  # the flag did something: the comparison is not between two defaults


def test_plan_takes_the_quantize_it_recommends(capsys, monkeypatch, tmp_path):
    cells, _ = _plan(capsys, monkeypatch, "--context", "8192", db=tmp_path / "r.db")
    recommended = cells[0]["quantized_gpus"]
    assert recommended and cells[0]["dtype"] == "bf16"
    for scheme, gpus in recommended.items():
        planned, _ = _plan(capsys, monkeypatch, "--context", "8192", "--quantize", scheme, db=tmp_path / "r.db")
        assert planned[0]["gpus"] == gpus and planned[0]["dtype"] == scheme


@pytest.mark.parametrize("args,flag", [
    (("plan", "--model", "llama-3.1-8b", "--batch-size", "0"), "--batch-size"),
    (("plan", "--model", "llama-3.1-8b", "--batch", "0"), "--batch"),
    (("plan", "--model", "llama-3.1-8b", "--context", "1"), "--context"),
    (("plan", "--model", "llama-3.1-8b", "--dtype", "float8"), "--dtype"),
    (("bench", "--model", "llama-3.2-1b", "--shadow", "--max-new-tokens", "0"), "--max-new-tokens"),
    (("bench", "--model", "llama-3.2-1b", "--shadow", "--iters", "0"), "--iters"),
    (("eval", "--model", "llama-3.2-1b", "--shadow", "--limit", "0"), "--limit"),
    (("eval", "--model", "llama-3.2-1b", "--shadow", "--parallel", "0"), "--parallel"),
    (("eval", "--model", "llama-3.2-1b", "--shadow", "--quantize", "int3"), "--quantize"),
    (("eval", "--model", "llama-3.2-1b", "--shadow", "--executor", "slurm"), "--executor"),
])
def test_a_value_outside_its_declaration_is_one_line_exit_2(args, flag, capsys, monkeypatch, tmp_path):
    code, _, err = zoo(capsys, monkeypatch, *args, db=tmp_path / "r.db")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and flag in err and "Traceback" not in err


@pytest.mark.slow  # bench runs on shadow weights, four times: seconds each
def test_bench_old_and_new_spellings_store_the_same_shape(capsys, monkeypatch, tmp_path):
    from llama_zoo.results.store import Store

    db = tmp_path / "r.db"
    common = ("bench", "--model", "llama-3.2-1b", "--shadow", "--context", "32", "--gen-batch", "1", "--iters", "1",
              "--device", "cpu", "--format", "json")
    runs = []
    for spelling in (("--batch", "2", "--new-tokens", "3", "--dtype", "fp32"),
                     ("--batch-size", "2", "--max-new-tokens", "3", "--dtype", "float32")):
        code, out, err = zoo(capsys, monkeypatch, *common, *spelling, db=db)
        assert code == 0, err
        runs.append((json.loads(out)["run_id"], err))
    store = Store.open(str(db))
    (old, noted), (new, quiet) = runs
    shape = [{k: store.get(r)[k] for k in ("options", "dtype", "suite")} for r in (old, new)]
    assert shape[0] == shape[1] and shape[0]["options"]["batch"] == 2 and shape[0]["options"]["new_tokens"] == 3
    assert shape[0]["dtype"] == "float32"
    assert sorted(noted.splitlines()) == ["note: --batch is deprecated: use --batch-size",
                                          "note: --dtype fp32 is deprecated: use --dtype float32",
                                          "note: --new-tokens is deprecated: use --max-new-tokens"]
    assert quiet == ""


def test_every_run_option_is_a_declared_field():
    """``RunRequest``'s fields are the declarations: only the model, the suite and the option mappings are not flags."""
    declared = {o.name for o in RUN_OPTIONS}
    fields = {f.name for f in dataclasses.fields(RunRequest)}
    assert fields - declared == {"model", "suite", "suite_options", "backend_options"}
    assert all(o.commands and o.help for o in DECLARED)
    defaults = {f.name: f.default for f in dataclasses.fields(RunRequest) if f.name in declared}
    assert defaults == {o.name: o.default for o in RUN_OPTIONS}


def test_portable_makes_declared_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tok").mkdir()
    (tmp_path / "data.txt").write_text("x")
    request = portable(RunRequest("llama-3.2-1b", tokenizer="tok", dataset="data.txt", weights="absent",
                                  suite_options={"include": "tok"}))
    assert request.tokenizer == str(tmp_path / "tok") and request.dataset == str(tmp_path / "data.txt")
    assert request.weights == "absent" and request.model == "llama-3.2-1b"  # a name stays a name
    assert request.suite_options == {"include": str(tmp_path / "tok")}


def test_each_executor_satisfies_the_protocol(tmp_path):
    from llama_zoo.results.store import Store

    store = Store.open(str(tmp_path / "r.db"))
    executors = (Local(store), Processes("sqlite:///x.db", 2), OnRay(ray=None, db_url="sqlite:///x.db", gpus_for=lambda c, g: 0))
    protocol = inspect.signature(Executor.run)
    for executor in executors:
        assert isinstance(executor, Executor) and isinstance(executor.where, str)
        assert inspect.signature(type(executor).run) == protocol, type(executor).__name__
    assert [e.where for e in executors] == ["", " in 2 processes", " on Ray"]
    assert not isinstance(object(), Executor)


@pytest.mark.slow
def test_a_tiny_matrix_through_the_local_executor(tmp_path):
    from llama_zoo.results.store import Store

    store = Store.open(str(tmp_path / "r.db"))
    started, done = [], []
    executor: Executor = Local(store, on_start=started.append)
    cells = [Cell("llama-3.2-1b", "perplexity"), Cell("llama-9-1b", "perplexity")]

    def request_for(cell: Cell) -> RunRequest:
        return RunRequest(cell.model, cell.suite, shadow=True, limit=2, context=64, device="cpu")

    finished = executor.run(cells, request_for, on_done=done.append, headline_of=lambda suite: "word_perplexity")
    assert [c.status for c in finished] == ["completed", "failed"] and started == done == cells
    assert finished[0].headline == "word_perplexity" and finished[0].value > 1 and finished[0].run_id
    assert "unknown model 'llama-9-1b'" in finished[1].error
    again = Local(store).run([Cell("llama-3.2-1b", "perplexity")], request_for)
    assert again[0].status == "cached" and again[0].run_id == finished[0].run_id
    with pytest.raises(Exception, match="llama-9-1b"):
        Local(store).run([Cell("llama-9-1b", "perplexity"), Cell("llama-3.2-1b", "perplexity")], request_for,
                         fail_fast=True)
