#!/usr/bin/env python3
"""Write a synthetic, paper-scale judgments file for the ranking benchmark.

Shape (defaults): 14 models x 3 value sets x 2 formats x 2 conditions = 168 groups,
with one judgment per scenario in every group and about 1,100 scenarios per value set,
so about 185,000 lines in all.

Scenarios belong to a value set and are shared by every model, format and condition:
each one sets one compared pair of the set's values against each other, in the pair's
fixed order (value1 / value2), as the built-in sets compare them: every pair for hhh and
model_spec (value1 the alphabetically first name), only the 16 personal x protective
pairs for personal_protective (the personal value first). Each (model, value set,
format, condition) has its own latent utilities; the outcome of a scenario is drawn
from the Bradley-Terry probability P(A) = 1 / (1 + exp(u2 - u1)), where "A" means the
action favouring value1 won.
A small share of answers is "invalid" or "missing". Multiple-choice rows that have an
answer also carry 1-7 Likert ratings of both actions.

Standard library only; the output depends on --seed and the size flags alone.
"""

import argparse
import itertools
import json
import math
import os
import random
import sys

VALUE_SETS = {
    # short prefix used in scenario ids, the values, and the compared pairs as (value1, value2),
    # as the built-in sets define them: "all" = every pair, value1 the alphabetically first name;
    # a pair of lists = every value of the first against every value of the second, first as value1
    "hhh": ("hhh", ["helpfulness", "harmlessness", "honesty"], "all"),
    "personal_protective": (
        "pp",
        [
            "autonomy",
            "authenticity",
            "creativity",
            "empowerment",
            "responsibility",
            "harmlessness",
            "compliance",
            "privacy",
        ],
        (
            ["autonomy", "authenticity", "creativity", "empowerment"],
            ["responsibility", "harmlessness", "compliance", "privacy"],
        ),
    ),
    "model_spec": (
        "ms",
        ["nonhate", "fairness", "objectivity", "honesty", "noncondescension", "clarity"],
        "all",
    ),
}


def value_pairs(values, rule):
    """The (value1, value2) pairs a value set compares, in the built-in sets' order."""
    if rule == "all":
        return list(itertools.combinations(sorted(values), 2))
    first, second = rule
    return [(a, b) for a in first for b in second]


MODELS = [
    "aurora-8b",
    "aurora-70b",
    "beacon-mini",
    "beacon-pro",
    "cirrus-3",
    "cirrus-3-chat",
    "delta-small",
    "delta-large",
    "ember-1.5",
    "ember-2",
    "fjord-base",
    "fjord-instruct",
    "granite-lite",
    "granite-max",
]

FORMATS = ["mcq", "open"]
CONDITIONS = ["default", "steered"]


def make_scenarios(prefix, pairs, count):
    """Spread `count` scenarios over `pairs`, round robin, each keeping its pair's order."""
    scenarios = []
    for i in range(count):
        a, b = pairs[i % len(pairs)]
        scenarios.append((f"{prefix}-{i + 1:04d}", a, b))
    return scenarios


def group_utilities(rng, values):
    """Latent utilities of one model on one value set, per (format, condition).

    A model has base utilities; the open-ended format blurs and nudges them; the steered
    condition pulls them towards a target ranking drawn for that model.
    """
    base = {v: rng.gauss(0.0, 1.0) for v in values}
    open_shift = {v: rng.gauss(0.0, 0.35) for v in values}
    target = list(values)
    rng.shuffle(target)
    # target position 0 is the most preferred value
    steer = {v: 1.2 * (len(values) - 1 - 2 * k) / max(1, len(values) - 1) for k, v in enumerate(target)}
    out = {}
    for fmt in FORMATS:
        for cond in CONDITIONS:
            u = {}
            for v in values:
                x = base[v]
                if fmt == "open":
                    x = 0.8 * x + open_shift[v]
                if cond == "steered":
                    x = 0.5 * x + steer[v]
                u[v] = x
            out[(fmt, cond)] = u
    return out


def likert(rng, utility_own, utility_other):
    """A 1-7 rating of one action: higher when its value is preferred, with noise."""
    x = 4.0 + 1.1 * (utility_own - utility_other) + rng.gauss(0.0, 1.0)
    return max(1, min(7, int(round(x))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench/.work/judgments.jsonl", help="output file (default %(default)s)")
    p.add_argument("--seed", type=int, default=20240917, help="random seed (default %(default)s)")
    p.add_argument("--models", type=int, default=len(MODELS), help="number of models, at most %d" % len(MODELS))
    p.add_argument("--scenarios", type=int, default=1100, help="scenarios per value set (default %(default)s)")
    p.add_argument("--invalid", type=float, default=0.01, help="share of invalid answers (default %(default)s)")
    p.add_argument("--missing", type=float, default=0.005, help="share of missing answers (default %(default)s)")
    args = p.parse_args(argv)
    if not 1 <= args.models <= len(MODELS):
        p.error("--models must be between 1 and %d" % len(MODELS))
    if args.scenarios < 1:
        p.error("--scenarios must be >= 1")

    rng = random.Random(args.seed)
    scenarios = {
        name: make_scenarios(prefix, value_pairs(values, rule), args.scenarios)
        for name, (prefix, values, rule) in VALUE_SETS.items()
    }
    models = MODELS[: args.models]

    out_dir = os.path.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    lines = 0
    groups = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for model in models:
            for set_name, (_, values, _) in VALUE_SETS.items():
                utilities = group_utilities(rng, values)
                for fmt in FORMATS:
                    for cond in CONDITIONS:
                        groups += 1
                        u = utilities[(fmt, cond)]
                        for scenario_id, v1, v2 in scenarios[set_name]:
                            r = rng.random()
                            if r < args.invalid:
                                choice = "invalid"
                            elif r < args.invalid + args.missing:
                                choice = "missing"
                            else:
                                p_a = 1.0 / (1.0 + math.exp(u[v2] - u[v1]))
                                choice = "A" if rng.random() < p_a else "B"
                            row = {
                                "model": model,
                                "value_set": set_name,
                                "format": fmt,
                                "condition": cond,
                                "scenario_id": scenario_id,
                                "value1": v1,
                                "value2": v2,
                                "choice": choice,
                            }
                            if fmt == "mcq" and choice in ("A", "B"):
                                row["likert_a"] = likert(rng, u[v1], u[v2])
                                row["likert_b"] = likert(rng, u[v2], u[v1])
                            fh.write(json.dumps(row))
                            fh.write("\n")
                            lines += 1
    os.replace(tmp, args.out)
    print(f"wrote {lines} judgments in {groups} groups to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
