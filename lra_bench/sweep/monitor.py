"""A sweep's live console: a thread in the launching process that prints one line per job as it
finishes ("3 of 4 done | job 2 ...: ran ok, val 21.9%, test 20.3%, 8 s"), read from the jobs'
outcome files, and, for the submitit launchers (whose jobs write to log files, not to this
console), relays each job's own output: its complete lines as they come, and the latest state of
a progress bar every `bar_every` seconds.

The basic launcher runs jobs in this process and joblib's workers share its console, so their
progress bars and result lines reach it directly.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

from lra_bench.sweep.outcome import JobOutcome, read_outcomes
from lra_bench.sweep.summary import NOT_SHOWN, outcome_name, override_key


def finished_line(outcome: JobOutcome, done: int, expected: int | None) -> str:
    """The line for a job that just finished."""
    progress = f"{done} of {expected} done" if expected else f"{done} done"
    what = " ".join(o for o in outcome.overrides if override_key(o) not in NOT_SHOWN)
    result = outcome_name(outcome)
    if outcome.status and outcome.status != result:  # "ran ok", "failed oom"; not "failed failed"
        result += f" {outcome.status}"
    if outcome.best_val_accuracy is not None:
        result += f", best val {100 * outcome.best_val_accuracy:.2f}%"
    if outcome.test_accuracy is not None:
        result += f", test {100 * outcome.test_accuracy:.2f}%"
    if outcome.seconds is not None:
        result += f", {outcome.seconds:.0f} s"
    if outcome.outcome == "failed" and outcome.error:
        result += f": {' '.join(outcome.error.split())[:120]}"
    return f"[sweep] {progress} | job {outcome.job} {what}: {result}"


class LogRelay:
    """Follows the submitit log files under a folder (`<job id>/<job id>_<task>_log.out|err`)."""

    def __init__(self, folder: Path, bar_every: float = 10.0) -> None:
        self.folder = Path(folder)
        self.bar_every = bar_every
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, str] = {}
        self._bar_shown: dict[Path, tuple[float, str]] = {}

    def poll(self, labels: dict[str, str], final: bool = False) -> list[str]:
        """New lines since the last poll, each prefixed with its job's label (`labels`: submitit
        job id -> label); `final`: also the last unfinished line of every file."""
        lines = []
        for path in sorted(self.folder.glob("*/*_log.*")):
            if path.suffix not in (".out", ".err"):
                continue
            label = labels.get(path.parent.name, f"submitit {path.parent.name}")
            with open(path, "rb") as handle:
                handle.seek(self._offsets.get(path, 0))
                new = handle.read()
                self._offsets[path] = handle.tell()
            text = self._partial.get(path, "") + new.decode(errors="replace")
            *complete, rest = text.split("\n")
            self._partial[path] = rest
            for line in complete:
                line = _last_state(line)
                if line:
                    lines.append(f"[{label}] {line}")
            bar = _last_state(rest)
            shown_at, shown = self._bar_shown.get(path, (0.0, ""))
            due = final or time.monotonic() - shown_at >= self.bar_every
            if bar and bar != shown and due:
                self._bar_shown[path] = (time.monotonic(), bar)
                lines.append(f"[{label}] {bar}")
        return lines


# Terminal control sequences (tqdm moves the cursor up for a nested bar): relayed under a
# "[job N]" prefix they would move this console's cursor instead.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _last_state(text: str) -> str:
    """What a terminal would show of a line that carriage returns rewrote (a progress bar),
    without control sequences."""
    states = [s for s in _CONTROL.sub("", text).split("\r") if s.strip()]
    return states[-1].rstrip() if states else ""


class SweepMonitor:
    """The thread: polls every `interval` seconds until stopped."""

    def __init__(
        self,
        sweep_dir: Path,
        expected: int | None,
        relay_logs: bool,
        interval: float = 1.0,
        out=None,
    ) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.expected = expected
        self.relay = LogRelay(self.sweep_dir / ".submitit") if relay_logs else None
        self.interval = interval
        self.out = out or sys.stdout
        self._announced: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweep-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread after one last poll (so that no finished job goes unannounced)."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.poll(final=True)

    def poll(self, final: bool = False) -> None:
        outcomes = read_outcomes(self.sweep_dir)
        lines = []
        if self.relay is not None:
            labels = {o.submitit_job: f"job {o.job}" for o in outcomes if o.submitit_job}
            lines += self.relay.poll(labels, final=final)
        for outcome in outcomes:
            if outcome.finished and outcome.job not in self._announced:
                self._announced.add(outcome.job)
                lines.append(finished_line(outcome, len(self._announced), self.expected))
        if lines:
            print("\n".join(lines), file=self.out, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except OSError:  # a file being replaced as we read it: the next poll sees it
                continue
