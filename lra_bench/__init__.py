"""lra-bench: the harness (runner, training engine, run records, leaderboard, plots, data CLI)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
