"""Document filters the shipped Meta-protocol task YAMLs name (lm-eval imports this file by path)."""

NUMERIC_LABELS = {"1": "A", "2": "B", "3": "C", "4": "D"}


def arc_four_choices(dataset):
    """Meta's ARC-Challenge: only the questions with exactly four choices, labels A-D."""
    def relabel(doc):
        return {"answerKey": NUMERIC_LABELS.get(doc["answerKey"], doc["answerKey"])}

    return dataset.filter(lambda doc: len(doc["choices"]["text"]) == 4).map(relabel)
