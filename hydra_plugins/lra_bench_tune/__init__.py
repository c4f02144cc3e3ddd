"""lra-bench's tuning sweeper (`hydra/sweeper=tune`, conf/hydra/sweeper/tune.yaml). Hydra finds
sweepers only in the `hydra_plugins` namespace package, hence this folder; the logic is in
tune_sweeper.py (the Optuna-dependent part in _resuming.py, which the plugin scan does not import)."""
