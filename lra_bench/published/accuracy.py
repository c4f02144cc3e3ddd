"""The published LRA accuracies (lra_accuracy.csv) as rows the leaderboard can join on:
one row per (model, protocol, task), named as our zoo names the model.

A published row is renamed only where it is the model and setting our config of that name
runs (`AS_OURS`); a model we do not have (or a published variant of one, e.g. Mega-chunk, S4 v1)
keeps the CSV's name, so it never claims to be one of our rows. Self-pretrained rows (SPT,
LRA_SPEC 5.8) get their protocol, so they are never set beside from-scratch runs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lra_bench.published import ACCURACY_CSV
from lra_bench.records import PROTOCOLS, SCRATCH  # noqa: F401 (PROTOCOLS: for the leaderboard)

# LRA's averages: the LRA paper's over five tasks (Path-X left out), the state-space papers'
# over six. The two are never mixed in one column.
TASKS5 = ("listops", "text", "retrieval", "image", "pathfinder")
TASKS6 = (*TASKS5, "pathx")
# Classes per task (LRA_SPEC section 2; the loaders' num_classes, which a test holds equal):
# chance is 1 / classes.
CLASSES = {"listops": 10, "text": 2, "retrieval": 2, "image": 10, "pathfinder": 2, "pathx": 2}

# Published name -> (our model name, protocol), where our config is that model and setting.
AS_OURS = {
    "luna_256": ("luna", SCRATCH),  # conf/model/luna.yaml: packed_length 256
    "s4d_legs": ("s4d", SCRATCH),  # conf/model/s4d.yaml: init legs
    "transformer_causal_spt": ("transformer", "spt-causal"),  # SPT paper, causal pretraining
}
# Rows that are reference rates, not models.
NOT_MODELS = ("chance",)
FAIL = "FAIL"  # published Path-X entry of a model no better than chance


def model_and_protocol(published_name: str) -> tuple[str, str]:
    """(our model name, protocol) of a published row; the published name itself, from
    scratch, for a model that is not one of ours."""
    return AS_OURS.get(published_name, (published_name, SCRATCH))


def read_published_accuracy(path: Path = ACCURACY_CSV) -> pd.DataFrame:
    """Long form of lra_accuracy.csv: model, protocol, published_name, source, task, accuracy
    (%, NaN where not published or FAIL), failed (the entry was FAIL), avg5, avg6 (the
    averages as the paper printed them, NaN where it printed none)."""
    wide = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = []
    for _, entry in wide.iterrows():
        if entry.model in NOT_MODELS:
            continue
        model, protocol = model_and_protocol(entry.model)
        for task in TASKS6:
            text = entry[task].strip()
            rows.append(
                {
                    "model": model,
                    "protocol": protocol,
                    "published_name": entry.model,
                    "source": entry.source,
                    "task": task,
                    "accuracy": float(text) if text not in ("", FAIL) else float("nan"),
                    "failed": text == FAIL,
                    "avg5": float(entry.avg5) if entry.avg5 else float("nan"),
                    "avg6": float(entry.avg6) if entry.avg6 else float("nan"),
                }
            )
    table = pd.DataFrame(rows)
    duplicated = table.duplicated(["model", "protocol", "task"])
    if duplicated.any():
        names = sorted(set(table[duplicated].model))
        raise ValueError(f"{path}: several published rows map to {', '.join(names)}")
    return table
