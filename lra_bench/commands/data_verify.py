"""`lra-bench data verify DIR`: is the imported LRA release complete? Row and image counts of every
task folder, compared with the official figures (LRA_SPEC section 2.0)."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Check:
    item: str
    found: str
    expected: str
    ok: bool


def count_lines(path: Path) -> int:
    """Lines of a file, read in 16 MiB blocks (the AAN training file is 8.5 GB); a last line
    without a newline counts."""
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(16 << 20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def verify_listops(root: Path) -> list[Check]:
    from tasks.official import LISTOPS_ROWS
    from tasks.release import LISTOPS_DIR

    checks = []
    for name, expected in LISTOPS_ROWS.items():
        path = root / LISTOPS_DIR / name
        found = count_lines(path) - 1 if path.exists() else None  # minus the header row
        checks.append(_count_check(f"{LISTOPS_DIR}/{name} rows", found, expected))
    return checks


def verify_aan(root: Path, quick: bool) -> list[Check]:
    from tasks.official import AAN_ROWS
    from tasks.release import AAN_DIR

    checks = []
    for name, expected in AAN_ROWS.items():
        path = root / AAN_DIR / name
        if quick and path.exists():
            size = f"{path.stat().st_size / 1e9:.2f} GB (rows not counted: --quick)"
            checks.append(Check(f"{AAN_DIR}/{name}", size, "present", True))
            continue
        found = count_lines(path) if path.exists() else None
        checks.append(_count_check(f"{AAN_DIR}/{name} rows", found, expected))
    return checks


def verify_pathfinder(root: Path, quick: bool) -> list[Check]:
    """Every pathfinder<R>/<difficulty> folder present: metadata rows, and (unless quick) that
    each image exists and is not empty (only the one known empty file is accepted)."""
    from tasks.official import KNOWN_EMPTY_IMAGES, PATHFINDER_IMAGES
    from tasks.pathfinder.loader import DIFFICULTIES, read_metadata

    checks = []
    numbered = [(re.fullmatch(r"pathfinder(\d+)", p.name), p) for p in root.glob("pathfinder*")]
    resolutions = [p for _, p in sorted((int(m[1]), p) for m, p in numbered if m and p.is_dir())]
    if not resolutions:
        checks.append(Check("pathfinder*/", "absent", "pathfinder32 ... pathfinder256", False))
    for resolution in resolutions:
        for folder_name in DIFFICULTIES.values():
            folder = resolution / folder_name
            item = f"{resolution.name}/{folder_name}"
            if not folder.is_dir():
                checks.append(Check(item, "absent", "present", False))
                continue
            entries = read_metadata(folder)
            checks.append(_count_check(f"{item} metadata rows", len(entries), PATHFINDER_IMAGES))
            if quick:
                continue
            missing, empty = [], []
            for relative, _ in entries:
                path = folder / relative
                if not path.exists():
                    missing.append(relative)
                elif path.stat().st_size == 0 and f"{item}/{relative}" not in KNOWN_EMPTY_IMAGES:
                    empty.append(relative)
            checks.append(_count_check(f"{item} missing images", len(missing), 0, missing))
            checks.append(_count_check(f"{item} unexpected empty images", len(empty), 0, empty))
    return checks


def _count_check(item: str, found: int | None, expected: int, examples=()) -> Check:
    if found is None:
        return Check(item, "absent", f"{expected:,}", False)
    text = f"{found:,}" + (f" (e.g. {', '.join(examples[:3])})" if examples else "")
    return Check(item, text, f"{expected:,}", found == expected)


def verify_release(folder: Path, quick: bool = False) -> list[Check]:
    """Checks of a release folder, or of a data root holding one at lra_release/."""
    from tasks.release import release_root

    root = release_root(folder) if release_root(folder).is_dir() else Path(folder)
    return verify_listops(root) + verify_aan(root, quick) + verify_pathfinder(root, quick)


def run(args: argparse.Namespace) -> None:
    checks = verify_release(Path(args.dir), quick=args.quick)
    width = max(len(c.item) for c in checks)
    for check in checks:
        status = "ok" if check.ok else "MISMATCH"
        print(f"{check.item:<{width}}  {check.found:>12}  expected {check.expected:>9}  {status}")
    failed = sum(not c.ok for c in checks)
    print(f"{len(checks) - failed} of {len(checks)} checks passed")
    if failed:
        sys.exit(1)


def register_data(data_commands: argparse._SubParsersAction) -> None:
    parser = data_commands.add_parser(
        "verify", help="check an imported LRA release against the official counts"
    )
    parser.add_argument("dir", help="the data root (holding lra_release/) or the release folder")
    parser.add_argument(
        "--quick", action="store_true", help="skip counting AAN rows and checking each image"
    )
    parser.set_defaults(handler=run)
