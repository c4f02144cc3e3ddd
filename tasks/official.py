"""The official sizes of the LRA data (LRA_SPEC section 2.0), for `lra-bench data verify` and
`lra-bench data stats` to compare against."""

from __future__ import annotations

# Examples per split, classes and LRA's maximum length (per document for Retrieval).
OFFICIAL = {
    "listops": {"train": 96_000, "val": 2_000, "test": 2_000, "classes": 10, "max_length": 2000},
    # IMDB has no validation split; LRA validates on test.
    "text": {"train": 25_000, "val": 25_000, "test": 25_000, "classes": 2, "max_length": 4000},
    "retrieval": {
        "train": 147_086,
        "val": 18_090,
        "test": 17_437,
        "classes": 2,
        "max_length": 4000,
    },
    "image": {"train": 45_000, "val": 5_000, "test": 10_000, "classes": 10, "max_length": 1024},
    "pathfinder": {
        "train": 160_000,
        "val": 20_000,
        "test": 20_000,
        "classes": 2,
        "max_length": 1024,
    },
    "pathx": {"train": 160_000, "val": 20_000, "test": 20_000, "classes": 2, "max_length": 16384},
}

# Files of the archive and their row counts (ListOps files have a header row on top).
LISTOPS_ROWS = {"basic_train.tsv": 96_000, "basic_val.tsv": 2_000, "basic_test.tsv": 2_000}
AAN_ROWS = {
    "new_aan_pairs.train.tsv": 147_086,
    "new_aan_pairs.eval.tsv": 18_090,
    "new_aan_pairs.test.tsv": 17_437,
}
# Images per difficulty folder; one is an empty file in pathfinder32/curv_baseline.
PATHFINDER_IMAGES = 200_000
KNOWN_EMPTY_IMAGES = {"pathfinder32/curv_baseline/imgs/0/sample_172.png"}
