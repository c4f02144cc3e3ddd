"""The run record's git state (lra_bench/environment.py): a run that writes into the repository's
results/ (the leaderboards it refreshes) must not mark the next run's code as dirty; any other
tracked change must."""

from __future__ import annotations

import subprocess

from lra_bench.environment import git_state


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_dirty_means_a_tracked_change_outside_results(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "leaderboard.md").write_text("| a |\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    state = git_state(tmp_path)
    assert len(state["commit"]) == 40 and state["dirty"] is False

    (tmp_path / "results" / "leaderboard.md").write_text("| a |\n| b |\n")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_state(tmp_path)["dirty"] is False

    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path)["dirty"] is True


def test_outside_a_repository_the_state_is_unknown(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
