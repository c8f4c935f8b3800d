"""A page of a run's samples, filtered in the database (the viewer's reads), on SQLite and
PostgreSQL; and a store opened read-only reads and refuses to write, on both."""

from __future__ import annotations

import pytest

from llama_zoo.errors import LlamaZooError
from llama_zoo.results.identity import RunConfig
from llama_zoo.results.store import SampleFilter, Store

CONFIG = RunConfig(model_id="llama-2-7b", spec_hash="s", suite="humaneval", suite_version="1", backend="hf",
                   weights_source="hub", dataset_name="d", dataset_hash="d", options={})


def _written(db_url: str) -> str:
    store = Store.open(db_url)
    with store.begin(CONFIG) as run:
        for i in range(30):
            run.add(i, input=f"prompt {i}", output="Needle" if i % 7 == 0 else "hay",
                    scores={"passed": i % 3 == 0, "score": i / 10})
        run.complete([])
    store.close()
    return run.run_id


def test_a_page_after_an_index_by_verdict_score_and_text(db_url):
    run_id = _written(db_url)
    store = Store.open(db_url, read_only=True)

    def page(chosen, after=-1, limit=50):
        return [s["idx"] for s in store.sample_page(run_id, chosen, after, limit)]

    assert page(SampleFilter(), after=4, limit=3) == [5, 6, 7]
    assert page(SampleFilter(passed=False, verdict_key="passed"), limit=4) == [1, 2, 4, 5]
    assert page(SampleFilter(passed=True, verdict_key="passed"), after=20) == [21, 24, 27]
    assert page(SampleFilter(score_key="score", low=1.0, high=1.3)) == [10, 11, 12, 13]
    assert page(SampleFilter(text="needle")) == [0, 7, 14, 21, 28]  # any case, prompt or output
    assert page(SampleFilter(text="prompt 2", passed=True, verdict_key="passed")) == [21, 24, 27]
    assert page(SampleFilter(text="100%_")) == []  # LIKE's wildcards are taken literally
    store.close()


def test_a_store_opened_read_only_reads_and_writes_nothing(db_url):
    run_id = _written(db_url)
    store = Store.open(db_url, read_only=True)
    assert store.get(run_id)["samples_stored"] == 30
    with pytest.raises(LlamaZooError) as refused:
        store.delete(run_id)
    assert "cannot use database" in str(refused.value) and len(str(refused.value).splitlines()) == 1
    store.close()
    assert Store.open(db_url).get(run_id)["samples_stored"] == 30
