"""The model card (README.md) every checkpoint carries, in the Hugging Face Hub's format: YAML front
matter the Hub reads (library, pipeline, tags, data, metric values), then what a reader needs to judge
or redo the run. It is written from run_config.json's values alone, so it never states what the run
did not record (a field a run lacks is left out, not guessed)."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from trainables import metrics as m
from trainables.data_sources import TASK_MULTIPLE_CHOICE, looks_like_path

CARD = "README.md"  # the Hub shows a model's README.md as its card

METHOD_TEXT = {
    "supervised": "plain supervised fine-tuning of the student on the gold labels of the training split",
    "kd": "knowledge distillation (Hinton et al. 2015) from the teacher ensemble's soft labels on the whole "
          "training split, mixed with the gold labels by `alpha`",
    "active_loop": "the Expert-Loop: the student starts from a small gold-labelled pool, queries the pool "
                   "examples it is least sure of, the teacher ensemble labels them and the student is "
                   "distilled on them, round after round",
}
METHOD_TAGS = {"supervised": [], "kd": ["knowledge-distillation"],
               "active_loop": ["active-learning", "knowledge-distillation"]}
# Settings that mean something only for some methods: the card lists a method's own settings, not
# defaults it never read (a supervised card showing alpha 0.7 would suggest a distillation).
_DISTILLATION = ("temperature", "alpha")
_LOOP = ("initial_pool_size", "query_size", "max_iterations", "strategy", "expert", "warm_start",
         "skip_fraction", "pool_sample_size")
# (metric, what it counts): the label accounting of README.md "Reading the results", in its words.
LABEL_COUNTS = (
    (m.LABELS_USED, "gold labels the student's loss read"),
    (m.VALIDATION_LABELS, "gold labels of the validation split, which chose the settings"),
    (m.TEACHER_LABELS, "gold labels the teachers were fine-tuned on (0 for teachers given as checkpoints)"),
    (m.EXPERT_QUERIES, "examples the teacher ensemble labelled in answer to a query (kd: the whole split)"),
    (m.TEACHER_LABELLED_ROWS, "rows whose teacher targets the student's loss read"),
)
TEACHER_PREFIX = "teacher_accuracy/"


def model_card(run_config: dict) -> str:
    return "---\n" + yaml.safe_dump(front_matter(run_config), sort_keys=False) + "---\n\n" + body(run_config)


def front_matter(run_config: dict) -> dict:
    method, data = run_config["trial"]["method"], _data(run_config)
    pipeline_tag = "multiple-choice" if run_config.get("task") == TASK_MULTIPLE_CHOICE else "text-classification"
    card = {"library_name": "transformers", "pipeline_tag": pipeline_tag,
            "tags": ["expert-loop", method.replace("_", "-"), *METHOD_TAGS.get(method, [])],
            "datasets": [data_name(data)], "metrics": ["accuracy", "f1"]}
    results = [_result(run_config, pipeline_tag, split, prefix) for split, prefix in
               (("validation", "val_"), ("test", "test_")) if _number(_metrics(run_config), prefix + "accuracy")]
    if results:  # the Hub's place for evaluation results
        card["model-index"] = [{"name": f"{method}-{short_name(data.get('student', 'student'))}",
                                "results": results}]
    return card


def _result(run_config: dict, pipeline_tag: str, split: str, prefix: str) -> dict:
    values, name = _metrics(run_config), data_name(_data(run_config))
    scores = [{"type": "accuracy", "value": values[prefix + "accuracy"], "name": f"{split} accuracy"}]
    if _number(values, prefix + "macro_f1"):
        scores.append({"type": "f1", "value": values[prefix + "macro_f1"], "name": f"{split} macro-F1",
                       "args": {"average": "macro"}})
    return {"task": {"type": pipeline_tag}, "dataset": {"name": name, "type": name, "split": split},
            "metrics": scores}


def body(run_config: dict) -> str:
    method, data = run_config["trial"]["method"], _data(run_config)
    title = f"# {method} student `{short_name(data.get('student', '?'))}` on `{data_name(data)}`\n\n"
    intro = f"Trained by expert-loop, method `{method}`: {METHOD_TEXT.get(method, method)}.\n\n"
    sections = (data_section, settings_section, metrics_section, labels_section, teachers_section,
                reproduce_section)
    return title + intro + "\n".join(section(run_config) for section in sections)


def data_section(run_config: dict) -> str:
    data, names = _data(run_config), run_config.get("label_names", [])
    lines = [f"- data: `{data_name(data)}` ({run_config.get('task', '?')}, {len(names)} classes: "
             f"{', '.join(f'`{n}`' for n in names)}); fingerprint `{_provenance(run_config).get('data_fingerprint')}`"]
    sizes = _provenance(run_config).get("split_sizes")
    if sizes:
        lines.append("- split: " + " / ".join(f"{count} {split}" for split, count in sizes.items())
                     + f" examples (stratified, seed {data.get('split_seed')}; a data set's own splits win)")
    if data.get("max_train_examples"):
        lines.append(f"- training split capped at a stratified {data['max_train_examples']} examples")
    if "max_length" in data:
        lines.append(f"- sequences truncated to {data['max_length']} tokens")
    if run_config["trial"]["method"] != "supervised" and "teacher_split" in data:
        share = data["teacher_split"]
        lines.append("- teachers fine-tuned on " + (f"a disjoint stratified {share:.0%} of the training split, "
                                                    "which the Expert-Loop's pool excludes" if share
                                                    else "the whole training split"))
    return "## Data and split\n\n" + "\n".join(lines) + "\n"


def settings_section(run_config: dict) -> str:
    trial, metrics = run_config["trial"], _metrics(run_config)
    rows = [f"| `{name}` | {value} |" for name, value in trial.items() if _applies(name, trial["method"])]
    lines = ["## Method and settings", "", "| setting | value |", "|---|---|", *rows, ""]
    # A sweep's trial may have been stopped early: say how far this checkpoint got of what was planned.
    for unit, planned in ((m.ROUND, "max_iterations"), (m.EPOCH, "epochs")):
        if unit in metrics:
            lines.append(f"Saved after {unit} {metrics[unit]}" + (f" of {trial[planned]}" if planned in trial else "")
                         + ".\n")
            break
    return "\n".join(lines)


def metrics_section(run_config: dict) -> str:
    values = _metrics(run_config)
    rows = [f"| {split} | " + " | ".join(_show(values, f"{prefix}_{name}") for name in ("accuracy", "macro_f1", "loss"))
            + " |" for split, prefix in (("validation", "val"), ("test", "test"))]
    return "\n".join(["## Metrics", "", "| split | accuracy | macro-F1 | loss |", "|---|---|---|---|", *rows, "",
                      "Settings are chosen on validation accuracy; test figures are for the record only.", ""])


def labels_section(run_config: dict) -> str:
    values = _metrics(run_config)
    rows = [f"| `{name}` | {values[name]} | {meaning} |" for name, meaning in LABEL_COUNTS if name in values]
    if not rows:
        return ""
    return "\n".join(["## Label accounting", "", "A label counts when the student's loss reads it.", "",
                      "| count | value | what it counts |", "|---|---|---|", *rows, ""])


def teachers_section(run_config: dict) -> str:
    accuracy = teacher_accuracies(_metrics(run_config))
    if run_config["trial"]["method"] == "supervised":
        return "## Teachers\n\nNone: this method learns from gold labels only.\n"
    if not accuracy:
        return "## Teachers\n\nThe run recorded no teacher accuracy.\n"
    rows = [f"| `{name}` | {_show(split, 'val')} | {_show(split, 'test')} |" for name, split in accuracy.items()]
    lines = ["## Teachers", "", "| teacher | validation accuracy | test accuracy |", "|---|---|---|", *rows, ""]
    if _number(_metrics(run_config), m.EXPERT_LABEL_ACCURACY):
        lines.append(f"The ensemble's labels matched the hidden gold label on "
                     f"{_metrics(run_config)[m.EXPERT_LABEL_ACCURACY]:.1%} of the rows it labelled.\n")
    return "\n".join(lines)


def reproduce_section(run_config: dict) -> str:
    method, max_length = run_config["trial"]["method"], _data(run_config).get("max_length", 128)
    if run_config.get("task") == TASK_MULTIPLE_CHOICE:  # transformers has no multiple-choice pipeline
        usage = ('from transformers import AutoModelForMultipleChoice\n\n'
                 'model = AutoModelForMultipleChoice.from_pretrained("CHECKPOINT")\n')
    else:  # truncated as in training, so long texts get the predictions evaluate.py measures
        usage = ('from transformers import pipeline\n\n'
                 'classifier = pipeline("text-classification", model="CHECKPOINT")\n'
                 f'classifier(["a review to classify"], truncation=True, max_length={max_length})\n')
    return (f"## Reproduce and use\n\n`run_config.json` beside this card holds every setting, the seed and the "
            f"data settings; train it again (to the planned last epoch or round) with\n\n"
            f"```\npython tuning/train.py --method {method} --config CHECKPOINT/run_config.json\n```\n\n"
            f"where CHECKPOINT is this folder. Evaluate it with "
            f"`python tuning/evaluate.py --checkpoint CHECKPOINT --split test`, or load it with transformers:\n\n"
            f"```python\n{usage}```\n")


def teacher_accuracies(metrics: dict) -> dict[str, dict[str, float]]:
    """{'ensemble': {'val': x, 'test': y}, ...} out of 'teacher_accuracy/<name>/<split>' metrics."""
    found: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(TEACHER_PREFIX):
            name, _, split = key[len(TEACHER_PREFIX):].rpartition("/")  # hub names may hold a '/'
            found.setdefault(name, {})[split] = value
    return found


def data_name(data: dict) -> str:
    return short_name(data.get("dataset", "unknown"))


def short_name(name: str) -> str:
    """A data set or model as the card names it: a preset or hub name as given, a local file or folder by
    its last part only (its full path says where it was on one machine, nothing about it)."""
    return Path(str(name)).name if looks_like_path(str(name)) else str(name)


def _applies(setting: str, method: str) -> bool:
    if setting in _LOOP:
        return method == "active_loop"
    return setting not in _DISTILLATION or method != "supervised"


def _provenance(run_config: dict) -> dict:
    return run_config.get("provenance") or {}


def _data(run_config: dict) -> dict:
    return _provenance(run_config).get("data") or {}


def _metrics(run_config: dict) -> dict:
    return run_config.get("metrics") or {}


def _number(values: dict, key: str) -> bool:
    value = values.get(key)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _show(values: dict, key: str) -> str:
    return f"{values[key]:.4f}" if _number(values, key) else "-"
