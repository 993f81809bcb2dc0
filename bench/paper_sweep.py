"""The paper-scale sweep that bench/sweep times and bench/chaos disturbs, in one place.

Shape: the paper's three value sets (hhh 3 pairs, personal_protective 16, model_spec 15) with 1,100
imported scenarios each (x scale; the paper's CSV with prompts.json, templates and act sides balanced
within every pair), 14 simulated targets, multiple choice and open-ended, the default condition, a judge
for the open-ended answers. Scenarios are imported (the paper's released-data path) with their opening
messages, so every task can start at once and no generation, filter or user-prompt call is made: the work
is 3,300 x 14 x 2 independent evaluation tasks. Calls per scenario and target, as the paper's protocol
makes them: a multiple-choice task is one letter call then two Likert calls (one per action), one after the
other; an open-ended task is one target reply then one judge call. So each target makes 4 calls per
scenario and the judge 1 per open-ended task (fewer when identical judge requests are answered once from
the response cache), and the critical path is a multiple-choice task's three calls.

Limits (per model, both in the cluster's config and on the sim-server): each target has its own provider
account at TARGET_RPM requests/min with a token limit that does not bind; the judge has JUDGE_RPM, several
times the headroom it needs to keep up with the targets' open-ended answers. They are chosen so the rate
limits, not this machine's two cores, bind: at any scale the targets take ~70 calls/s and the judge at
most ~17 calls/s (fewer with the cache), below what the cluster pushes here with instant answers
(bench/sweep --capacity).
"""

from __future__ import annotations

import cluster_harness as ch

SCENARIOS_PER_SET = 1100
TARGETS = [f"sim-target-{index:02d}" for index in range(1, 15)]
JUDGE = "sim-judge"
TARGET_RPM = 300
# A target call is charged its prompt estimate plus max_tokens: ~100-130 + 16 for a letter or a rating
# ([evaluation.mcq] / [evaluation.likert]), ~40 + 1,024 for an open-ended reply ([evaluation.open]), so
# ~370 per call on average and ~110k/min at 300 RPM: the token limit does not bind.
TARGET_TPM = 500_000
JUDGE_RPM = 6_000             # the judge needs at most 14 x 300 / 4 = 1,050/min
JUDGE_TPM = 8_000_000
LATENCY_MS = 1000             # mean latency of every call
JITTER_MS = 500               # uniform +-
# Prices per million tokens (the config's input_usd_per_mtok / output_usd_per_mtok), so that spend and a
# budget mean something; a small model's for the targets, a larger one's for the judge.
TARGET_PRICES = {"input_usd_per_mtok": 0.5, "output_usd_per_mtok": 1.5}
JUDGE_PRICES = {"input_usd_per_mtok": 2.5, "output_usd_per_mtok": 10.0}
# The target's sampling per kind of call, written to the cluster's [evaluation] (the config's defaults).
EVALUATION = {"mcq": {"temperature": 0.0, "max_tokens": 16}, "likert": {"temperature": 0.0, "max_tokens": 16},
              "open": {"temperature": 1.0, "max_tokens": 1024}}
# Calls per scenario, target and format: multiple choice = the letter + 2 Likert ratings; open-ended = the
# target's reply (max_turns 1) + the judge.
MCQ_CALLS = {"multiple_choice": 1, "likert": 2}
OPEN_CALLS = {"open_ended": 1, "judge": 1}
# The longest task: a multiple-choice task's letter then its two Likert calls, one after the other
# (an open-ended task is two calls: the reply, then the judge).
CRITICAL_PATH_S = (sum(MCQ_CALLS.values()) * LATENCY_MS) / 1000


def expected_calls(scenarios: int, targets: int = len(TARGETS)) -> dict[str, int]:
    """Calls per stage the sweep makes (each answered once: no re-asks, no cache hits), by Stage.swift's
    labels; the judge's count is an upper bound (identical judge requests are answered from the cache)."""
    counts = {stage: scenarios * targets * per for stage, per in (MCQ_CALLS | OPEN_CALLS).items()}
    return {"filter": 0, "user_prompts": 0} | counts


def spec(name: str, *, rate_factor: float = 1.0, unlimited: bool = False, faults: dict | None = None,
         server_rate_factor: dict | None = None, latency_ms: int = LATENCY_MS, jitter_ms: int = JITTER_MS,
         timeout_s: float = 30, timeouts: dict | None = None, max_cost_usd: float | None = None) -> ch.SweepSpec:
    """The sweep. `rate_factor` multiplies every limit; `unlimited` drops them (capacity runs);
    `faults` are sim-server fault rates for every provider; `server_rate_factor` (model -> factor) makes the
    sim-server's limit of a model lower than the one the cluster is told, so it answers bursts of 429s;
    `timeouts` (model -> seconds) replace `timeout_s` for those models' providers; `max_cost_usd` is the
    sweep's budget."""
    providers, models = {}, {}

    def add(model: str, rpm: int, tpm: int, invalid_rate: float | None, prices: dict) -> None:
        limits = {} if unlimited else {"rpm": int(rpm * rate_factor), "tpm": int(tpm * rate_factor)}
        sim = {"latency_ms": latency_ms, "latency_jitter_ms": jitter_ms} | (faults or {})
        client = {"timeout_s": (timeouts or {}).get(model, timeout_s), "max_retries": 5, "concurrency": 256}
        provider = {"limits": limits, "client": client, "sim": sim}
        factor = (server_rate_factor or {}).get(model)
        if factor and limits:
            provider["server_limits"] = {key: max(1, int(value * factor)) for key, value in limits.items()}
        providers[f"acct-{model}"] = provider
        models[model] = {"provider": f"acct-{model}", "prices": prices}
        if invalid_rate is not None:
            models[model] |= {"invalid_rate": invalid_rate, "utilities": ch.latent_utilities(model)}

    for target in TARGETS:
        add(target, TARGET_RPM, TARGET_TPM, 0.01, TARGET_PRICES)
    add(JUDGE, JUDGE_RPM, JUDGE_TPM, None, JUDGE_PRICES)
    roles = {"generator": {"model": JUDGE}, "filter_judge": {"model": JUDGE}, "user": {"model": JUDGE},
             "judge": {"model": JUDGE, "temperature": 0.0, "max_tokens": 600}}
    return ch.SweepSpec(name, providers=providers, models=models, roles=roles, targets=list(TARGETS),
                        formats=["mcq", "open"], evaluation=EVALUATION, max_cost_usd=max_cost_usd)


def scenarios(harness: ch.Harness, scale: float):
    """Writes the scenarios to import (CSV, and prompts.json beside it); returns (CSV path, scenario count)."""
    path = harness.work / "scenarios.csv"
    per_set = max(1, round(SCENARIOS_PER_SET * scale))
    return path, ch.write_scenarios(path, per_set)


def run(harness: ch.Harness, sweep_spec: ch.SweepSpec, label: str, sim: ch.SimServer, scenario_csv, *,
        workers: int, timeout: float, during=None, budget_bound: bool = False,
        **sweep_options) -> tuple[ch.ClusterSweep, dict]:
    """Runs the sweep through the cluster; `during(sweep, elapsed)` is called about every 0.1 s (chaos
    uses it); `sweep_options` go to ClusterSweep (base_url, tag_workers, worker_arguments), `budget_bound` to
    its wait. Returns the sweep (with its timing) and the coordinator's summary; the roles keep running."""
    sweep = ch.ClusterSweep(harness, sweep_spec, label, sim, scenario_csv, **sweep_options)
    sweep.start(workers)
    tick = (lambda elapsed: during(sweep, elapsed)) if during else None
    summary = sweep.wait(timeout, tick=tick, budget_bound=budget_bound)
    return sweep, summary


def provider_spend(stats: dict, sweep_spec: ch.SweepSpec) -> float:
    """What the provider side charged, in USD: per model, the tokens of every successful answer the
    sim-server gave (`prompt_tokens`, `completion_tokens` of /stats; answers nobody received included) at
    the config's prices."""
    total = 0.0
    for model, entry in stats["models"].items():
        prices = sweep_spec.models[model].get("prices", {})
        total += (entry["prompt_tokens"] * prices.get("input_usd_per_mtok", 0)
                  + entry["completion_tokens"] * prices.get("output_usd_per_mtok", 0)) / 1e6
    return total


def model_figures(stats: dict, sweep_spec: ch.SweepSpec) -> dict:
    """Per model, what the sim-server saw and the time its limits alone require:
    60 x max(calls / RPM, tokens / TPM) - 1 s, where calls are the requests the server admitted, tokens
    what it charged for them (prompt estimate + max_tokens), and 1 s is the burst GCRA allows at the start."""
    figures = {}
    for model, entry in sorted(stats["models"].items()):
        provider = sweep_spec.providers[sweep_spec.models[model]["provider"]]
        limits = provider.get("server_limits") or provider.get("limits", {})
        calls, tokens = entry.get("admitted", entry["requests"]), entry.get("admitted_tokens", 0)
        needs = [calls / limits["rpm"]] if "rpm" in limits else []
        if "tpm" in limits:
            needs.append(tokens / limits["tpm"])
        figures[model] = {
            "calls": calls, "successes": entry["successes"], "tokens": tokens,
            "rpm": limits.get("rpm"), "tpm": limits.get("tpm"),
            "bound_s": round(max(0.0, 60 * max(needs) - 1), 2) if needs else 0.0,
            "rate_limited": entry["rate_limited"], "faults": entry.get("faults", {}),
            "duplicate_successes": entry.get("duplicate_successes", 0),
        }
    return figures
