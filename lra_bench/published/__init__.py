"""The papers' published numbers, inputs of the reports (not results of ours):
lra_accuracy.csv (test accuracy per model and task, from the LRA paper and its successors; a
copy of shared/published/) and lra_speed_memory.csv (the LRA paper's Table 2)."""

from pathlib import Path

PUBLISHED_DIR = Path(__file__).resolve().parent
ACCURACY_CSV = PUBLISHED_DIR / "lra_accuracy.csv"
SPEED_MEMORY_CSV = PUBLISHED_DIR / "lra_speed_memory.csv"
