"""The paper-scale sweep that bench/sweep times and bench/chaos disturbs, in one place.

Shape: the three built-in value sets with 1,100 imported scenarios each (x scale), 14 simulated targets,
multiple choice and open-ended, the default condition, a judge for the open-ended answers. Scenarios are
imported (the paper's released-data path), so every task can start at once: the work is 3,300 x 14 x 2
independent evaluations, and the critical path is one target call then one judge call.

Limits (per model, both in the cluster's config and on the sim-server): each target has its own provider
account at TARGET_RPM requests/min with a token limit that does not bind; the judge has JUDGE_RPM, enough
headroom to keep up with the targets' open-ended answers. They are chosen so the rate limits, not this
machine's two cores, bind: at scale 0.1 the targets take ~70 calls/s and the judge ~25 calls/s,
about two thirds of what the cluster pushed here with instant answers (bench/sweep --capacity: 146 calls/s,
125 tasks/s with 4 workers on the shared cores).
"""

from __future__ import annotations

import cluster_harness as ch

SCENARIOS_PER_SET = 1100
TARGETS = [f"sim-target-{index:02d}" for index in range(1, 15)]
JUDGE = "sim-judge"
TARGET_RPM = 300
TARGET_TPM = 500_000          # a target call is charged ~250 prompt + 512 or 1024 max_tokens: ~310k/min at 300 RPM
JUDGE_RPM = 6_000             # the judge needs at most ~7 x 300 = 2,100/min
JUDGE_TPM = 8_000_000
LATENCY_MS = 1000             # mean latency of every call
JITTER_MS = 500               # uniform +-
# Every call of an open-ended task is a target reply then a judge call; a multiple-choice task is one call.
CRITICAL_PATH_S = 2 * LATENCY_MS / 1000


def spec(name: str, *, rate_factor: float = 1.0, unlimited: bool = False, faults: dict | None = None,
         server_rate_factor: dict | None = None, latency_ms: int = LATENCY_MS, jitter_ms: int = JITTER_MS,
         timeout_s: float = 30) -> ch.SweepSpec:
    """The sweep. `rate_factor` multiplies every limit; `unlimited` drops them (capacity runs);
    `faults` are sim-server fault rates for every provider; `server_rate_factor` (model -> factor) makes the
    sim-server's limit of a model lower than the one the cluster is told, so it answers bursts of 429s."""
    client = {"timeout_s": timeout_s, "max_retries": 5, "concurrency": 256}
    providers, models = {}, {}

    def add(model: str, rpm: int, tpm: int, invalid_rate: float | None) -> None:
        limits = {} if unlimited else {"rpm": int(rpm * rate_factor), "tpm": int(tpm * rate_factor)}
        sim = {"latency_ms": latency_ms, "latency_jitter_ms": jitter_ms} | (faults or {})
        provider = {"limits": limits, "client": client, "sim": sim}
        factor = (server_rate_factor or {}).get(model)
        if factor and limits:
            provider["server_limits"] = {key: max(1, int(value * factor)) for key, value in limits.items()}
        providers[f"acct-{model}"] = provider
        models[model] = {"provider": f"acct-{model}"}
        if invalid_rate is not None:
            models[model] |= {"invalid_rate": invalid_rate, "utilities": ch.latent_utilities(model)}

    for target in TARGETS:
        add(target, TARGET_RPM, TARGET_TPM, 0.01)
    add(JUDGE, JUDGE_RPM, JUDGE_TPM, None)
    roles = {"generator": {"model": JUDGE}, "filter_judge": {"model": JUDGE}, "user": {"model": JUDGE},
             "judge": {"model": JUDGE, "temperature": 0.0, "max_tokens": 600}}
    return ch.SweepSpec(name, providers=providers, models=models, roles=roles, targets=list(TARGETS),
                        formats=["mcq", "open"])


def scenarios(harness: ch.Harness, scale: float):
    """Writes the scenarios to import; returns (path, scenario count)."""
    path = harness.work / "scenarios.csv"
    per_set = max(1, round(SCENARIOS_PER_SET * scale))
    return path, ch.write_scenarios(path, per_set)


def run(harness: ch.Harness, sweep_spec: ch.SweepSpec, label: str, sim: ch.SimServer, scenario_csv, *,
        workers: int, timeout: float, during=None) -> tuple[ch.ClusterSweep, dict]:
    """Runs the sweep through the cluster; `during(sweep, elapsed)` is called about every 0.1 s (chaos
    uses it). Returns the sweep (with its timing) and the coordinator's summary; the roles keep running."""
    sweep = ch.ClusterSweep(harness, sweep_spec, label, sim, scenario_csv)
    sweep.start(workers)
    tick = (lambda elapsed: during(sweep, elapsed)) if during else None
    summary = sweep.wait(timeout, tick=tick)
    return sweep, summary


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
