"""report.md of a budget study, written from its summary (summary.json's dict): the answer in plain
words first, worked out from the numbers whatever they say, then the set-up and the tables behind it."""

from __future__ import annotations

import json
import math

from trainables import metrics as m
from trainables.study_settings import DEFAULT_LLM, GOLD_LABELS, parse_arm
from tuning.budget_study import costs
from tuning.budget_study.stats import ALPHA, FLAG_CLASS_SHARE, baseline_of

GOAL_SHARE, GOAL_GOLD = 0.95, 0.20  # the goal the report is read against
BOOTSTRAP = "95% percentile bootstrap over seeds and test examples (paired)"
T_INTERVAL = "95% t-interval over seeds (the test set held fixed)"
COMPARED = ("each expert:<strategy> against expert:random and each oracle:<strategy> against oracle:random "
            "(else supervised, which it equals: random queries take the next rows of the seed's order, the rows "
            "supervised holds): does choosing the rows beat random rows; expert:random against supervised: "
            "an expert label in place of a gold one on the same rows. kd_all (the initial gold plus the teachers "
            "on the rest of the pool) is one point, compared on the priced-cost axis")


def curves(summary: dict) -> dict:
    return {arm: entry for arm, entry in summary["arms"].items() if "aulc" in entry}


def references(summary: dict) -> dict:
    return {arm: entry for arm, entry in summary["arms"].items() if "aulc" not in entry}


def _ci(point: dict, digits: int = 3, sign: str = "") -> str:
    return f"{point['mean']:{sign}.{digits}f} [{point['ci'][0]:{sign}.{digits}f}, {point['ci'][1]:{sign}.{digits}f}]"


def _pair(values, sign: str = "+") -> str:
    return "-" if values is None else f"[{values[0]:{sign}.3f}, {values[1]:{sign}.3f}]"


# ---------------------------------------------------------------- the answer

def answer(summary: dict) -> list[str]:
    return [*progress_lines(summary), *best_lines(summary), *comparison_lines(summary), *precision_warning(summary),
            *flag_lines(summary), *class_lines(summary), *expert_lines(summary), *cost_lines(summary),
            *goal_lines(summary)]


def progress_lines(summary: dict) -> list[str]:
    """Said first while trials remain: what follows is an interim look at the seeds every arm has finished."""
    ended, planned = summary.get("trials_ended"), summary.get("trials_planned")
    if ended is None or planned is None or ended >= planned:
        return []
    return [f"**In progress: {ended} of {planned} trials have ended.** What follows compares the seeds every arm has "
            f"finished ({', '.join(map(str, summary['seeds']))}): an interim look, not the study's answer."]


def precision_line(summary: dict) -> str | None:
    """The students' precision over the compared points: 'bf16 on all 140 points' or 'bf16 on 100 points, fp32 on
    40'; None when study.csv did not record it."""
    points = (summary.get("precisions") or {}).get("points")
    if not points:
        return None
    if len(points) == 1:
        (name, count), = points.items()
        return f"{name} on all {count} points"
    return ", ".join(f"{name} on {count} points" for name, count in points.items())


def precision_warning(summary: dict) -> list[str]:
    """Said in the answer when the points did not all train in one precision (a resume on another machine)."""
    points = (summary.get("precisions") or {}).get("points") or {}
    if len(points) < 2:
        return []
    mixed = summary["precisions"]["mixed_seeds"]
    within = (f"seeds {', '.join(map(str, mixed))} mixed them across their arms, so their paired differences also "
              "hold a precision difference" if mixed else
              "every seed trained all its arms in one, so each paired difference compares like with like, but the "
              "seeds differ")
    return [f"The points did not all train in one precision ({precision_line(summary)}; 'auto' is decided on each "
            "machine, so the machines of the study's runs differed, or, before 2026-12-07, a trial worker measured it "
            f"under load): {within}."]


def best_lines(summary: dict) -> list[str]:
    arms, budgets = curves(summary), summary["budgets"]
    linear, log = (max(arms, key=lambda a, key=key: arms[a][key]) for key in ("aulc", "aulc_log"))
    said = (f"{linear}'s on both a linear and a log budget axis ({arms[linear]['aulc']:.3f} and "
            f"{arms[linear]['aulc_log']:.3f})" if linear == log else
            f"{linear}'s on a linear budget axis ({arms[linear]['aulc']:.3f}) and {log}'s on a log budget axis "
            f"({arms[log]['aulc_log']:.3f})")
    return [f"Over budgets {budgets[0]}..{budgets[-1]}, the highest area under the learning curve (mean test "
            f"accuracy over the budgets) is {said}."]


def comparison_lines(summary: dict) -> list[str]:
    """One line per compared pair (both axes), then what the family of tests can and cannot show."""
    tests = summary.get("comparisons", [])
    if not tests:
        return ["No pair of arms was compared (the study lacks the baselines)."]
    lines = []
    for arm, base in dict.fromkeys((t["arm"], t["baseline"]) for t in tests):
        linear, log = (next(t for t in tests if (t["arm"], t["baseline"], t["scale"]) == (arm, base, s))
                       for s in ("linear", "log"))
        said = (f"{arm} {linear['verdict']} {base}" if linear["verdict"] == log["verdict"] else
                f"{arm} {linear['verdict']} {base} on the linear budget axis but {log['verdict']} it on the log axis")
        lines.append(f"{said} (AULC difference, linear: {_test(linear)}; log: {_test(log)}).")
    return [*lines, family_line(len(summary["seeds"]), len(tests))]


def family_line(seeds: int, tests: int) -> str:
    """What the family of tests can show at all. An exact sign-flip p over n seeds is a multiple of 2/2^n (a sign
    pattern and its negation tie), and 2/2^n only when every seed's difference has one sign."""
    floor, first = 2 / 2 ** seeds, ALPHA / tests
    family = (f"Verdicts: exact sign-flip tests of the {seeds} per-seed AULC differences of each of the {tests} "
              f"comparisons ({tests // 2} pairs on 2 budget axes), Holm-corrected to a family-wise "
              f"{ALPHA:.0%}; the t-intervals are per comparison, not corrected.")
    if floor > first:
        return family + (f" With {seeds} seeds no p can be below 2/2^{seeds} = {floor:.4f}, above Holm's first "
                         f"threshold {ALPHA:.0%}/{tests}: no verdict other than 'cannot be told apart' is possible, "
                         "whatever the data; more seeds are needed.")
    if 2 * floor > first:
        return family + (f" With {seeds} seeds the smallest p, 2/2^{seeds} = {floor:.4f} (every seed's difference of "
                         f"one sign), is the only one below Holm's first threshold {ALPHA:.0%}/{tests} = {first:.4f}: "
                         "a comparison gets a verdict only if every seed agrees, at least until Holm's threshold has "
                         "grown with the comparisons already decided.")
    return family


def _test(test: dict) -> str:
    return (f"{test['mean']:+.3f}, 95% t-interval over seeds {_pair(test['t_ci'])}, sign-flip p {test['p']:.4f}, "
            f"Holm {test['p_holm']:.4f}")


def flag_lines(summary: dict) -> list[str]:
    arms = summary["arms"]
    total, flagged = sum(e["flags"]["of"] for e in arms.values()), sum(e["flags"]["count"] for e in arms.values())
    rule = (f"a student that never predicts a class making up >= {FLAG_CLASS_SHARE:.0%} of test, or whose validation "
            "accuracy is at or below the majority rate")
    if not flagged:
        return [f"No point is flagged ({rule})."]
    by_arm = ", ".join(f"{arm} {e['flags']['count']} of {e['flags']['of']}" for arm, e in arms.items()
                       if e["flags"]["count"])
    return [f"{flagged} of {total} points are flagged ({rule}): {by_arm}. The means include them; the medians "
            "beside them in the accuracy table show what a typical seed does."]


def class_lines(summary: dict) -> list[str]:
    """Classes some arm never gets right at its largest budget (mean test recall 0 over the seeds)."""
    arms = summary["arms"]
    names = list(next(iter(arms.values()))["class_recall"])
    lines = []
    for name in names:
        zero = [arm for arm, e in arms.items() if e["class_recall"][name] == 0]
        if zero:
            who = "any arm's student (full-data references included)" if len(zero) == len(arms) else ", ".join(zero)
            lines.append(f"At the largest budget, no seed of {who} gets a single '{name}' test example right "
                         "(test recall 0).")
    return lines


def expert_lines(summary: dict) -> list[str]:
    """Each Expert-Loop arm's student beside its expert at the largest budget: how often the expert's labels on
    the rows the arm bought were right, and (for the teacher ensemble) the expert's own test accuracy, the
    level a student distilled on its labels, mistakes included, is measured against."""
    largest = str(summary["budgets"][-1])
    llm = summary.get("llm") or DEFAULT_LLM
    arms = {arm: e["per_budget"][largest] for arm, e in curves(summary).items() if arm.startswith("expert:")}
    arms = {arm: p for arm, p in arms.items() if p.get(m.EXPERT_LABEL_ACCURACY) is not None}
    if not arms:
        return []
    each = "; ".join(f"{arm} {p['test_accuracy']['mean']:.3f} ({p[m.EXPERT_LABEL_ACCURACY]:.3f} of "
                     f"{p[m.EXPERT_QUERIES]:.0f})" for arm, p in arms.items())
    line = (f"At the largest budget ({largest}), each Expert-Loop arm's mean test accuracy (and the share of its "
            f"expert labels that were right, of how many): {each}.")
    ensemble = summary.get("teacher_accuracy", {}).get("ensemble/test")
    taught = [p["test_accuracy"]["mean"] for arm, p in arms.items() if parse_arm(arm, llm).expert == "teachers"]
    if ensemble is not None and taught:
        line += (f" The teacher ensemble, the expert of the teachers' arms, is right on {ensemble:.3f} of test; their "
                 f"students end at {min(taught):.3f} to {max(taught):.3f} ({min(taught) - ensemble:+.3f} to "
                 f"{max(taught) - ensemble:+.3f} from it).")
    return [line]


def cost_lines(summary: dict) -> list[str]:
    priced = summary["costs"]
    front = "; ".join(f"{p['arm']} at budget {p['budget']} (cost {p['cost']:.0f}, test accuracy "
                      f"{p['test_accuracy']:.3f})" for p in priced["frontier"])
    return [f"On one priced-cost axis ({_prices(summary)}), the Pareto frontier of mean test accuracy against mean "
            f"priced cost, cheapest first: {front}.",
            *costs.recommendation_sentences(priced["recommendations"]),
            "(Best by mean test accuracy at each expert price of the grid; prices between the grid's values were not "
            "evaluated; whether two arms differ beyond noise is for the comparisons above.)"]


def _prices(summary: dict) -> str:
    sunk = summary.get("teacher_gold_labels") or 0
    charged = "charged to the arms that use teachers" if summary.get("charge_sunk") else "shown, not charged"
    return (f"prices {costs.describe_prices(summary['prices'])} in gold labels; the teachers' {sunk} gold labels "
            f"{charged}")


def goal_lines(summary: dict) -> list[str]:
    arms, full = summary["arms"], summary["arms"].get("full:supervised")
    if full is None:
        return ["No full-data supervised reference was run, so the goal cannot be checked."]
    pool = full["budget"]
    target = GOAL_SHARE * full["test_accuracy"]["mean"]
    lines = [f"Goal: an Expert-Loop arm at >= {GOAL_SHARE:.0%} of full-data supervised test accuracy "
             f"({full['test_accuracy']['mean']:.3f} on all {pool} pool labels, so >= {target:.3f}, staying there at "
             f"every larger budget) with <= {GOAL_GOLD:.0%} of the gold labels (<= {GOAL_GOLD * pool:.0f}), and a "
             "verdict 'beats' against expert:random on both budget axes."]
    met = [arm for arm in arms if arm.startswith("expert:") and _meets_goal(summary, arm, pool)]
    lines.append(f"It holds for {', '.join(met)}." if met else
                 "It does not hold for any Expert-Loop arm (see the tables: which part failed, the accuracy or the "
                 "verdict against random queries).")
    return lines


def _meets_goal(summary: dict, arm: str, pool: int) -> bool:
    reach = summary["arms"][arm].get(f"gold_labels_to_{round(GOAL_SHARE * 100)}pct")
    cheap = reach is not None and reach["budget"] is not None and reach[GOLD_LABELS] <= GOAL_GOLD * pool
    verdicts = {t["scale"]: t["verdict"] for t in summary.get("comparisons", [])
                if t["arm"] == arm and t["baseline"] == baseline_of(arm, [])}
    return cheap and len(verdicts) == 2 and set(verdicts.values()) == {"beats"}


# ---------------------------------------------------------------- set-up

def setup_lines(summary: dict) -> list[str]:
    budgets = summary["budgets"]
    draw = "stratified: label-informed" if summary.get("stratified_initial") else "uniform"
    lines = [f"data: {summary.get('data')}",
             f"teacher_split: {summary.get('teacher_split')} (teachers fine-tuned on "
             f"{summary.get('teacher_gold_labels')} gold labels the student never sees; student pool "
             f"{summary.get('pool_size')})",
             f"seeds: {summary['seeds']}; budgets: {budgets}; initial gold pool of the query arms: "
             f"{summary.get('initial')} ({draw})",
             f"recipe: {summary.get('recipe')}",
             f"students' precision, decided where each trial ran: {precision_line(summary) or 'not recorded'}",
             f"training, one rule for every arm: {summary.get('stopping') or 'see Training below'}; "
             f"{'warm starts' if summary.get('warm_start') else 'every point a fresh student (retraining)'}",
             selection_line(summary),
             f"costs: {_prices(summary)}",
             *named_expert_lines(summary),
             f"comparisons made: {COMPARED}; AULC on a linear and on a log budget axis",
             f"intervals: {T_INTERVAL} for the paired differences behind the verdicts; {BOOTSTRAP} beside every "
             "figure (it covers both seeds and test sampling), including the budget needed to reach a mark",
             f"teachers: {json.dumps(summary.get('teacher_accuracy', {}))}",
             "the ensemble on the student's pool (hidden labels, for the record): "
             f"{summary.get('ensemble_pool_accuracy')}"]
    if summary.get("min_steps") is not None:
        lines.insert(5, f"min_steps: {summary['min_steps']}")
    if summary.get("runs"):
        runs = summary["runs"]
        lines.append(f"wall time: {sum(r['seconds'] for r in runs) / 3600:.2f} h over {len(runs)} run(s) (a start and "
                     "each --resume, from Ray's start to the report; CPU seconds per arm are under Cost)")
    if summary.get("code_changes"):
        lines.insert(5, "**the training code changed while this study was resumed**, so its points were not all "
                        f"trained by the same code: {', '.join(summary['code_changes'])}")
    return lines


def named_expert_lines(summary: dict) -> list[str]:
    """Who the @llm / @openai arms asked: fine-tuned on no gold label here (no sunk cost), priced apart."""
    llm = summary.get("llm") or DEFAULT_LLM
    named = sorted({parse_arm(arm, llm).expert for arm in summary["arms"] if "@" in arm})
    if not named:
        return []
    return [f"named experts: {', '.join(named)} (zero-shot: no gold label sunk in them; their labels priced at "
            "llm and openai, the teachers' at expert; an answer read back from the on-disk cache costs no call)"]


def selection_line(summary: dict) -> str:
    validation = summary.get("validation_labels")
    if summary.get("selection") == "last":
        return ("model selection: none per point; each trains to the cap of its schedule and keeps its last epoch "
                f"(the cap was set where supervised points plateau on the fixed validation split, {validation} gold "
                "labels, which also chose the recipe: a cost every arm shares)")
    if summary.get("selection") == "share":
        return ("model selection: a stratified 10% of each point's own gold labels held out to choose its epoch "
                "(counted in its gold labels; per point under Training); the fixed validation split "
                f"({validation} gold labels) chose the recipe and is reported for the record")
    if summary.get("selection") == "validation":
        return (f"model selection: the fixed validation split ({validation} gold labels), counted in every point's "
                "gold labels")
    return f"model selection: not stated (validation split of {validation} gold labels)"


# ---------------------------------------------------------------- tables

def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *["| " + " | ".join(r) + " |" for r in rows]]


def accuracy_table(summary: dict) -> list[str]:
    budgets = [str(b) for b in summary["budgets"]]
    def cell(point: dict) -> str:
        return f"{_ci(point['test_accuracy'])}; median {point['test_accuracy_median']:.3f}"

    rows = [[arm, *(cell(e["per_budget"][b]) for b in budgets)] for arm, e in curves(summary).items()]
    out = _table(["arm", *budgets], rows)
    for arm, e in references(summary).items():
        point = e["per_budget"][str(e["budget"])]
        out.append(f"\nReference {arm} (all {e['budget']} pool labels): {_ci(e['test_accuracy'])}; "
                   f"median {point['test_accuracy_median']:.3f}")
    return out


def f1_table(summary: dict) -> list[str]:
    budgets = [str(b) for b in summary["budgets"]]
    return _table(["arm", *budgets], [[arm, *(f"{e['per_budget'][b]['test_macro_f1']:.3f}" for b in budgets)]
                                      for arm, e in curves(summary).items()])


def flag_table(summary: dict) -> list[str]:
    rows = []
    for arm, e in summary["arms"].items():
        which = "; ".join(f"budget {p['budget']} seed {p['seed']}: {', '.join(p['reasons'])}"
                          for p in e["flags"]["points"])
        rows.append([arm, f"{e['flags']['count']} of {e['flags']['of']}", which or "-"])
    return _table(["arm", "flagged points", "which, and why"], rows)


def recall_table(summary: dict) -> list[str]:
    arms = summary["arms"]
    names = list(next(iter(arms.values()))["class_recall"])
    return _table(["arm (budget)", *names],
                  [[f"{arm} ({summary['budgets'][-1] if 'aulc' in e else e['budget']})",
                    *(f"{e['class_recall'][n]:.3f}" for n in names)] for arm, e in arms.items()])


def training_lines(summary: dict) -> list[str]:
    """Best epoch / epochs run and optimiser steps per point, and supervised's fixed-validation curve."""
    budgets = [str(b) for b in summary["budgets"]]
    cell = "{epoch:.1f} / {epochs_run:.1f}, {steps:.0f} steps, {selection_labels:.0f} selection labels"
    out = _table(["arm", *budgets], [[arm, *(cell.format(**e["per_budget"][b]) for b in budgets)]
                                     for arm, e in curves(summary).items()])
    for arm, e in references(summary).items():
        out.append(f"\n{arm}: " + cell.format(**e["per_budget"][str(e["budget"])]))
    seen = summary.get("validation_curves", {})
    for arm, per_budget in seen.items():
        shown = ", ".join(f"{b}: {v['best']:.3f} (last epoch {v['last']:.3f}, {v['epochs']:.1f} epochs)"
                          for b, v in sorted(per_budget.items(), key=lambda kv: int(kv[0])))
        out.append(f"\n{arm}, fixed-validation accuracy at the best epoch of its curve (mean over seeds), per budget: "
                   f"{shown}.")
    return out


def comparison_table(summary: dict) -> list[str]:
    return _table(["arm", "baseline", "axis", "AULC difference", T_INTERVAL, "sign-flip p", "Holm p", BOOTSTRAP,
                   "verdict"],
                  [[t["arm"], t["baseline"], t["scale"], f"{t['mean']:+.3f}", _pair(t["t_ci"]), f"{t['p']:.4f}",
                    f"{t['p_holm']:.4f}", _pair(t["bootstrap_ci"]), t["verdict"]]
                   for t in summary.get("comparisons", [])])


def aulc_table(summary: dict) -> list[str]:
    rows = []
    for arm, e in sorted(curves(summary).items(), key=lambda item: -item[1]["aulc"]):
        rows.append([arm, f"{e['aulc']:.3f} {_pair(e['aulc_ci'], '')}",
                     f"{e['aulc_log']:.3f} {_pair(e['aulc_log_ci'], '')}",
                     *(_reach(e.get(f"gold_labels_to_{p}pct")) for p in (90, 95))])
    return _table(["arm", "AULC, linear axis (95% bootstrap CI: seeds and test examples)", "AULC, log axis (idem)",
                   "budget from which the mean stays >= 90% of full supervised (95% bootstrap CI)",
                   "... >= 95% (idem)"], rows)


def _reach(reach: dict | None) -> str:
    if reach is None:
        return "-"
    low, high = ("not reached" if v is None else str(v) for v in reach["budget_ci"])
    where = ("not reached" if reach["budget"] is None else
             f"{reach['budget']} ({reach[GOLD_LABELS]:.0f} gold + {reach[m.EXPERT_QUERIES]:.0f} expert)")
    return f"{where} [{low}, {high}]"


def cost_table(summary: dict) -> list[str]:
    largest = str(summary["budgets"][-1])
    sunk = summary.get("teacher_gold_labels") or 0
    rows = []
    for arm, e in summary["arms"].items():
        p = e["per_budget"][largest if "aulc" in e else str(e["budget"])]
        accuracy = p[m.EXPERT_LABEL_ACCURACY]  # None where no expert labelled anything
        shown = "-" if accuracy is None else f"{accuracy:.3f}"
        who = parse_arm(arm, summary.get("llm") or DEFAULT_LLM)
        rows.append([arm, who.expert or "-", f"{p[GOLD_LABELS]:.0f}", f"{p['selection_labels']:.0f}",
                     str(sunk if who.needs_teachers else 0), f"{p[m.EXPERT_QUERIES]:.0f}",
                     f"{p['expert_reads']:.0f}", f"{p['priced_cost']:.0f}", shown, _answers(p),
                     f"{e['cpu_seconds']:.0f}"])
    charged = "charged" if summary.get("charge_sunk") else "not charged"
    return _table(["arm", "expert", "gold labels (training + model selection)", "of which model selection",
                   f"teacher gold (sunk, {charged})", "expert labels", "expert reads", "priced cost",
                   "expert label accuracy", "named expert, whole curve: calls + cache hits, seconds",
                   "CPU seconds (all points, all seeds)"], rows)


def _answers(point: dict) -> str:
    """What a named expert's (@llm, @openai) answers cost up to this point: calls made, answers read back from
    the cache, seconds spent answering (means over seeds); "-" for the teachers, whose logits were cached."""
    if point.get(m.EXPERT_CALLS) is None:
        return "-"
    return f"{point[m.EXPERT_CALLS]:.0f} + {point[m.EXPERT_CACHE_HITS]:.0f}, {point[m.EXPERT_SECONDS]:.1f} s"


def stopping_lines(summary: dict) -> list[str]:
    """Where each stopping criterion would have stopped each query arm's curve, judged after the fact."""
    stopping = summary.get("stopping_criteria") or {}
    if not stopping.get("arms"):
        return ["Not available: this study's points did not record their stopping checks (a study made before "
                "they did), or it has no query arm."]
    rows = [[arm, spec, f"{e['stopped_early']} of {e['of']}", f"{e['mean_budget']:.0f}",
             f"{e['mean_labels']:.0f} ({e['mean_gold_labels']:.0f} gold + {e['mean_expert_queries']:.0f} expert)",
             f"{e['mean_accuracy_lost']:+.3f}"]
            for arm, criteria in stopping["arms"].items() for spec, e in criteria.items()]
    return [f"Each point is a round: after each budget, each criterion looks at the point's student on "
            f"{stopping['stopping_set']}; where it never says stop, the curve runs to its end, losing nothing. "
            "Accuracy lost: test accuracy at the largest budget minus at the stop (mean over seeds; positive = "
            "stopping cost accuracy). Thresholds are small-text's defaults; max_rounds:2 stops blindly at the third "
            "budget, the rule a criterion has to beat.", "",
            *_table(["arm", "criterion", "seeds stopped before the largest budget", "mean budget at the stop",
                     "mean labels spent there", "mean test accuracy lost"], rows)]


def frontier_lines(summary: dict) -> list[str]:
    priced = summary["costs"]
    return [*_table(["arm", "budget", "priced cost", "mean test accuracy"],
                    [[p["arm"], str(p["budget"]), f"{p['cost']:.1f}", f"{p['test_accuracy']:.3f}"]
                     for p in priced["frontier"]]),
            "", "The most accurate point (mean test accuracy) within each spend, at each expert price (in gold "
            "labels; the sentences in the answer say the same):", "",
            *_table(*costs.recommendation_table(priced["recommendations"]))]


# ---------------------------------------------------------------- leakage

def leakage_warnings(summary: dict) -> list[str]:
    """Experts whose accuracy on the rows they labelled beats their test accuracy beyond noise (two
    standard errors of the difference of two proportions) have probably seen those rows."""
    test = summary.get("teacher_accuracy", {}).get("ensemble/test")
    if test is None:
        return []
    warnings = []
    n_test = summary["test_examples"]
    for arm, entry in summary["arms"].items():
        for budget, point in entry.get("per_budget", {}).items():
            queried, n = point.get(m.EXPERT_LABEL_ACCURACY), point.get(m.EXPERT_QUERIES, 0)
            if queried is None or not n or math.isnan(queried):
                continue
            # By hand, not scipy.stats: a screening rule (two standard errors, floored for queries the experts
            # all got right), not a test with a p-value; scipy.stats has no two-proportion z-test.
            noise = 2 * math.sqrt(test * (1 - test) / n_test + max(queried * (1 - queried), 1e-4) / n)
            if queried - test > noise:
                warnings.append(f"{arm} at budget {budget}: the experts were right on {queried:.3f} of the rows "
                                f"they labelled but {test:.3f} on test (more than {noise:.3f} apart): they have "
                                "probably seen those rows (an oracle in disguise)")
    return warnings


# ---------------------------------------------------------------- the document

def document(summary: dict, plots: list[str]) -> str:
    largest = summary["budgets"][-1]
    out = ["# Budget study", "", "## Answer", "", *[f"- {line}" for line in answer(summary)], ""]
    warnings = leakage_warnings(summary)
    if warnings:
        out += ["## Leakage warning", "", *[f"- {w}" for w in warnings], ""]
    sections = [
        ("Set-up", [f"- {line}" for line in setup_lines(summary)]),
        (f"Test accuracy per budget (mean over seeds, {BOOTSTRAP}; median over seeds)", accuracy_table(summary)),
        ("Test macro-F1 per budget (mean over seeds)", f1_table(summary)),
        ("Flagged points", flag_table(summary)),
        (f"Per-class test recall at the largest budget ({largest}; full-data references at the pool), mean over seeds",
         recall_table(summary)),
        ("Training: best epoch / epochs run, optimiser steps, model-selection labels (means over seeds)",
         training_lines(summary)),
        ("Paired comparisons of the area under the learning curve", comparison_table(summary)),
        ("Area under the learning curve, and the budget that reaches a share of full-data supervised",
         aulc_table(summary)),
        (f"Cost of each arm at the largest budget ({largest}; full-data references at the pool)", cost_table(summary)),
        ("Pareto frontier on the priced-cost axis, and which arm to use at which expert price",
         frontier_lines(summary)),
        ("Stopping criteria, judged after the fact on each query arm's curve", stopping_lines(summary)),
    ]
    for title, lines in sections:
        out += [f"## {title}", "", *lines, ""]
    return "\n".join([*out, "## Plots", "", *[f"![{name}]({name})" for name in plots], ""])
