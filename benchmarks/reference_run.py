"""Measure the SoftHSM2 reference run: cases, wall time with -n 1 and -n 2, peak memory.

    .venv/bin/python benchmarks/reference_run.py [--repeat 3]

Each run is `pkcs11-conformance run --output <tmp> -n N` in a fresh throwaway token.
Wall time is the median over the repeats; peak memory is the largest resident set of
any single process of the run (getrusage of the children: controller, xdist workers and
the child processes of raw checks) over all runs so far, so the -n 2 row covers both.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(workers: int) -> tuple[float, int, dict[str, int]]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--output", out,
                        "-n", str(workers), "-q"], check=False, capture_output=True)
        elapsed = time.perf_counter() - start
        document = json.loads((Path(out) / "softhsm2" / "results.json").read_text())
    return elapsed, len(document["cases"]), document["summary"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"host: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}")
    print("| workers | cases | wall time (median) | peak RSS of one process | statuses |")
    print("|---|---|---|---|---|")
    for workers in (1, 2):
        times, cases, summary = [], 0, {}
        for _ in range(args.repeat):
            elapsed, cases, summary = one_run(workers)
            times.append(elapsed)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"| {workers} | {cases} | {statistics.median(times):.1f} s | "
              f"{peak_mib:.0f} MiB | {', '.join(f'{n} {s}' for s, n in summary.items())} |")


if __name__ == "__main__":
    main()
