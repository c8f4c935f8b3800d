"""Rough edges a new user hit in the first hour (issue #29): each is one clear line or a clean number."""

from __future__ import annotations

import re


def test_a_database_path_that_is_a_directory_says_so(zoo, tmp_path):
    out = zoo("runs", "list", "--db", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == (f"error: cannot open database sqlite:///{tmp_path}: {tmp_path} is a directory; give a "
                                  f"database file inside it, e.g. --db {tmp_path / 'results.db'}")


def test_models_diff_shows_numbers_without_float_noise(zoo):
    out = zoo("models", "diff", "llama-3.1-8b", "llama-3.2-1b")
    assert out.returncode == 0, out.stderr
    assert "fit_needed_bytes" in out.stdout
    assert not re.search(r"\d\.\d*0000\d|\d\.\d*9999\d", out.stdout), out.stdout  # 3014070681.6000004


def test_commands_that_print_a_table_or_json_refuse_csv_instead_of_printing_json(zoo, tmp_path):
    for args in (("bench", "--model", "llama-3.2-1b", "--shadow"), ("runs", "show", "abc")):
        out = zoo(*args, "--format", "csv", db=tmp_path / "r.db")
        assert out.returncode == 2 and "'csv' is not one of 'table', 'json'" in out.stderr, out.stderr
        assert not out.stdout.strip()
