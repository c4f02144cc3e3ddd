"""Pathfinder and Path-X (LRA sections 2.5, 2.6): the loader of the official layout and of
generator shards (`loader.py`), and the re-implemented snakes generator (`generator.py`: the
sample parameters in `params.py`, the drawing in `snakes.py`, the rendering in `render.py`, the
shard files in `shards.py`)."""

from tasks.pathfinder.loader import Pathfinder

__all__ = ["Pathfinder"]
