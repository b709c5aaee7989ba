"""The figures as a console table, bench/results.json and a markdown snippet for the README."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import psutil

from bench.harness import Figure

HEADERS = ("benchmark", "case", "figure", "reference", "ratio", "target", "met")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _row(figure: Figure) -> tuple[str, ...]:
    reference = f"{_number(figure.reference)} ({figure.reference_label})" if figure.reference is not None else ""
    ratio = f"{figure.ratio:.3f}" if figure.ratio is not None else ""
    met = "" if figure.met is None else ("yes" if figure.met else "NO")
    return (figure.benchmark, figure.case, f"{_number(figure.value)} {figure.unit}", reference, ratio,
            figure.target, met)


def table(figures: list[Figure]) -> str:
    rows = [HEADERS, *(_row(f) for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = [f"  {f.benchmark} / {f.case}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}


def markdown(figures: list[Figure], meta: dict[str, Any]) -> str:
    lines = [
        f"Benchmarks (`python -m bench{' --quick' if meta['quick'] else ''}`, {meta['date']}, "
        f"{meta['machine']['cpus']} CPUs, Python {meta['machine']['python']}; the emulator runs in its own "
        "process, ratios are against a reference measured in the same run):",
        "",
        "| benchmark | case | figure | reference | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _row(f)) + " |" for f in figures]
    notes = [f"- {f.benchmark} / {f.case}: {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def write(figures: list[Figure], folder: Path, quick: bool, durations: dict[str, float]) -> None:
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "quick": quick, "machine": machine(),
            "duration_s": {name: round(seconds, 1) for name, seconds in durations.items()}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({**meta, "figures": [f.as_dict() for f in figures]}, indent=2)
                                         + "\n")
    (folder / "results.md").write_text(markdown(figures, meta))
