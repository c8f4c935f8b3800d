"""Data in its publishers' own layouts, written by tests: a local snapshot of one of Meta's evals
datasets (``meta-llama/<Model>-evals``: README front matter naming each config's parquet files,
rows in Meta's columns) and of a hub dataset an lm-eval task reads (AI2's ARC), as
``huggingface-cli download --repo-type dataset --local-dir`` leaves them under ``$LLAMA_ZOO_DATA``."""

from __future__ import annotations

from pathlib import Path

INSTRUCT = "llama-3.2-1b-instruct"
PRETRAIN = "llama-3.2-1b"
SUBJECTS = ("mmlu_chem", "mmlu_law", "mmlu_math")
CHOICES = ("one", "two", "three", "four")


def instruct_prompt(question: str) -> str:
    """As Meta's 0-shot CoT MMLU prompt for Llama 3.2 instruct models: chat-formatted, no BOS."""
    options = "\n".join(f"{letter}. {text}" for letter, text in zip("ABCD", CHOICES))
    return ("<|start_header_id|>user<|end_header_id|>\n\nGiven the following question and four candidate answers "
            "(A, B, C and D), choose the best answer.\n\n"
            f"Question: {question}\n{options}\n\nYour response should end with \"The best answer is [the_answer_letter]\" "
            "where the [the_answer_letter] is one of A, B, C or D.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def pretrain_prompt(question: str, letter: str) -> str:
    """As Meta's 5-shot MMLU prompt for pretrained models (one example here), ending in an answer letter."""
    options = "\n".join(f"{a}. {text}" for a, text in zip("ABCD", CHOICES))
    return (f"The following are multiple choice questions (with answers) about science.\n\nWhat is 1 + 0?\n{options}\n"
            f"Answer: A\n\n{question}\n{options}\nAnswer: {letter}")


def instruct_rows(n: int = 12, max_gen_len: int = 1024) -> list[dict]:
    rows = []
    for i in range(n):
        gold = "ABCD"[i % 4]
        correct = i % 5 not in (0, 3)
        answer = gold if correct else "ABCD"[(i + 1) % 4]
        question = f"Question number {i}: which one?"
        rows.append({  # subjects of 3, 3 and 6 rows, so the macro average differs from the micro one
            "task_type": "Generative", "task_name": "mmlu", "subtask_name": SUBJECTS[min(i // 3, 2)],
            "input_question": question, "input_choice_list": {"A": "one", "B": "two", "C": "three", "D": "four"},
            "input_final_prompts": [instruct_prompt(question)], "input_correct_responses": [gold],
            "output_prediction_text": [f"Let me think. The best answer is {answer}."], "output_parsed_answer": answer,
            "output_choice_completions": None, "output_choice_negative_log_likelihoods": None,
            "output_metrics": {"acc": float(correct)}, "is_correct": correct,
            "input_question_hash": f"hash-{i:02d}", "input_final_prompts_hash": [f"p-{i:02d}"],
            "benchmark_label": "MMLU", "eval_config": {"max_gen_len": str(max_gen_len), "temperature": "0.0", "top_p": "0",
                                                       "num_generations": "1"},
        })
    return rows


def pretrain_rows(n: int = 8) -> list[dict]:
    rows = []
    for i in range(n):
        gold = "ABCD"[i % 4]
        question = f"Question number {i}: which one?"
        rows.append({
            "task_type": "Choice", "subtask_name": SUBJECTS[i % 2], "input_question": question,
            "input_final_prompts": [pretrain_prompt(question, a) for a in "ABCD"],
            "input_correct_responses": [f"Answer: {gold}"], "input_choice_list": {a: t for a, t in zip("ABCD", CHOICES)},
            "output_prediction_text": [""], "output_parsed_answer": gold if i % 2 else "A", "is_correct": i % 2 == 1,
            "input_question_hash": f"pre-{i:02d}",
        })
    return rows


def write_snapshot(root: Path, model_repo: str, configs: dict[str, list[dict]]) -> Path:
    """A local snapshot as `huggingface-cli download --repo-type dataset` leaves one: README.md whose
    front matter maps each config's split `latest` to its parquet file."""
    import pandas as pd

    name = f"{model_repo}-evals"
    snapshot = root / "meta-llama" / name
    (snapshot / name).mkdir(parents=True)
    lines = ["---", "configs:"]
    for bench, rows in configs.items():
        path = f"{name}/Details_{bench}_2024-09-23T17-22-43.parquet.gzip"
        pd.DataFrame(rows).to_parquet(snapshot / path, index=False)
        lines += [f"- config_name: {name}__{bench}__details", "  data_files:", "  - split: latest", f"    path: {path}"]
    (snapshot / "README.md").write_text("\n".join([*lines, "---", "", f"# {name}", ""]))
    return snapshot


def write_arc_snapshot(root: Path, train: int = 30, test: int = 10) -> Path:
    """``allenai/ai2_arc``'s ARC-Challenge config: parquet files per split and the README's configs.
    One question has three choices and one numeric labels, as a few of the real ones do."""
    import pandas as pd

    snapshot = root / "allenai" / "ai2_arc"
    (snapshot / "ARC-Challenge").mkdir(parents=True)

    def question(i: int) -> dict:
        texts = [f"{i + k} apples" for k in range(4)]
        if i == 3:
            return {"id": f"q{i}", "question": f"How many apples in box {i}?", "answerKey": "2",
                    "choices": {"text": texts, "label": ["1", "2", "3", "4"]}}
        if i == 5:
            return {"id": f"q{i}", "question": f"How many apples in box {i}?", "answerKey": "A",
                    "choices": {"text": texts[:3], "label": ["A", "B", "C"]}}
        return {"id": f"q{i}", "question": f"How many apples in box {i}?", "answerKey": "ABCD"[i % 4],
                "choices": {"text": texts, "label": list("ABCD")}}

    lines = ["---", "configs:", "- config_name: ARC-Challenge", "  data_files:"]
    for split, n, offset in (("train", train, 100), ("validation", 4, 200), ("test", test, 0)):
        path = f"ARC-Challenge/{split}-00000-of-00001.parquet"
        pd.DataFrame([question(offset + i) for i in range(n)]).to_parquet(snapshot / path, index=False)
        lines += [f"  - split: {split}", f"    path: {path}"]
    (snapshot / "README.md").write_text("\n".join([*lines, "---", "", "# ai2_arc", ""]))
    return snapshot
