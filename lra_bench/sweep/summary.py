"""The summary of a sweep, from its jobs' outcomes (outcome.py): one table row per job (what ran,
what was skipped because it had finished before, what failed and why, what died), the counts,
and the refreshed leaderboard rows of the runs the sweep touched."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from lra_bench.sweep.outcome import JobOutcome

# Overrides shown in their own columns, or saying only where things go.
OWN_COLUMNS = ("task", "model", "profile", "seed")
NOT_SHOWN = ("results_dir", "data_root", "progress", "tuning")
WHY_WIDTH = 90


def outcome_name(outcome: JobOutcome) -> str:
    """The job's outcome as the summary says it: a job still `started` after its sweep died."""
    return "died" if outcome.outcome == "started" else outcome.outcome


def override_key(override: str) -> str:
    """The key an override sets (`+trainer.x=1` -> trainer.x)."""
    return override.split("=", 1)[0].lstrip("+~")


def varying_overrides(outcomes: list[JobOutcome]) -> dict[int, str]:
    """Per job, the overrides that are not the same in every job of the sweep (the sweep's own
    axes), less those with a column of their own."""
    common = set.intersection(*(set(o.overrides) for o in outcomes)) if outcomes else set()
    shown = {}
    for outcome in outcomes:
        shown[outcome.job] = " ".join(
            o
            for o in outcome.overrides
            if o not in common and override_key(o) not in OWN_COLUMNS + NOT_SHOWN
        )
    return shown


def _value(outcome: JobOutcome, name: str) -> str:
    """A column's value: the run's own field, else the job's override of it."""
    value = getattr(outcome, name)
    if value is None:
        for override in outcome.overrides:
            if override_key(override) == name:
                return override.split("=", 1)[1]
        return "-"
    return str(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def _why(outcome: JobOutcome) -> str:
    if outcome.outcome == "started":
        where = f" on {outcome.host} (pid {outcome.pid})"
        return f"no result: the process{where} ended without one (killed? out of memory?)"
    if outcome.outcome == "skipped":
        return "finished before"
    text = " ".join((outcome.error or "").split())
    return text if len(text) <= WHY_WIDTH else text[: WHY_WIDTH - 3] + "..."


def job_table(outcomes: list[JobOutcome]) -> list[str]:
    """The table of jobs, as aligned text lines."""
    extra = varying_overrides(outcomes)
    header = [
        "job",
        *OWN_COLUMNS,
        "overrides",
        "outcome",
        "status",
        "val %",
        "test %",
        "time",
        "why",
    ]
    rows = [
        [
            str(o.job),
            *(_value(o, name) for name in OWN_COLUMNS),
            extra[o.job] or "-",
            outcome_name(o),
            o.status or "-",
            _percent(o.best_val_accuracy),
            _percent(o.test_accuracy),
            _seconds(o.seconds),
            "" if o.outcome == "ran" else _why(o),
        ]
        for o in outcomes
    ]
    if not any(extra.values()):  # no axis besides the own columns: leave the column out
        header.pop(5)
        for row in rows:
            row.pop(5)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
        for row in [header, *rows]
    ]


def counts_line(outcomes: list[JobOutcome], seconds: float) -> str:
    counts = Counter(outcome_name(o) for o in outcomes)
    parts = [f"{counts[name]} {name}" for name in ("ran", "skipped", "failed", "died")]
    parts[1] += " (finished before)"
    return f"sweep: {len(outcomes)} job(s) in {_seconds(seconds)}: " + ", ".join(parts)


def leaderboard_lines(outcomes: list[JobOutcome]) -> list[str]:
    """The sweep's rows of every result set it wrote into, each leaderboard refreshed first
    (the jobs refreshed it too, but parallel jobs race; this one sees every record)."""
    from lra_bench.leaderboard import format_row, write_leaderboard

    lines = []
    by_set: dict[str, set] = {}
    for o in outcomes:
        if o.result_set and o.variant:
            by_set.setdefault(o.result_set, set()).add((o.task, o.model, o.profile, o.variant))
    for result_set, keys in sorted(by_set.items()):
        try:
            table = write_leaderboard(Path(result_set))
        except Exception as error:  # the records are written either way
            lines.append(f"{result_set}: leaderboard not refreshed: {error}")
            continue
        lines.append(f"leaderboard rows of this sweep ({Path(result_set) / 'leaderboard.csv'}):")
        for _, row in table.iterrows():
            if (row.task, row.model, row.profile, row.variant) in keys:
                lines.append("  " + format_row(row))
    return lines


def summary_text(outcomes: list[JobOutcome], seconds: float) -> str:
    """The whole summary: counts, the job table, the leaderboard rows."""
    if not outcomes:
        return "sweep: no job left an outcome (did any start?)"
    return "\n".join(
        [counts_line(outcomes, seconds), *job_table(outcomes), *leaderboard_lines(outcomes)]
    )
