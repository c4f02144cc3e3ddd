"""Rendering a page in headless Chromium: its DOM after the scripts ran, or a screenshot. The
leaderboard page's test and the README's screenshot use it.

    python -m lra_bench.headless results/zoo_mini/leaderboard.html docs/leaderboard.png --size 1400x1500

Chromium is Debian's `chromium` package; scripts/install_chromium.sh installs it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from lra_bench import REPO_ROOT

INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install_chromium.sh"
# A quiet, offline, throw-away browser: no sandbox (it runs as root in containers), no GPU, no
# background traffic, a fresh profile each time.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    """The path of an installed Chromium, or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def install_chromium(timeout: float = 900) -> tuple[str | None, str]:
    """Runs scripts/install_chromium.sh: (the browser's path or None, what the script said)."""
    try:
        done = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, str(error)
    said = (done.stderr.strip().splitlines() or [""])[-1]
    return (find_chromium() if done.returncode == 0 else None), said


def page_url(page: Path, fragment: str = "") -> str:
    """The file:// URL of `page`, with `#fragment` where given."""
    url = Path(page).resolve().as_uri()
    return f"{url}#{fragment}" if fragment else url


def _run(browser: str, arguments: list[str], url: str, timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *arguments, url],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"chromium exited with {done.returncode}: {last}")
    return done.stdout


def dump_dom(browser: str, url: str, timeout: float = 120) -> str:
    """The page's DOM as HTML once it has loaded and its scripts have run."""
    return _run(browser, ["--dump-dom"], url, timeout)


def screenshot(
    browser: str, url: str, out: Path, size: tuple[int, int] = (1400, 1500), timeout=120
) -> Path:
    """A PNG of the page's first `size` pixels (width, height)."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(browser, [f"--screenshot={out}", f"--window-size={size[0]},{size[1]}"], url, timeout)
    if not out.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {out}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="screenshot of a page in headless Chromium")
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="1400x1500", help="WIDTHxHEIGHT in pixels")
    parser.add_argument("--fragment", default="", help="what follows # in the URL")
    args = parser.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        raise SystemExit(f"no chromium; install it with {INSTALL_SCRIPT}")
    width, height = (int(v) for v in args.size.split("x"))
    print(screenshot(browser, page_url(args.page, args.fragment), args.out, (width, height)))


if __name__ == "__main__":
    main()
