import sys, time, json; sys.path.insert(0, ".")  # run from the project root: python benchmarks/results/study-2026-11-29/min_steps.py SEED
from dataclasses import replace
from tuning.assets.prepare import DataSettings, prepare
from trainables.study_arms import StudySettings, run_study_arm
from trainables.config import TrialConfig
seed = int(sys.argv[1])
best = json.load(open("benchmarks/results/comparison-all-2026-11-26/best_configs.json"))["methods"]
sup = best["supervised"]["config"]
recipe = TrialConfig.from_dict({k: sup[k] for k in ("learning_rate","batch_size","epochs","weight_decay","warmup_ratio")} | {"method": "active_loop"})
p = prepare(DataSettings(teacher_split=0.5), need_teachers=True, progress=lambda *a: None)
for min_steps in (100, 150, 250):
    st = StudySettings(arm="supervised", seed=seed, budgets=(50, 200), initial=50, recipe=recipe, min_steps=min_steps)
    def report(metrics, model, state):
        print(json.dumps({"seed": seed, "min_steps": min_steps, "budget": metrics["budget"], "val": metrics["val_accuracy"], "test": metrics["test_accuracy"], "f1": round(metrics["test_macro_f1"],3), "sec": round(metrics["train_seconds"],1), "epochs": metrics["epoch"], "steps": metrics["steps"]}), flush=True)
    run_study_arm(st, p, report)
