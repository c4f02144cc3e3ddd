"""The Optuna sweeper of hydra-optuna-sweeper, its `n_trials` read as the study's total of
finished trials (tune_sweeper.py). In a module whose name starts with "_", which Hydra's plugin
scan does not import: optuna is imported only by a sweep that uses it."""

from __future__ import annotations

import os

# optuna 2.x uses SQLAlchemy 1.4's API, pinned (requirements.txt): its "not compatible with
# SQLAlchemy 2.0" notice says nothing to a user.
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
import optuna  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402


def seeded_sampler(config: DictConfig, held: int):
    """The sampler of `config` for a study that holds `held` trials already: its seed moved on by
    that many, so that a resumed study does not propose the first session's trials again (a
    restarted sampler would replay its draws), and the same study resumed at the same point
    still proposes the same trials."""
    config = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    if config.get("seed") is not None:
        config.seed = int(config.seed) + held
    return instantiate(config)


class ResumingOptunaSweeperImpl(OptunaSweeperImpl):
    """The Optuna sweeper, its n_trials read as the study's total of finished trials; `sampler`
    is the sampler's config, instantiated once the study's trials are known."""

    def sweep(self, arguments: list[str]) -> None:
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=None,
            directions=self._get_directions(),
            load_if_exists=True,
        )
        finished = 0
        held = study.get_trials(deepcopy=False)
        self.sampler = seeded_sampler(self.sampler, len(held))
        for trial in held:
            if trial.state == optuna.trial.TrialState.COMPLETE:
                finished += 1
            elif trial.state == optuna.trial.TrialState.RUNNING:  # its sweep died
                study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                study.enqueue_trial(trial.params)
        total = self.n_trials
        self.n_trials = max(0, total - finished)
        print(
            f"study {self.study_name}: {finished} of {total} trials finished before; "
            f"{self.n_trials} to run ({self.storage})",
            flush=True,
        )
        super().sweep(arguments)
