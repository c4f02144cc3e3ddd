"""The Markdown of a kernels benchmark (a table per op), and two runs side by side."""

from __future__ import annotations

from pathlib import Path


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.3f}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _commit(machine: dict) -> str:
    commit = (machine.get("git_commit") or "unknown")[:12]
    return commit + (" (uncommitted changes)" if machine.get("git_dirty") else "")


def header(document: dict) -> list[str]:
    m, s = document["machine"], document["settings"]
    cuda = f" (CUDA {m['cuda']})" if m.get("cuda") else ""
    load = ""
    if m.get("load_average_start"):
        load = f"; load average {m['load_average_start'][0]} at the start"
        if m.get("load_average_end"):
            load += f", {m['load_average_end'][0]} at the end"
    cpu = f"CPU {m['cpu']}, {m['cpu_count']} cores"
    device = m["device_name"] if m["device"] != "cpu" else cpu
    gpu = f"{m['device']} ({m['device_name']}); " if m["device"] != "cpu" else ""
    lines = [
        f"# Kernel benchmarks: {device}",
        "",
        f"- Machine: {gpu}{cpu}, {m['threads']} torch threads{load}.",
        f"- Software: torch {m['torch']}{cuda}, triton {m.get('triton')}, python {m['python']}.",
        f"- Code: git {_commit(m)}; measured {m['date']}, {m.get('wall_s', '?')} s in all.",
    ]
    if m.get("note"):
        lines.append(f"- Note: {m['note']}")
    lines += [
        f"- Method: {s['warmup']} warm-up call(s), then the median of {s['repeats']} timed calls "
        f"(when the first call takes over {s['slow_seconds']:g} s: one more on CUDA, none on CPU, "
        "where that call is the measurement); forward with autograd recording, "
        "forward + backward through the first output (benchmarks/kernels/timing.py). "
        f"Peak memory: {s['memory_method'] or 'not measured'}; measured when a call takes at "
        f"most {s['slow_seconds']:g} s.",
        "- TFLOP/s: the op's useful FLOPs (benchmarks/kernels/flops.py, the formula under each "
        f"table), forward + backward counted as {1 + s['backward_factor']:g} x forward.",
        "- Not measured, and listed under each table: Triton backends on CPU (the interpreter's "
        f"time means nothing), `reference` beyond length {s['reference_max_length']} (on CPU "
        "not at all where it takes minutes), a "
        f"backend's longer lengths after one forward + backward over {s['skip_after_seconds']:g} "
        "s, backends unavailable here.",
        "",
    ]
    return lines


def _base_rows(rows: list[dict], info: dict) -> dict[int, dict]:
    """length -> the row the speed-ups are against: the first peer that ran, else the op's
    plain PyTorch form."""
    bases: dict[int, dict] = {}
    for row in rows:
        if row["status"] == "ok" and row["kind"] == "peer":
            bases.setdefault(row["length"], row)
    for row in rows:
        if row["status"] == "ok" and row["name"] == info.get("plain_form"):
            bases.setdefault(row["length"], row)
    return bases


def _ratio(base: dict | None, row: dict, key: str) -> str:
    if base is None or not base.get(key) or not row.get(key):
        return "-"
    return f"{base[key] / row[key]:.2f}x"


def op_section(name: str, info: dict, rows: list[dict]) -> list[str]:
    lines = [f"## {name}", ""]
    if info.get("missing_case"):
        return [*lines, "No benchmark case (benchmarks/kernels/cases.py has none for this op).", ""]
    peers = ", ".join(f"{peer}: {state}" for peer, state in info["peers"].items()) or "none"
    lines += [
        f"Shape: {info.get('shape')}; {info.get('dtype')}. FLOPs: {info.get('flops_formula')}",
        "",
        f"Peers: {peers}. Speed-ups are against the peer where it ran, else against "
        f"`{info.get('plain_form')}`.",
        "",
        "| backend | length | fwd ms | fwd+bwd ms | fwd TFLOP/s | fwd+bwd TFLOP/s | peak MiB | "
        "speed-up fwd / fwd+bwd |",
        "|---|---|---|---|---|---|---|---|",
    ]
    bases = _base_rows(rows, info)
    for row in sorted(
        (r for r in rows if r["status"] == "ok"),
        key=lambda r: (r["kind"] == "peer", r["name"], r["length"]),
    ):
        base = bases.get(row["length"])
        label = f"{row['name']} (peer)" if row["kind"] == "peer" else row["name"]
        memory = row.get("peak_mib")
        lines.append(
            f"| {label} | {row['length']} | {_ms(row['fwd_ms'])} | {_ms(row['fwd_bwd_ms'])} | "
            f"{_number(row['tflops_fwd'])} | {_number(row['tflops_fwd_bwd'])} | "
            f"{'-' if memory is None else f'{memory:.1f}'} | "
            f"{_ratio(base, row, 'fwd_ms')} / {_ratio(base, row, 'fwd_bwd_ms')} |"
        )
    missing: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        if row["status"] != "ok":
            missing.setdefault((row["name"], row["status"], row.get("reason", "")), []).append(
                row["length"]
            )
    if missing:
        lines += ["", "Not measured:", ""]
        for (backend, status, reason), lengths in missing.items():
            lines.append(f"- {backend}, length {', '.join(map(str, lengths))}: {status} ({reason})")
    return [*lines, ""]


def markdown(document: dict) -> str:
    lines = header(document)
    for name, info in document["ops"].items():
        rows = [r for r in document["rows"] if r["op"] == name]
        lines += op_section(name, info, rows)
    return "\n".join(lines)


def compare(first: dict, second: dict, names: tuple[Path, Path]) -> str:
    """Two runs (two commits or two machines) side by side: forward and forward + backward of
    every (op, backend, length) both measured, and B's speed-up over A."""
    lines = ["# Kernel benchmarks compared", ""]
    for letter, document, path in (("A", first, names[0]), ("B", second, names[1])):
        m = document["machine"]
        lines.append(
            f"- {letter}: {path} — {m['device_name']}, torch {m['torch']}, git {_commit(m)}, {m['date']}"
        )
    lines += [
        "",
        "| op | backend | length | A fwd ms | B fwd ms | A fwd+bwd ms | B fwd+bwd ms | B speed-up fwd / fwd+bwd |",
        "|---|---|---|---|---|---|---|---|",
    ]
    key = lambda r: (r["op"], r["name"], r["length"])  # noqa: E731
    measured_b = {key(r): r for r in second["rows"] if r["status"] == "ok"}
    only = {"A": 0, "B": len(measured_b)}
    for row in first["rows"]:
        if row["status"] != "ok":
            continue
        other = measured_b.get(key(row))
        if other is None:
            only["A"] += 1
            continue
        only["B"] -= 1
        lines.append(
            f"| {row['op']} | {row['name']} | {row['length']} | {_ms(row['fwd_ms'])} | "
            f"{_ms(other['fwd_ms'])} | {_ms(row['fwd_bwd_ms'])} | {_ms(other['fwd_bwd_ms'])} | "
            f"{_ratio(row, other, 'fwd_ms')} / {_ratio(row, other, 'fwd_bwd_ms')} |"
        )
    lines += ["", f"Measured in one run only: A {only['A']}, B {only['B']}.", ""]
    return "\n".join(lines)
