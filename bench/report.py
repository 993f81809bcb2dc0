#!/usr/bin/env python3
"""Summarise the ranking benchmark: human-readable lines, then one JSON line last.

Usage: report.py SWIFT_TIMING.json REFERENCE.json

Exits 1 (after printing everything) when the point estimates disagree by 1e-6 or more,
or when a timed group could not be compared. Standard library only.
"""

import json
import sys

SCORE_TOLERANCE = 1e-6


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        swift = json.load(fh)
    with open(argv[2], encoding="utf-8") as fh:
        ref = json.load(fh)

    cmp = ref.get("comparison") or {}
    diffs = cmp.get("max_diff") or {}
    problems = cmp.get("problems") or []
    swift_s = swift["median_s"]
    reference_s = ref["reference_s"]
    ratio = reference_s / swift_s if swift_s > 0 else None
    score_diff = diffs.get("score")
    agreed = score_diff is not None and score_diff < SCORE_TOLERANCE and not problems

    def fmt(x, spec):
        return "n/a" if x is None else format(x, spec)

    print()
    print(f"input: {ref['judgments']} judgments in {ref['groups_total']} groups")
    print(
        f"swift: median of {swift['runs']} whole-process runs = {swift_s:.3f} s "
        f"(parse {fmt(swift['parse_s'], '.3f')} s, fit + bootstrap {fmt(swift['fit_s'], '.3f')} s)"
    )
    print(
        f"reference (pandas + choix, {ref['resamples']} resamples): {ref['mean_group_s']:.1f} s per group, "
        f"timed on {ref['groups_timed']} of {ref['groups_total']} groups; "
        f"SCALED full-input estimate {reference_s:.0f} s"
    )
    print(f"speed-up: {fmt(ratio, '.0f')}x (scaled reference / swift)")
    print(
        f"agreement on the timed groups: max |score diff| {fmt(score_diff, '.2g')} "
        f"({'OK' if agreed else 'FAILED'}, tolerance {SCORE_TOLERANCE:g}); "
        f"interval bounds (Monte Carlo noise): max |ci_low diff| {fmt(diffs.get('ci_low'), '.3f')}, "
        f"max |ci_high diff| {fmt(diffs.get('ci_high'), '.3f')}"
    )
    for problem in problems:
        print("agreement problem: " + problem)

    summary = {
        "groups": ref["groups_total"],
        "judgments": ref["judgments"],
        "swift_s": round(swift_s, 4),
        "parse_s": swift["parse_s"],
        "fit_s": swift["fit_s"],
        "reference_s": round(reference_s, 1),
        "ratio": None if ratio is None else round(ratio, 1),
        "reference_groups_timed": ref["groups_timed"],
        "reference_scaled": True,
        "max_score_diff": score_diff,
        "max_ci_diff": max(diffs.get("ci_low") or 0.0, diffs.get("ci_high") or 0.0) if diffs else None,
    }
    print(json.dumps(summary))
    return 0 if agreed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
