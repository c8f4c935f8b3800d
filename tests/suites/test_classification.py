"""Classifier metrics equal scikit-learn's: on random scores with ties, and end to end through
``--predictions-file`` over XSTest, where every stored metric is recomputed with scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llama_zoo.suites.core.classification import at_threshold, auroc, average_precision, metric_rows, recall_at_fpr
from tests.needs import needs
from tests.zoo import data_env

pytestmark = needs("sklearn", reason="the agreement tests compare with scikit-learn")


def random_case(rng):
    n = int(rng.integers(5, 400))
    labels = rng.integers(0, 2, n)
    labels[0], labels[1] = 0, 1  # both classes present
    scores = np.round(rng.random(n), int(rng.integers(1, 4)))  # coarse rounding makes ties
    return scores, labels


@pytest.mark.slow
def test_metrics_equal_scikit_learn_on_random_scores_with_ties():
    from sklearn import metrics as sklearn

    rng = np.random.default_rng(7)
    for _ in range(200):
        s, y = random_case(rng)
        assert average_precision(s, y) == pytest.approx(sklearn.average_precision_score(y, s), abs=1e-12)
        assert auroc(s, y) == pytest.approx(sklearn.roc_auc_score(y, s), abs=1e-12)
        # drop_intermediate=False: scikit-learn's default drops collinear corners, and one of them can
        # be the best operating point under 1% FPR
        fpr, tpr, _ = sklearn.roc_curve(y, s, drop_intermediate=False)
        assert recall_at_fpr(s, y, 0.01) == pytest.approx(tpr[fpr <= 0.01].max(), abs=1e-12)
        p, r, f, _ = sklearn.precision_recall_fscore_support(y, s >= 0.5, average="binary", zero_division=0)
        tn, fp, fn, tp = sklearn.confusion_matrix(y, s >= 0.5, labels=[0, 1]).ravel()
        ours = at_threshold(s, y)
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f), abs=1e-12)
        assert ours["fpr"] == pytest.approx(fp / (fp + tn), abs=1e-12)


def test_undefined_metrics_are_left_out_not_stored_as_nan():
    rows = metric_rows([0.2, 0.9, 0.7], [1, 1, 1], ("auroc", "auprc", "fpr", "recall"))
    assert {r["name"] for r in rows} == {"recall"}  # no negatives: no AUROC, no FPR, and AUPRC would be 1.0 whatever the scores
    rows = metric_rows([0.2, 0.9, 0.7], [0, 0, 0], ("f1", "precision", "recall", "fpr"))
    assert {r["name"]: r["value"] for r in rows} == {"precision": 0.0, "fpr": 2 / 3}  # no positives: no recall, no F1


def xstest_rows(shared):
    import csv

    with open(shared / "safety" / "xstest" / "xstest_prompts.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("suite", ["guard", "prompt-guard"])
def test_predictions_file_metrics_equal_scikit_learn(zoo, suite, shared, tmp_path):
    from sklearn import metrics as sklearn

    rows = xstest_rows(shared)
    rng = np.random.default_rng(3)
    scores = rng.random(len(rows))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": r["id"], "unsafe_score": float(s)}) + "\n" for r, s in zip(rows, scores)))
    model = "llama-guard-3-1b" if suite == "guard" else "prompt-guard-86m"
    out = zoo("eval", "--model", model, "--suite", suite, "--dataset", "xstest", "--predictions-file", str(predictions),
              "--format", "json", db=tmp_path / "r.db", env=data_env(shared))
    assert out.returncode == 0, out.stderr
    got = {k: v["value"] for k, v in json.loads(out.stdout)["metrics"].items()}
    y = np.array([1 if r["label"] == "unsafe" else 0 for r in rows])
    p, r, f, _ = sklearn.precision_recall_fscore_support(y, scores >= 0.5, average="binary", zero_division=0)
    tn, fp, fn, tp = sklearn.confusion_matrix(y, scores >= 0.5, labels=[0, 1]).ravel()
    fpr_curve, tpr_curve, _ = sklearn.roc_curve(y, scores, drop_intermediate=False)
    expected = {"auprc": sklearn.average_precision_score(y, scores), "auroc": sklearn.roc_auc_score(y, scores),
                "f1": f}
    if suite == "guard":
        expected.update(precision=p, recall=r, fpr=fp / (fp + tn))
    else:
        expected.update({"recall_at_1pct_fpr": tpr_curve[fpr_curve <= 0.01].max(), "tpr@0.5": r, "fpr@0.5": fp / (fp + tn)})
        hi = scores >= 0.9
        expected.update({"tpr@0.9": hi[y == 1].mean(), "fpr@0.9": hi[y == 0].mean()})
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


@pytest.mark.parametrize("lines,message", [
    ([{"id": "1", "unsafe_score": 0.2}], "no prediction for 449 of 450 rows"),
    ([{"id": "no-such-id", "unsafe_score": 0.2}], "id 'no-such-id' is not in the dataset"),
    ([{"id": "1", "unsafe_score": 1.5}], "unsafe_score 1.5 is not a number in [0, 1]"),
    ([{"id": "1", "unsafe_score": "high"}], "unsafe_score 'high' is not a number in [0, 1]"),
    ([{"id": "1", "unsafe_score": 0.1}, {"id": "1", "unsafe_score": 0.1}], "id '1' appears twice"),
    ([{"prompt": "x"}], "expected {\"id\": ..., \"unsafe_score\": ...}"),
])
def test_bad_predictions_file_is_one_line_and_nothing_is_stored(zoo, lines, message, shared, tmp_path):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps(x) + "\n" for x in lines))
    db = tmp_path / "r.db"
    out = zoo("eval", "--model", "llama-guard-3-1b", "--suite", "guard", "--dataset", "xstest",
              "--predictions-file", str(predictions), db=db, env=data_env(shared))
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    runs = json.loads(zoo("runs", "list", "--format", "json", db=db).stdout)
    assert runs == []


@pytest.mark.slow
def test_per_category_metrics_use_the_rows_that_label_the_category(zoo, shared, tmp_path):
    """OpenAI moderation: a category is scored on the prompts that label it (a missing key is unlabelled)."""
    import gzip

    from sklearn import metrics as sklearn

    rows = [json.loads(line) for line in gzip.open(shared / "safety" / "openai_moderation" / "samples-1680.jsonl.gz")]
    scores = np.random.default_rng(5).random(len(rows))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": str(i), "unsafe_score": float(s)}) + "\n" for i, s in enumerate(scores)))
    out = zoo("eval", "--model", "llama-guard-3-8b", "--suite", "guard", "--dataset", "openai-moderation",
              "--predictions-file", str(predictions), "--format", "json", db=tmp_path / "r.db", env=data_env(shared))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)["metrics"]
    y_any = np.array([int(any(r.get(c) == 1 for c in ("S", "H", "V", "HR", "SH", "S3", "H2", "V2"))) for r in rows])
    assert got["auprc"]["value"] == pytest.approx(sklearn.average_precision_score(y_any, scores), abs=1e-12)
    for category in ("S", "HR", "V2"):
        held = [i for i, r in enumerate(rows) if r.get(category) is not None]
        y = np.array([rows[i][category] for i in held])
        assert got[f"category/{category}/auprc"]["n"] == len(held)
        assert got[f"category/{category}/auprc"]["value"] == pytest.approx(
            sklearn.average_precision_score(y, scores[held]), abs=1e-12)


def test_verdicts_made_elsewhere_and_compare_on_one_class_data(zoo, tmp_path, shared):
    """A benign-only set: F1 and AUPRC are undefined and left out; compare still runs McNemar."""
    data = tmp_path / "benign.csv"
    data.write_text("prompt,label\n" + "".join(f"question {i},safe\n" for i in range(8)))
    runs = []
    for k, verdicts in enumerate(([True] * 3 + [False] * 5, ["unsafe\nS1"] + ["safe"] * 7)):
        predictions = tmp_path / f"p{k}.jsonl"
        predictions.write_text("".join(json.dumps({"id": str(i), "unsafe_score": 0.9 if i < 3 - 2 * k else 0.1, "verdict": v}) + "\n"
                                       for i, v in enumerate(verdicts)))
        out = zoo("eval", "--model", "llama-guard-3-1b", "--suite", "guard", "--dataset", str(data), "--predictions-file",
                  str(predictions), "--format", "json", db=tmp_path / "r.db", env=data_env(shared))
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout))
    first, second = (r["metrics"] for r in runs)
    assert "f1" not in first and "auprc" not in first and first["fpr"]["value"] == pytest.approx(3 / 8)
    assert first["verdict_unsafe_fpr"]["value"] == pytest.approx(3 / 8)  # a boolean verdict: true is unsafe
    assert second["verdict_unsafe_fpr"]["value"] == pytest.approx(1 / 8)  # a Guard's own answer, categories and all
    out = zoo("compare", runs[0]["run_id"], runs[1]["run_id"], "--format", "json", db=tmp_path / "r.db", env=data_env(shared))
    assert out.returncode == 0, out.stderr
    assert [r["metric"] for r in json.loads(out.stdout)["rows"]] == ["accuracy at 0.5"]
