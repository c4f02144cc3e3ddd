"""Sweeps: what each job of a Hydra multirun did, the sweep's live lines, its summary table.

Every job of a multirun leaves `outcome.json` in its job folder (`<sweep dir>/<job number>/`):
`started` when it begins, then what it did (outcome.py). The callback of conf/config.yaml
(callback.py) watches those files while the sweep runs (monitor.py: one line per finished job,
and, for the submitit launchers, the jobs' own output from their log files), and at the end
prints the summary table (summary.py) and exits non-zero when a job did not end ok.
"""
