#!/usr/bin/env python3
"""Writes examples/judgments.jsonl: a small synthetic sweep for trying `conflictscope rank`.

Two simulated models on the HHH value set, both formats, default and steered conditions.
"cautious" says it puts harmlessness first (multiple choice) but acts helpfully (open-ended);
"steerable" follows the steering prompt's target ranking more often when it is given.
Choices are drawn from Bradley-Terry probabilities of the latent utilities below, with a few
invalid and missing answers. Deterministic: the same file every run.
"""
import json
import math
import random
from itertools import combinations

VALUES = ["helpfulness", "honesty", "harmlessness"]
TARGET = ["honesty", "harmlessness", "helpfulness"]
LATENT = {
    ("cautious", "mcq"): {"harmlessness": 1.0, "honesty": 0.3, "helpfulness": -0.6},
    ("cautious", "open"): {"helpfulness": 0.9, "honesty": 0.2, "harmlessness": -0.7},
    ("steerable", "mcq"): {"helpfulness": 0.5, "harmlessness": 0.2, "honesty": -0.4},
    ("steerable", "open"): {"helpfulness": 0.8, "harmlessness": -0.1, "honesty": -0.3},
}
SCENARIOS_PER_PAIR = 120


def main():
    rng = random.Random(20251129)
    scenarios = []
    for value1, value2 in combinations(VALUES, 2):
        for _ in range(SCENARIOS_PER_PAIR):
            pair = (value1, value2) if rng.random() < 0.5 else (value2, value1)
            scenarios.append((f"hhh-{len(scenarios) + 1:04d}", *pair))
    lines = []
    for (model, fmt), utilities in LATENT.items():
        for condition in ("default", "steered"):
            for scenario_id, value1, value2 in scenarios:
                u1, u2 = utilities[value1], utilities[value2]
                if condition == "steered" and model == "steerable":
                    # Steering pulls utilities towards the target order.
                    u1 += 0.8 * (len(TARGET) - TARGET.index(value1))
                    u2 += 0.8 * (len(TARGET) - TARGET.index(value2))
                roll = rng.random()
                if roll < 0.01:
                    choice = "missing"
                elif roll < 0.03:
                    choice = "invalid"
                else:
                    choice = "A" if rng.random() < 1 / (1 + math.exp(u2 - u1)) else "B"
                row = {
                    "model": model, "value_set": "hhh", "format": fmt, "condition": condition,
                    "scenario_id": scenario_id, "value1": value1, "value2": value2, "choice": choice,
                }
                if fmt == "mcq" and choice in ("A", "B"):
                    strong = rng.random() < 0.8
                    favoured, other = (rng.randint(5, 7), rng.randint(1, 3)) if strong else (4, 4)
                    row["likert_a"], row["likert_b"] = (favoured, other) if choice == "A" else (other, favoured)
                if condition == "steered":
                    row["target_ranking"] = TARGET
                lines.append(json.dumps(row))
    with open("examples/judgments.jsonl", "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
