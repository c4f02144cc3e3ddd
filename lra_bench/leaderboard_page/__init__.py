"""The style sheet and script of the leaderboard's HTML page (lra_bench/leaderboard_html.py
writes them inline, so that the page is one file that opens from the file system)."""

from pathlib import Path

PAGE_DIR = Path(__file__).resolve().parent
STYLE = PAGE_DIR / "leaderboard.css"
SCRIPT = PAGE_DIR / "leaderboard.js"
