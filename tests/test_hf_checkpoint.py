"""A checkpoint is a Hugging Face model as it is: config.json names the data's labels, transformers'
AutoModel and pipeline load the folder and predict what tuning/evaluate.py predicts, and its model card
(README.md, the Hub's format) states what run_config.json holds, including how to redo the run."""

import json

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from trainables.errors import UsageError
from trainables.model_card import CARD, model_card
from tuning import evaluate, train
from tuning.assets.prepare import DataSettings, load_data

SMOKE_NAMES = ["ambivalent", "negative", "neutral", "positive"]  # the smoke data's classes, sorted
COUNTS = ("labels_used", "validation_labels", "teacher_labels", "expert_queries", "teacher_labelled_rows")


@pytest.fixture(scope="module")
def kd_run(tmp_path_factory, session_cache):
    """A kd smoke run through tuning/train.py (float32, so transformers' own float32 forward pass is
    the same computation), and its run_config.json as written. It fine-tunes the two teachers first
    (about 25 s on 2 busy cores): the tests that read it are marked slow, out of `make test-fast`."""
    out = tmp_path_factory.mktemp("kd") / "run"
    assert train.main(["--method", "kd", "--smoke-test", "--out", str(out), "--set", "epochs=2",
                       "--set", "bf16=false"]) == 0
    return out, json.loads((out / "run_config.json").read_text())


@pytest.mark.slow
def test_config_json_names_the_data_labels(kd_run):
    out, run_config = kd_run
    config = json.loads((out / "config.json").read_text())
    assert run_config["label_names"] == SMOKE_NAMES
    assert config["id2label"] == {str(index): name for index, name in enumerate(SMOKE_NAMES)}
    assert config["label2id"] == {name: index for index, name in enumerate(SMOKE_NAMES)}


@pytest.mark.slow
def test_automodel_and_pipeline_predict_what_evaluate_predicts(kd_run, capsys):
    out, run_config = kd_run
    result = evaluate.evaluate_checkpoint(out, "test")
    texts = list(load_data(DataSettings.from_dict(run_config["provenance"]["data"])).test.text)
    max_length = run_config["provenance"]["data"]["max_length"]

    model = AutoModelForSequenceClassification.from_pretrained(out, use_safetensors=True).eval()
    inputs = AutoTokenizer.from_pretrained(out)(texts, padding=True, truncation=True, max_length=max_length,
                                                return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits.numpy()
    np.testing.assert_allclose(logits, result.logits, atol=1e-4)  # padding differs, nothing else
    assert (logits.argmax(axis=1) == result.predictions).all()

    classifier = pipeline("text-classification", model=str(out))  # the folder as it is: no arguments
    answers = classifier(texts, truncation=True, max_length=max_length)  # as the model card shows
    predicted = [answer["label"] for answer in answers]
    assert predicted == [SMOKE_NAMES[index] for index in result.predictions]

    # ... and what evaluate.py prints agrees with the pipeline's answers.
    capsys.readouterr()
    assert evaluate.main(["--checkpoint", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    gold = [SMOKE_NAMES[index] for index in result.labels]
    assert printed["accuracy"] == pytest.approx(np.mean(np.array(predicted) == np.array(gold)))
    for name in SMOKE_NAMES:
        hits = [p == name for p, g in zip(predicted, gold, strict=True) if g == name]
        assert printed["per_class"][name]["recall"] == pytest.approx(np.mean(hits))


def card_parts(folder):
    _, front, body = (folder / CARD).read_text().split("---\n", 2)
    return yaml.safe_load(front), body


@pytest.mark.slow
def test_the_model_card_states_what_the_run_wrote(kd_run):
    out, run_config = kd_run
    meta, body = card_parts(out)
    metrics, trial = run_config["metrics"], run_config["trial"]
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"
    assert meta["datasets"] == ["smoke"] and meta["metrics"] == ["accuracy", "f1"]
    assert {"expert-loop", "kd", "knowledge-distillation"} <= set(meta["tags"])
    results = {result["dataset"]["split"]: {score["type"]: score["value"] for score in result["metrics"]}
               for result in meta["model-index"][0]["results"]}
    assert results == {"validation": {"accuracy": metrics["val_accuracy"], "f1": metrics["val_macro_f1"]},
                       "test": {"accuracy": metrics["test_accuracy"], "f1": metrics["test_macro_f1"]}}

    sizes = run_config["provenance"]["split_sizes"]
    assert f"{sizes['train']} train / {sizes['validation']} validation / {sizes['test']} test examples" in body
    assert "`ambivalent`, `negative`, `neutral`, `positive`" in body
    assert f"| validation | {metrics['val_accuracy']:.4f} | {metrics['val_macro_f1']:.4f} | " \
           f"{metrics['val_loss']:.4f} |" in body
    assert f"| test | {metrics['test_accuracy']:.4f} | {metrics['test_macro_f1']:.4f} | - |" in body
    for name in COUNTS:
        assert f"| `{name}` | {metrics[name]} |" in body
    assert metrics["teacher_labels"] == sizes["train"] and metrics["validation_labels"] == sizes["validation"]
    for teacher in ("tiny-bert", "tiny-bert-2", "ensemble"):
        assert f"| `{teacher}` | {metrics[f'teacher_accuracy/{teacher}/val']:.4f} | " \
               f"{metrics[f'teacher_accuracy/{teacher}/test']:.4f} |" in body
    assert f"| `alpha` | {trial['alpha']} |" in body and f"| `seed` | {trial['seed']} |" in body
    assert "`initial_pool_size`" not in body  # the Expert-Loop's settings are not kd's
    assert "Saved after epoch 2 of 2." in body
    assert "python tuning/train.py --method kd --config CHECKPOINT/run_config.json" in body


@pytest.mark.slow
def test_the_card_command_redoes_the_run(kd_run, tmp_path):
    out, run_config = kd_run
    again = tmp_path / "again"
    assert train.main(["--method", "kd", "--config", str(out / "run_config.json"), "--out", str(again)]) == 0
    redone = json.loads((again / "run_config.json").read_text())
    assert redone["trial"] == run_config["trial"] and redone["provenance"] == run_config["provenance"]
    for name in ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1", *COUNTS):
        assert redone["metrics"][name] == run_config["metrics"][name], name
    assert redone["metrics"]["val_loss"] == pytest.approx(run_config["metrics"]["val_loss"], abs=1e-6)


@pytest.mark.slow
def test_a_run_config_of_another_method_is_refused(kd_run):
    out, _ = kd_run
    args = train.parse_args(["--method", "supervised", "--config", str(out / "run_config.json")])
    with pytest.raises(UsageError, match="is a checkpoint of method 'kd', not 'supervised'"):
        train.trial_config(args)


def test_a_supervised_card_shows_no_teachers_and_tolerates_missing_fields():
    """Hand-made values: a supervised run (no teachers, no distillation settings), a checkpoint of an
    older version without split sizes, and a local data file named without its machine's path."""
    run_config = {"trial": {"method": "supervised", "learning_rate": 3e-5, "alpha": 0.7, "query_size": 50},
                  "task": "classification", "label_names": ["bad", "good"],
                  "provenance": {"data": {"dataset": "/home/someone/reviews.csv", "student": "minilm-l3",
                                          "teacher_split": 0.5, "max_length": 64}, "data_fingerprint": "f00"},
                  "metrics": {"val_accuracy": 0.5, "labels_used": 80, "validation_labels": 20, "epoch": 1}}
    meta, body = model_card(run_config).split("---\n", 2)[1:]
    meta = yaml.safe_load(meta)
    assert meta["datasets"] == ["reviews.csv"] and "/home/someone" not in body
    assert [result["dataset"]["split"] for result in meta["model-index"][0]["results"]] == ["validation"]
    assert "None: this method learns from gold labels only." in body
    assert "| `learning_rate` | 3e-05 |" in body and "`alpha`" not in body and "`query_size`" not in body
    assert "teachers fine-tuned" not in body and "split:" not in body  # no split sizes recorded
    assert "| `labels_used` | 80 |" in body and "| `expert_queries`" not in body
    assert "| test | - | - | - |" in body
    assert "max_length=64" in body
