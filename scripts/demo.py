"""`make demo`: run every sample job in jobs/ on the built-in emulator and say where results are."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def demo_jobs() -> list[Path]:
    return sorted((ROOT / "jobs").glob("*.toml"))


def make_long_recording() -> int:
    """jobs/transcribe_long.toml reads sample_data/long_audio/ (git-ignored): built once, a few seconds."""
    print("\n=== sample_data/long_audio (scripts/make_long_recording.py) ===", flush=True)
    return subprocess.call([sys.executable, "scripts/make_long_recording.py", "--if-missing"], cwd=ROOT)


def main() -> int:
    pipeline = [sys.executable, "-m", "pipeline"]
    worst = 0
    if make_long_recording() != 0:
        print("could not build sample_data/long_audio: jobs/transcribe_long.toml will fail", flush=True)
    for job in demo_jobs():
        name = job.stem
        shutil.rmtree(ROOT / "out" / name, ignore_errors=True)  # a demo starts fresh
        print(f"\n=== {job.relative_to(ROOT)} ===", flush=True)
        code = subprocess.call([*pipeline, "run", str(job.relative_to(ROOT)), "--progress-every", "5"], cwd=ROOT)
        print(f"exit code {code}; results in out/{name}/results/, failures in out/{name}/failures/", flush=True)
        worst = max(worst, code)
    print("\nRead results with pyarrow, pandas, polars or DuckDB, e.g.:")
    print("  python -c \"import pyarrow.dataset as ds; print(ds.dataset('out/embed-corpus/results').to_table())\"")
    return 0 if worst <= 1 else worst


if __name__ == "__main__":
    sys.exit(main())
