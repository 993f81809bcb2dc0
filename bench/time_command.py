#!/usr/bin/env python3
"""Time a command's whole process a few times and report the median wall time.

Usage: time_command.py --runs N --stdout FILE --out RESULT.json -- COMMAND ARGS...

The command's standard output goes to FILE (the last run's), its standard error is kept
and searched for a line "timing: parse_s=X fit_s=Y" (conflictscope prints one when
CONFLICTSCOPE_TIMING=1); X and Y are reported as medians too, or null when absent.
Standard library only.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

TIMING = re.compile(r"^timing:.*?\bparse_s=([0-9.eE+-]+).*?\bfit_s=([0-9.eE+-]+)", re.MULTILINE)


def median_or_none(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--stdout", required=True, help="where the command's standard output goes")
    p.add_argument("--out", required=True, help="where to write the timings as JSON")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command given")
    if args.runs < 1:
        p.error("--runs must be >= 1")

    env = dict(os.environ, CONFLICTSCOPE_TIMING="1")
    walls, parses, fits = [], [], []
    for i in range(args.runs):
        with open(args.stdout, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, env=env)
            wall = time.perf_counter() - start
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            sys.stderr.write(err)
            print(f"command failed with exit status {proc.returncode}: {' '.join(command)}", file=sys.stderr)
            return 1
        m = TIMING.search(err)
        parse_s = float(m.group(1)) if m else None
        fit_s = float(m.group(2)) if m else None
        walls.append(wall)
        parses.append(parse_s)
        fits.append(fit_s)
        detail = f" (parse {parse_s:.3f} s, fit {fit_s:.3f} s)" if m else " (no timing line on stderr)"
        print(f"swift: run {i + 1}/{args.runs}: {wall:.3f} s wall{detail}")

    result = {
        "runs": args.runs,
        "wall_s": walls,
        "median_s": statistics.median(walls),
        "parse_s": median_or_none(parses),
        "fit_s": median_or_none(fits),
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
