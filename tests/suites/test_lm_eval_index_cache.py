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


def test_the_cached_index_keeps_what_building_a_task_or_a_group_reads(tmp_path, monkeypatch):
    """A task's parsed YAML is dropped from the cache (lm-eval reads its file again when it builds
    it); a group's is kept (``leaf_tasks`` reads its members from it). A task built through the slim
    index has the same config as one built through lm-eval's own."""
    from lm_eval.tasks import TaskManager, get_task_dict

    from llama_zoo.suites.lm_eval_tasks.index_cache import cached_builds

    monkeypatch.setenv("LLAMA_ZOO_CACHE", str(tmp_path / "cache"))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "data.jsonl").write_text('{"q": "1+1", "a": "2"}\n')
    (tasks / "a.yaml").write_text(TASK.format(name="zoo_slim_a").replace("data.jsonl", str(tasks / "data.jsonl")))
    (tasks / "g.yaml").write_text("group: zoo_slim_group\ntask:\n  - zoo_slim_a\n")
    for _ in range(2):  # built, then read from the cache
        with cached_builds():
            slim = TaskManager(include_path=[str(tasks)], include_defaults=False)
        assert slim.task_index["zoo_slim_a"].cfg is None
        assert slim.task_index["zoo_slim_group"].cfg["task"] == ["zoo_slim_a"]
    full = TaskManager(include_path=[str(tasks)], include_defaults=False)
    assert full.task_index["zoo_slim_a"].cfg is not None

    def config(manager):
        task = get_task_dict(["zoo_slim_a"], manager)["zoo_slim_a"]
        return {k: v for k, v in task.config.to_dict().items() if k != "metadata"}, list(task.eval_docs)

    assert config(slim) == config(full)


def test_the_cache_keeps_the_indexes_used_last(tmp_path, monkeypatch):
    from llama_zoo.suites.lm_eval_tasks import index_cache

    monkeypatch.setenv("LLAMA_ZOO_CACHE", str(tmp_path))
    for i in range(index_cache.KEPT + 3):
        index_cache._write(index_cache.cache_dir() / f"{i}.pickle", {"i": i})
        os.utime(index_cache.cache_dir() / f"{i}.pickle", ns=(i * 10**9, i * 10**9))
    kept = sorted(int(p.stem) for p in index_cache.cache_dir().glob("*.pickle"))
    assert kept == list(range(3, index_cache.KEPT + 3))  # the newest KEPT: each write pruned the oldest
