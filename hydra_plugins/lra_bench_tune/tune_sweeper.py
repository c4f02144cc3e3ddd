"""`hydra/sweeper=tune`: an Optuna search (hydra-optuna-sweeper) over one (task, model, profile).

    python -m lra_bench.run -m hydra/sweeper=tune task=listops model=s4d profile=mini \
        hydra.sweeper.n_trials=20

What it adds to the Optuna sweeper:

- the search space of the model (`search_spaces` in conf/hydra/sweeper/tune.yaml: learning rate,
  weight decay, dropout and warm-up per model, `default` for models without their own); warm-up
  is searched as shares of the run's trainer.max_steps (`warmup_shares`), made into steps here;
- the objective, maximised, is the run's best validation accuracy (the Hydra app returns it;
  test accuracy is never looked at);
- every trial is an ordinary run with its record, marked `tuning=<study>`, which puts it in the
  result set `<results_dir>/tuning/<study>/` (lra_bench/identity.py, result_set_dir): trials
  have their own leaderboard there and never mix with the canonical runs of results_dir;
- the study lives in `<results_dir>/tuning/<study>/study.db` (SQLite), and `n_trials` is the
  number of finished trials the study should hold: the same command run again (after an
  interruption, or with a larger n_trials) runs only the missing ones. A trial that was running
  when its sweep died is marked failed and its parameters are tried first, so its run resumes
  from its checkpoint; the sampler's seed moves on by the trials the study holds, so that the
  new trials are not the first session's again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

# One study tunes one experiment: these keys are never swept by it.
FIXED_KEYS = ("task", "model", "profile", "seed")
TUNING_DIR = "tuning"  # as lra_bench.identity.TUNING_DIR (plugins must not import the app)
STUDY_FILE = "study.db"


def warmup_choice(shares: list[float], max_steps: int) -> str | None:
    """trainer.warmup_steps as an Optuna choice over `shares` of max_steps (None: one value)."""
    steps = sorted({round(float(share) * max_steps) for share in shares})
    if len(steps) < 2:
        return None
    return f"choice({', '.join(map(str, steps))})"


def model_search_space(search_spaces: dict, model: str, max_steps: int) -> dict[str, str]:
    """{override key: Optuna sweep} for `model`: its own entries over `default`'s."""
    space = {**search_spaces.get("default", {}), **search_spaces.get(model, {})}
    shares = space.pop("warmup_shares", None)
    if shares:
        choice = warmup_choice(list(shares), max_steps)
        if choice is not None:
            space["trainer.warmup_steps"] = choice
    return {str(k): str(v) for k, v in space.items()}


def study_dir(results_dir: str, study: str) -> Path:
    return Path(results_dir) / TUNING_DIR / study


def refuse_fixed_sweeps(arguments: list[str]) -> None:
    """A sweep over task, model, profile or seed would make Optuna tune it as a parameter."""
    parsed = OverridesParser.create().parse_overrides(arguments)
    swept = [o.key_or_group for o in parsed if o.is_sweep_override()]
    wrong = [key for key in swept if key in FIXED_KEYS]
    if wrong:
        raise ValueError(
            f"hydra/sweeper=tune tunes one task, model and profile at a time (seed fixed): "
            f"{', '.join(wrong)} cannot be swept; start one study per value"
        )


class TuneSweeper(Sweeper):
    def __init__(
        self,
        sampler: Any,
        n_trials: int,
        n_jobs: int,
        study_name: str,
        search_spaces: DictConfig,
        params: DictConfig | None = None,
    ) -> None:
        self.sampler = sampler  # its config (tune.yaml: _recursive_ false): see _resuming.py
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.study_name = study_name
        self.search_spaces = OmegaConf.to_container(search_spaces, resolve=True)
        self.params = OmegaConf.to_container(params, resolve=True) if params else {}
        self.impl = None  # a _resuming.ResumingOptunaSweeperImpl once set up

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        # Imported here: Hydra imports this module in every process it starts (to find its
        # plugins), and optuna takes seconds to import.
        from hydra_plugins.lra_bench_tune._resuming import ResumingOptunaSweeperImpl

        folder = study_dir(str(config.results_dir), self.study_name)
        folder.mkdir(parents=True, exist_ok=True)
        space = model_search_space(
            self.search_spaces, str(config.model.name), int(config.trainer.max_steps)
        )
        params = {**space, **self.params, "tuning": self.study_name}
        self.impl = ResumingOptunaSweeperImpl(
            sampler=self.sampler,
            direction="maximize",
            storage=f"sqlite:///{folder.resolve() / STUDY_FILE}",
            study_name=self.study_name,
            n_trials=self.n_trials,
            n_jobs=self.n_jobs,
            max_failure_rate=1.0,  # a failed trial is recorded as such; the study goes on
            search_space=None,
            custom_search_space=None,
            params=OmegaConf.create(params),
        )
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        refuse_fixed_sweeps(arguments)
        assert self.impl is not None
        return self.impl.sweep(arguments)
