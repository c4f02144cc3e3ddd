"""lra_bench/allocator.py: after keep_freed_memory() a freed large block stays in the process
for the next step (the resident set does not drop at free), and LRA_MALLOC=default leaves glibc
as it is (it unmaps the block at free). Each case runs in a fresh process: the setting is
process-wide."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from lra_bench import REPO_ROOT

PROBE = """
import re, torch
from lra_bench.allocator import describe, keep_freed_memory
said = keep_freed_memory() + " / " + describe()
def rss_mib():
    text = open("/proc/self/status").read()
    return int(re.search(r"^VmRSS:\\s+(\\d+) kB", text, re.M).group(1)) / 1024
block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written (so resident)
held = rss_mib()
del block
print(said, "|", round(held - rss_mib()))
"""


def probe(**env) -> tuple[str, int]:
    # tests/conftest.py sets LRA_MALLOC=default for the test process; the probe starts clean.
    clean = {k: v for k, v in os.environ.items() if k != "LRA_MALLOC"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env={**clean, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    said, released = done.stdout.strip().rsplit("|", 1)
    return said.strip(), int(released)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_freed_blocks_are_kept_unless_the_user_says_default():
    said, released = probe()
    assert said == "glibc: freed blocks up to 1 GiB kept / glibc: freed blocks up to 1 GiB kept"
    assert released < 8  # MiB given back at free: the block stays for reuse
    said, released = probe(LRA_MALLOC="default")
    assert said == "default (LRA_MALLOC=default) / default"  # the record says "default"
    assert released > 56  # glibc's own behaviour: the 64 MiB mapping is returned at free
