"""Budget-study arms that name their expert (issue 23): expert:<strategy>@llm and @openai. Names and refusals,
their costs by hand, and studies on the smoke data with the real SmolLM2 GGUF asked for the queried rows."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TEACHER_THREADS, exit_and_line, run_cli
from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.study_settings import StoppingRule, StudySettings, parse_arm
from tuning import study as study_command
from tuning.budget_study import costs
from tuning.budget_study.stats import baseline_of, comparison_pairs

# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name, expert, needs_teachers, answers", [
    ("expert:margin", "teachers", True, False),  # unchanged: a study already running reads it the same
    ("expert:margin@llm", "llm:smollm2", False, True),
    ("expert:margin+balanced@openai", "openai", False, True),
    ("expert:random@llm", "llm:smollm2", False, True),
    ("kd_all", "teachers", True, False), ("full:kd", "teachers", True, False),
    ("oracle:margin", "oracle", False, False), ("supervised", "", False, False), ("full:supervised", "", False, False),
])
def test_arms_name_their_expert(name, expert, needs_teachers, answers):
    arm = parse_arm(name)
    assert (arm.expert, arm.needs_teachers, arm.answers_in_state) == (expert, needs_teachers, answers)
    assert arm.strategy == (name.partition(":")[2].partition("@")[0] or None) or arm.kind == "full"


def test_the_llm_of_an_llm_arm_is_the_studys():
    assert parse_arm("expert:margin@llm", "/models/x.gguf").expert == "llm:/models/x.gguf"
    assert parse_arm("expert:margin@llm").strategy == "margin"


@pytest.mark.parametrize("name, message", [
    ("expert:robust_least_confidence@llm", "reads the teachers' outputs"),
    ("expert:robust_least_confidence@openai", "reads the teachers' outputs"),
    ("expert:margin@human", "pauses the run"),
    ("expert:margin@teachers", "after '@' is llm"),
    ("expert:nope@llm", "unknown strategy 'nope'"),
    ("oracle:margin@llm", "unknown study arm"),
])
def test_named_expert_arms_are_refused_where_they_cannot_run(name, message):
    with pytest.raises(UsageError, match=message):
        parse_arm(name)


def settings(arm: str, **values) -> StudySettings:
    recipe = TrialConfig(method="active_loop", learning_rate=5e-3, batch_size=8, epochs=1)
    base = dict(arm=arm, seed=0, budgets=(8, 16), initial=8, recipe=recipe,
                stopping=StoppingRule(max_steps=8, patience_steps=4))
    return StudySettings(**{**base, **values})


def test_an_openai_arm_needs_its_endpoint_and_an_old_template_reads_as_before():
    with pytest.raises(UsageError, match="--expert-url and --expert-model"):
        settings("expert:margin@openai")
    assert settings("expert:margin@openai", expert_url="https://h/v1", expert_model="m").expert_model == "m"
    old = settings("expert:margin").to_dict()
    for key in ("llm", "expert_url", "expert_model"):  # a study.json written before named experts
        del old[key]
    assert StudySettings.from_dict(old).llm == "smollm2"


def test_named_arms_are_compared_with_their_own_random_arm():
    arms = ["supervised", "expert:random", "expert:margin", "expert:random@llm", "expert:margin@llm"]
    assert baseline_of("expert:margin@llm", arms) == "expert:random@llm"
    assert baseline_of("expert:margin", arms) == "expert:random"
    assert set(comparison_pairs(arms)) == {("expert:margin", "expert:random"),
                                           ("expert:margin@llm", "expert:random@llm"),
                                           ("expert:random", "supervised"), ("expert:random@llm", "supervised")}


@pytest.mark.parametrize("argv, message", [
    (["--expert", "human"], "--expert human pauses the run"),
    (["--expert", "oracle"], "the oracle has arms of its own"),
    (["--expert", "llm:nope"], "'nope' is neither a language model preset"),
    (["--expert", "openai"], "--expert-url and --expert-model"),  # the default expert arms become @openai
    (["--arms", "supervised,expert:margin@openai"], "--expert-url and --expert-model"),
    (["--arms", "expert:robust_least_confidence@llm"], "reads the teachers' outputs"),
])
def test_bad_expert_flags_of_a_study_exit_2(tmp_path, capsys, no_ray, argv, message):
    code, line = exit_and_line(study_command.main, ["--smoke-test", "--storage-path", str(tmp_path), *argv], capsys)
    assert code == 2 and message in line, line
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- costs, by hand


def test_an_llm_arms_labels_cost_the_llm_price_and_no_sunk_gold():
    prices = costs.parse_prices("gold=1,expert=0.1,llm=0.01")
    assert prices == {"gold": 1.0, "expert": 0.1, "read": 0.1, "llm": 0.01, "openai": 0.1}
    frame = pd.DataFrame({"arm": ["supervised", "expert:margin", "expert:margin@llm", "expert:margin@openai"],
                          "gold_labels": [16, 8, 8, 8], "expert_queries": [0, 8, 8, 8], "expert_reads": [0, 0, 0, 0]})
    # supervised 16 x 1; teachers 8 x 1 + 8 x 0.1 (+ 40 sunk x 1 when charged); llm 8 x 1 + 8 x 0.01, never sunk;
    # openai 8 x 1 + 8 x 0.1 (its price follows the expert's when not given)
    assert costs.priced_cost(frame, prices, 40, False) == pytest.approx([16, 8.8, 8.08, 8.8])
    assert costs.priced_cost(frame, prices, 40, True) == pytest.approx([16, 48.8, 8.08, 8.8])
    assert costs.grid_prices(prices, 0.3)["llm"] == 0.01  # the grid varies the teachers' price only
    old = {"gold": 1.0, "expert": 0.1, "read": 0.01}  # a study priced before llm existed
    assert costs.priced_cost(frame, old, 40, False) == pytest.approx([16, 8.8, 8.8, 8.8])
    assert costs.describe_prices(old) == "gold=1, expert=0.1, read=0.01"


# ---------------------------------------------------------------- the arm's trials, with the real SmolLM2


@pytest.fixture(scope="module")
def llm_prepared(smollm2_gguf, tmp_path_factory):
    """The smoke data with the teachers and the LLM's context, in the session's cache (the GGUF is there);
    the answers go to a cache of this module's own, so that the first ask is cold."""
    import torch  # noqa: PLC0415

    from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, prepare  # noqa: PLC0415

    torch.set_num_threads(1)
    prepared = prepare(DataSettings(**{**SMOKE_SETTINGS, "teacher_split": 0.5}), need_teachers=True,
                       progress=lambda *a: None, teacher_threads=TEACHER_THREADS, expert="llm:smollm2")
    context = dataclasses.replace(prepared.expert_context, cache_folder=str(tmp_path_factory.mktemp("answers")))
    return dataclasses.replace(prepared, expert_context=context)


def run_arm(arm: str, prepared) -> list[tuple[dict, dict]]:
    from trainables.study_arms import run_study_arm  # noqa: PLC0415 (torch)

    reports = []
    run_study_arm(settings(arm, seed=3), prepared, lambda metrics, model, state: reports.append((metrics, state)))
    return reports


def test_an_llm_arm_trains_on_the_llms_answers_and_a_second_run_reads_them_from_the_cache(llm_prepared, reuse_smollm2):
    first = run_arm("expert:margin@llm", llm_prepared)
    (initial, _), (point, state) = first
    assert initial[m.EXPERT_CALLS] == 0 and initial[m.EXPERT_QUERIES] == 0  # budget 8: the initial gold pool only
    queried = state["loop"]["queried"]
    assert len(queried) == 8 and sorted(state["loop"]["answers"]) == sorted(str(r) for r in queried)
    assert (point[m.EXPERT_CALLS], point[m.EXPERT_CACHE_HITS], point[m.EXPERT_QUERIES]) == (8, 0, 8)  # cold cache
    assert point[m.TEACHER_LABELS] == 0 and point[m.EXPERT_SECONDS] > 0 and point[m.EXPERT_PAID] == 0
    # the accuracy of the LLM's own labels (not the teachers'), worked out from its answers
    llm_labels = np.array([np.argmax(state["loop"]["answers"][str(r)]) for r in queried])
    gold = llm_prepared.encoded["train"].labels[queried]
    assert point[m.EXPERT_LABEL_ACCURACY] == pytest.approx(float((llm_labels == gold).mean()))
    assert json.loads(point["query_log"])["expert_label"] == llm_labels.tolist()
    again = run_arm("expert:margin@llm", llm_prepared)[-1]
    assert (again[0][m.EXPERT_CALLS], again[0][m.EXPERT_CACHE_HITS]) == (0, 8)  # asked before: read back, free
    assert again[1]["loop"]["answers"] == state["loop"]["answers"]


def test_an_llm_arms_expert_rows_are_distilled_from_log_p_and_its_gold_rows_by_cross_entropy(llm_prepared):
    from trainables.study_arms import arm_recipe, training_set  # noqa: PLC0415

    study = settings("expert:margin@llm")
    arm = parse_arm(study.arm)
    classes = llm_prepared.num_labels
    answer = [0.5, 0.25, 0.25] + [0.0] * (classes - 3)
    data = training_set(arm, arm_recipe(arm, study), llm_prepared, [0, 1], [2], {"2": answer})
    labels = llm_prepared.encoded["train"].labels
    assert data.labels.tolist() == [labels[0], labels[1], -1] and data.has_gold.tolist() == [True, True, False]
    assert data.has_teacher.tolist() == [False, False, True]
    expected = np.log(np.maximum(answer, 1e-8))  # expert_loop.ANSWER_FLOOR for the zeros
    assert data.teacher_logits[0, 2] == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_a_study_with_an_llm_arm_end_to_end(tmp_path, smollm2_gguf):
    """The driver prepares the LLM's context, the @llm arm's points carry what its answers cost and its labels'
    accuracy, and the report names the expert and prices its labels at llm=0.01. (A second run reading the answers
    back from the cache: the in-process test above, which costs no second study.)"""
    # An asset cache of its own, so that the answer cache starts cold whatever ran before; the GGUF by its path.
    cache = tmp_path / "cache"
    common = ("--smoke-test", "--storage-path", str(tmp_path), "--seeds", "1", "--budgets", "8,16",
              "--expert", f"llm:{smollm2_gguf}")
    result = run_cli("study.py", *common, "--name", "s", "--arms", "supervised,expert:margin@llm",
                     "--prices", "gold=1,expert=0.1,llm=0.01", cache=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    frame = pd.read_csv(tmp_path / "s" / "study.csv").set_index(["arm", "budget"])
    llm = frame.loc[("expert:margin@llm", 16)]
    assert (llm[m.EXPERT_CALLS], llm[m.EXPERT_CACHE_HITS], llm[m.EXPERT_QUERIES]) == (8, 0, 8)
    assert llm[m.TEACHER_LABELS] == 0  # no arm asks the teachers: none fine-tuned, the pool is the whole split
    assert "teachers not prepared (no arm asks them)" in result.stdout
    queries = pd.read_csv(tmp_path / "s" / "queries.csv")
    asked = queries[queries["arm"] == "expert:margin@llm"]
    assert llm[m.EXPERT_LABEL_ACCURACY] == pytest.approx((asked["expert_label"] == asked["gold_label"]).mean())
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["arms"]["expert:margin@llm"]["per_budget"]["16"]["priced_cost"] == pytest.approx(8 + 8 * 0.01)
    report = (tmp_path / "s" / "report.md").read_text()
    assert f"| expert:margin@llm | llm:{smollm2_gguf} |" in report and "named experts: llm:" in report


def test_teachers_are_prepared_unless_named_experts_stand_in_for_them():
    from tuning.budget_study.runner import needs_teachers, text_expert  # noqa: PLC0415 (Ray)

    def plan(*arms, **template):
        return {"arms": list(arms), "template": template}

    assert needs_teachers(plan("supervised", "expert:margin@llm", "expert:margin"))
    assert not needs_teachers(plan("supervised", "expert:margin@llm"))
    assert needs_teachers(plan("supervised", "oracle:margin"))  # as before named experts: the pool stays the same
    assert text_expert(plan("expert:margin@llm", "expert:margin@openai", llm="x.gguf")) == "llm:x.gguf"
    assert text_expert(plan("expert:margin@openai")) == "openai"
    assert text_expert(plan("supervised", "expert:margin")) == "teachers"


def test_expert_names_whom_the_default_expert_arms_ask():
    """Without --arms, --expert llm:... (or openai) turns the default expert:<strategy> arms into @llm (@openai)
    arms (robust_least_confidence, which reads the teachers, left out); kd_all stays the teachers' and oracle arms
    the gold label's. With --arms, it names the model only."""
    def settings(*argv):
        return study_command.study_settings(study_command.parse_args(["--smoke-test", *argv]))

    default = settings()
    assert any(a.startswith("expert:") and "@" not in a for a in default["arms"])
    llm = settings("--expert", "llm:smollm2")
    assert [a for a in llm["arms"] if a.startswith("expert:")] == [  # less the strategy that reads the teachers
        f"{a}@llm" for a in default["arms"] if a.startswith("expert:") and a != "expert:robust_least_confidence"]
    assert "kd_all" in llm["arms"] and llm["template"]["llm"] == "smollm2"
    chosen = settings("--expert", "llm:/models/m.gguf", "--arms", "expert:margin,expert:margin@llm")
    assert chosen["arms"] == ["expert:margin", "expert:margin@llm"] and chosen["template"]["llm"] == "/models/m.gguf"


@pytest.mark.parametrize("command, listed, left_out", [
    ("study", ["teachers", "llm:", "openai"], ["oracle", "human"]),  # the study refuses both (exit 2, above)
    ("run", ["teachers", "oracle", "llm:", "openai"], ["human"]),
    ("train", ["teachers", "oracle", "llm:", "openai", "human"], []),
])
def test_expert_help_lists_the_experts_each_command_accepts(capsys, command, listed, left_out):
    from tuning import run, train  # noqa: PLC0415

    parse = {"study": study_command.parse_args, "run": run.parse_args, "train": train.parse_args}[command]
    with pytest.raises(SystemExit):
        parse(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    expert_help = text.split("--expert EXPERT who labels the queried rows:")[1].split("(default")[0]
    assert all(kind in expert_help for kind in listed), expert_help
    assert not any(kind in expert_help for kind in left_out), expert_help
