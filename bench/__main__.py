"""`python -m bench [NAME ...] [--quick]`: run the benchmarks, print a table, write bench/results.*."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import BENCHMARKS, report
from bench.harness import Figure, log

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller inputs and shorter runs")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.json and results.md")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    figures: list[Figure] = []
    durations: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        for name in names:
            log(f"== {name}{' (quick)' if args.quick else ''}")
            started = time.perf_counter()
            figures += BENCHMARKS[name].run(args.quick, work)
            durations[name] = time.perf_counter() - started
            log(f"   {name} took {durations[name]:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report.table(figures))
    report.write(figures, args.out, args.quick, durations)
    log(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
