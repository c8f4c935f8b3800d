"""lm-eval's task index is parsed once per machine: a second TaskManager over the same files reads
it from the cache, and an edited task file is parsed again."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("lm_eval", reason="the lm-eval extra is not installed")

TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: data.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{{{q}}}}"
doc_to_target: "{{{{a}}}}"
metric_list:
  - metric: exact_match
"""


def test_the_index_is_read_from_the_cache_until_a_task_file_changes(tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager, manager

    from llama_zoo.suites.lm_eval_tasks.index_cache import cache_dir, cached_builds

    monkeypatch.setenv("LLAMA_ZOO_CACHE", str(tmp_path / "cache"))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "a.yaml").write_text(TASK.format(name="zoo_cached_a"))
    builds = []
    original = manager.TaskIndex.build

    def counted(paths, **kwargs):
        builds.append(list(paths))
        return original(paths, **kwargs)

    monkeypatch.setattr(manager.TaskIndex, "build", staticmethod(counted))

    def tasks_seen():
        with cached_builds():
            return set(TaskManager(include_path=[str(tasks)], include_defaults=False).all_tasks)

    assert tasks_seen() == {"zoo_cached_a"} and len(builds) == 1
    assert len(list(cache_dir().glob("*.pickle"))) == 1
    assert tasks_seen() == {"zoo_cached_a"} and len(builds) == 1  # from the cache
    (tasks / "b.yaml").write_text(TASK.format(name="zoo_cached_b"))
    assert tasks_seen() == {"zoo_cached_a", "zoo_cached_b"} and len(builds) == 2  # a task added
    (tasks / "a.yaml").write_text(TASK.format(name="zoo_cached_c"))
    os.utime(tasks / "a.yaml", ns=(1, 1))  # an edit that even keeps the size and sets an old time
    assert tasks_seen() == {"zoo_cached_b", "zoo_cached_c"} and len(builds) == 3
    assert manager.TaskIndex.build is not None and manager.TaskIndex.__name__ == "TaskIndex"  # put back


def test_a_template_without_an_extension_is_part_of_the_key(tmp_path):
    """lm-eval's includes are often extensionless (_default_template_yaml) and set names and tags."""
    from llama_zoo.suites.lm_eval_tasks.index_cache import fingerprint

    (tmp_path / "a.yaml").write_text("include: _default_template_yaml\ntask: a\n")
    (tmp_path / "_default_template_yaml").write_text("tag: one\n")
    before = fingerprint([tmp_path])
    (tmp_path / "_default_template_yaml").write_text("tag: two_\n")
    assert fingerprint([tmp_path]) != before
