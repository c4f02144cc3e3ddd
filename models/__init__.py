"""The model zoo: one backbone (embed -> blocks of mixer + feed-forward -> pool -> head) and one
file per sequence mixer under `models/mixers/`. A mixer is chosen by its Hydra `_target_`."""
