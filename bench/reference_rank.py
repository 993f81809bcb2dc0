#!/usr/bin/env python3
"""Reference ranking, done the way the paper's analysis does it (pandas + choix).

For each timed (model, value_set, format, condition) group:
  * the group's values are indexed in sorted order;
  * every answered row becomes a (winner_index, loser_index) pair: "A" means the action
    favouring value1 won, "B" that the one favouring value2 won;
  * the point estimate is choix.ilsr_pairwise(n, pairs, alpha=0.01);
  * for each bootstrap resample the group's rows are drawn again with
    DataFrame.sample(n=len(rows), replace=True), turned into pairs and refitted;
  * the 95% interval is numpy's 2.5th / 97.5th percentile of the resampled fits.

Only "A" / "B" rows are kept. The paper's own script let "invalid" answers fall through
to the value2-wins branch; we deliberately do NOT reproduce that bug, so the figures here
match what conflictscope computes (invalid and missing answers excluded from the fit).
Resampling is therefore over the kept rows too.

The reference costs several seconds per group (7-8 s here), so only --groups of them are timed; the
full-input figure is the time to load the whole file plus the mean time per timed group
times the number of groups in the file. The output says it is scaled.

Needs numpy, pandas and choix (the benchmark installs them into bench/.venv).
"""

import argparse
import json
import sys
import time

import choix
import numpy as np
import pandas as pd

GROUP_COLUMNS = ["model", "value_set", "format", "condition"]


def pick_groups(keys, k):
    """Choose k group keys deterministically: value sets in turn (they differ in their
    number of values), and within a set a stride through models, formats and conditions."""
    by_set = {}
    for key in keys:
        by_set.setdefault(key[1], []).append(key)
    sets = sorted(by_set)
    chosen = []
    for j in range(k * 4):
        if len(chosen) == k:
            break
        members = by_set[sets[j % len(sets)]]
        key = members[(j * 13 + 5) % len(members)]
        if key not in chosen:
            chosen.append(key)
    for key in keys:  # tiny inputs: fill up in sorted order
        if len(chosen) >= min(k, len(keys)):
            break
        if key not in chosen:
            chosen.append(key)
    return chosen


def comparisons(frame, index):
    """(winner, loser) index pairs of answered rows."""
    out = []
    for v1, v2, choice in zip(frame["value1"], frame["value2"], frame["choice"]):
        if choice == "A":
            out.append((index[v1], index[v2]))
        else:  # "B": only A/B rows reach this function
            out.append((index[v2], index[v1]))
    return out


def rank_group(rows, alpha, resamples, rng):
    values = sorted(set(rows["value1"]) | set(rows["value2"]))
    index = {v: i for i, v in enumerate(values)}
    answered = rows[rows["choice"].isin(["A", "B"])]
    n = len(values)

    point = choix.ilsr_pairwise(n, comparisons(answered, index), alpha=alpha)
    fits = []
    for _ in range(resamples):
        sample = answered.sample(n=len(answered), replace=True, random_state=rng)
        fits.append(choix.ilsr_pairwise(n, comparisons(sample, index), alpha=alpha))
    if fits:
        low, high = np.percentile(np.array(fits), [2.5, 97.5], axis=0)
    else:
        low = high = np.full(n, np.nan)
    return {
        "values": values,
        "n": int(len(answered)),
        "excluded": int(len(rows) - len(answered)),
        "score": [float(x) for x in point],
        "ci_low": [float(x) for x in low],
        "ci_high": [float(x) for x in high],
    }


def compare(results, swift_path):
    """Largest absolute differences between these fits and conflictscope's JSON."""
    with open(swift_path, encoding="utf-8") as fh:
        swift = json.load(fh)
    by_key = {tuple(r[c] for c in GROUP_COLUMNS): r for r in swift.get("rankings", [])}
    diffs = {"score": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    compared = 0
    problems = []
    for res in results:
        key = tuple(res["group"][c] for c in GROUP_COLUMNS)
        ranking = by_key.get(key)
        if ranking is None:
            problems.append("group %s missing from the Swift output" % "/".join(key))
            continue
        if ranking.get("n") != res["n"]:
            problems.append("group %s: n %s (Swift) vs %s" % ("/".join(key), ranking.get("n"), res["n"]))
        swift_values = {v["value"]: v for v in ranking.get("values", [])}
        for i, value in enumerate(res["values"]):
            sv = swift_values.get(value)
            if sv is None:
                problems.append("group %s: value %s missing from the Swift output" % ("/".join(key), value))
                continue
            for field in diffs:
                theirs = sv.get(field)
                if theirs is None or np.isnan(res[field][i]):
                    continue
                diffs[field] = max(diffs[field], abs(float(theirs) - res[field][i]))
        compared += 1
    return {"groups_compared": compared, "max_diff": diffs, "problems": problems}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--judgments", default="bench/.work/judgments.jsonl")
    p.add_argument("--groups", type=int, default=2, help="groups to time (default %(default)s)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default %(default)s)")
    p.add_argument("--alpha", type=float, default=0.01, help="choix regularisation (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the resampling (default %(default)s)")
    p.add_argument("--compare", metavar="SWIFT_JSON", help="conflictscope rank --json output to check against")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.groups < 1:
        p.error("--groups must be >= 1")
    if args.resamples < 0:
        p.error("--resamples must be >= 0")

    t0 = time.perf_counter()
    df = pd.read_json(args.judgments, lines=True, dtype=False)
    load_s = time.perf_counter() - t0
    grouped = df.groupby(GROUP_COLUMNS, sort=True)
    keys = list(grouped.groups.keys())
    print(f"reference: loaded {len(df)} judgments in {len(keys)} groups with pandas in {load_s:.2f} s")

    rng = np.random.RandomState(args.seed)
    results = []
    for key in pick_groups(keys, args.groups):
        rows = grouped.get_group(key)
        t = time.perf_counter()
        res = rank_group(rows, args.alpha, args.resamples, rng)
        res["seconds"] = time.perf_counter() - t
        res["group"] = dict(zip(GROUP_COLUMNS, key))
        results.append(res)
        print(
            f"reference: {'/'.join(key)}: {res['n']} comparisons, {len(res['values'])} values, "
            f"fit + {args.resamples} resamples in {res['seconds']:.1f} s"
        )
        for i in np.argsort(res["score"])[::-1]:
            print(
                f"    {res['values'][i]:<22} {res['score'][i]:+.4f}  "
                f"[{res['ci_low'][i]:+.4f}, {res['ci_high'][i]:+.4f}]"
            )

    mean_group_s = sum(r["seconds"] for r in results) / len(results)
    scaled_s = load_s + mean_group_s * len(keys)
    print(
        f"reference: SCALED estimate for all {len(keys)} groups = load {load_s:.2f} s + "
        f"{mean_group_s:.1f} s/group x {len(keys)} = {scaled_s:.0f} s "
        f"(timed {len(results)} group(s), not run in full)"
    )

    summary = {
        "judgments": int(len(df)),
        "groups_total": len(keys),
        "groups_timed": len(results),
        "resamples": args.resamples,
        "load_s": load_s,
        "mean_group_s": mean_group_s,
        "reference_s": scaled_s,
        "groups": results,
    }
    if args.compare:
        cmp = compare(results, args.compare)
        summary["comparison"] = cmp
        d = cmp["max_diff"]
        print(
            f"agreement ({cmp['groups_compared']} group(s)): max |score diff| = {d['score']:.3g}; "
            f"max |ci_low diff| = {d['ci_low']:.3g}, max |ci_high diff| = {d['ci_high']:.3g} "
            f"(interval bounds differ by Monte Carlo noise)"
        )
        for problem in cmp["problems"]:
            print("agreement: " + problem)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
