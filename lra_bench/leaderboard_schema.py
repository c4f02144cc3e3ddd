"""The leaderboard CSV's columns: the published artifact's schema, in order, with what each
column means. A change here is a change of `SCHEMA_VERSION`; the README's "Leaderboard columns"
table is this one (tests/test_leaderboard_schema.py holds them equal).
"""

from __future__ import annotations

SCHEMA_VERSION = 1
BUDGET = 1.10  # LRA's rule: at most 10% more parameters than the Transformer of the same task

# One row per KEY: runs of different profiles, protocols or settings are never averaged.
KEY = ["task", "model", "profile", "protocol", "variant"]

COLUMN_DOCS = {
    "task": "LRA task (listops, text, retrieval, image, pathfinder, pathx)",
    "model": "model name (conf/model/<name>.yaml)",
    "profile": "smoke, mini or lra: results of different profiles never share a row",
    "protocol": "scratch, spt-masked or spt-causal (self-pretrained first); scratch when the "
    "record names none",
    "variant": "hash of the run's config without its seed: rows with different settings differ",
    "test_acc_mean": "test accuracy (%), mean over the ok seeds",
    "test_acc_std": "sample standard deviation over the ok seeds (empty with one seed)",
    "seeds": "runs with status ok",
    "failed": "runs that failed, diverged or ran out of memory",
    "val_acc_mean": "validation accuracy (%) at the best-validation step, mean over ok seeds",
    "majority_rate": "accuracy (%) of always guessing the most frequent test label",
    "chance_rate": "accuracy (%) of guessing uniformly: 100 / number of classes",
    "above_majority": "test_acc_mean minus majority_rate (points)",
    "selected": "True for the variant that stands for (task, model, profile, protocol): the "
    "highest val_acc_mean (then most seeds); averages and the parameter budget use these rows",
    "avg5": "mean test_acc_mean over listops, text, retrieval, image, pathfinder (LRA's "
    "average, Path-X left out); on selected rows, only where all five are present",
    "avg6": "the same over the five and pathx (the state-space papers' average)",
    "published_acc": "the published test accuracy (%) of this model, protocol and task; "
    "lra-profile rows only",
    "diff_vs_published": "test_acc_mean minus published_acc (points)",
    "published_avg5": "the published 5-task average, as printed",
    "published_avg6": "the published 6-task average, as printed",
    "published_source": "where the published numbers come from (FAIL: no better than chance)",
    "parameters": "parameters of the model, all of them (the run record's count)",
    "params_vs_transformer": "parameters / those of the Transformer's selected row of the same "
    "task, profile and protocol",
    "over_budget": f"True where params_vs_transformer > {BUDGET:.2f} (LRA allowed 10% more)",
    "steps_per_second": "training steps per second, mean over ok seeds (not a speed benchmark: "
    "runs may share a machine)",
    "validation_is_test": "True where the task validates on its test split (Text, as LRA)",
    "git_commits": "git commits the runs were made at (+dirty: with uncommitted changes)",
    "devices": "the devices the runs ran on",
}
COLUMNS = list(COLUMN_DOCS)
