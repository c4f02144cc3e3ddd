"""ListOps (LRA section 2.1): the loader of the official TSV files (`loader.py`) and LRA's
generator (`generator.py`)."""

from tasks.listops.loader import ListOps

__all__ = ["ListOps"]
