"""Shared machinery of the cluster benchmarks (bench/ratelimit, bench/sweep, bench/chaos).

One way to do each thing: build the binary, start and stop RabbitMQ and Redis (through cluster/servers),
write the sim-server's and the sweep's configs from one description, write the scenarios to import, run
the cluster's roles as processes, read the sim-server's /stats and the store, and clean up everything
that was started, even on failure. Standard library only.

Addresses: RabbitMQ and Redis listen on CONFLICTSCOPE_AMQP_PORT (default 5672) and
CONFLICTSCOPE_REDIS_PORT (default 6379) of 127.0.0.1; every child gets CONFLICTSCOPE_AMQP_URL and
CONFLICTSCOPE_REDIS_URL built from them. Sim-servers listen on CONFLICTSCOPE_SIM_PORT (default 8190) and
the ports after it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VALUE_SET_DIR = ROOT / "Sources/ConflictScope/Resources/value_sets"
KEY_ENV = "CONFLICTSCOPE_BENCH_SIM_KEY"
FAKE_KEY = "sk-bench-simulated"
# The header naming the worker on each request of a tagged worker (ClusterSweep's tag_workers).
WORKER_HEADER = "X-Bench-Worker"


class BenchError(Exception):
    """A problem that stops a benchmark; printed as one line."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (`bench/NAME: error: ...`) and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D102
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def scale_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale must be a number, got '{text}'") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"--scale must be in (0, 1], got {text}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return int(text)


def _port(variable: str, default: int) -> int:
    text = os.environ.get(variable, str(default))
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BenchError(f"{variable} must be a port number, got '{text}'")
    return int(text)


def free_port() -> int:
    """A local port nothing listens on right now (the kernel's pick): for a metrics port, or for a provider that
    refuses connections."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def value_sets() -> dict[str, list[str]]:
    """The built-in value sets: name -> value names."""
    return {name: [value["name"] for value in data["values"]] for name, data in _value_set_files().items()}


def _value_set_files() -> dict[str, dict]:
    return {name: json.loads((VALUE_SET_DIR / f"{name}.json").read_text())
            for name in ("hhh", "personal_protective", "model_spec")}


def value_pairs() -> dict[str, list[tuple[str, str]]]:
    """The (value1, value2) pairs each built-in set compares, by its pair rule: `"all"` is every pair with
    value1 the alphabetically first name (hhh 3, model_spec 15); `{"cross": [G1, G2]}` every value of group
    G1 against every value of G2, the G1 value as value1 (personal_protective: 16)."""
    pairs = {}
    for name, data in _value_set_files().items():
        rule = data.get("pairs", "all")
        if rule == "all":
            pairs[name] = list(itertools.combinations(sorted(value["name"] for value in data["values"]), 2))
        else:
            first, second = (data["groups"][group] for group in rule["cross"])
            pairs[name] = [(a, b) for a in first for b in second]
    return pairs


# The four stage-1 templates (Stage.swift's ScenarioTemplate) and their act sides: in side-effect scenarios
# the acting action is action1 (it serves value1), in means scenarios action2.
TEMPLATES = ("side_effect_mild", "side_effect_strong", "means_mild", "means_strong")
ACT_SIDE = {"side_effect_mild": "action1", "side_effect_strong": "action1",
            "means_mild": "action2", "means_strong": "action2"}
DOMAINS = ("health", "education", "work", "finance", "relationships", "creative", "technology", "law")


def now() -> float:
    return time.time()


# --------------------------------------------------------------------------------------------------
# Configs


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


class SweepSpec:
    """One description of a benchmark sweep, written as two configs that agree on every model and limit:
    the sim-server's (providers of kind `simulated`, with utilities, latency and faults) and the cluster's
    (the same providers as kind `openai` at the sim-server's base URL).

    providers: name -> {"limits": {"rpm": .., "tpm": ..}, "sim": {"latency_ms": .., "fault_5xx": .., ...},
                        "client": {"timeout_s": .., "max_retries": .., "concurrency": ..},
                        "server_limits": {...} (optional: the sim-server's limits when they differ)}
    models: name -> {"provider": .., "utilities": {"mcq": {...}, "open": {...}} (optional), "invalid_rate": ..,
                     "prices": {"input_usd_per_mtok": .., "output_usd_per_mtok": ..} (optional)}
    roles: role -> {"model": .., "max_tokens": .., "temperature": ..}
    evaluation: the targets' sampling per kind of call, `[evaluation]`'s `mcq`, `likert` and `open`
                ({"mcq": {"temperature": 0.0, "max_tokens": 16}, ...}); the config's defaults where absent
    max_cost_usd: the sweep's budget (`[sweep] max_cost_usd`), none when None
    """

    def __init__(self, name, *, providers, models, roles, targets, formats, evaluation=None, seed=20251129,
                 bootstrap=200, max_cost_usd=None):
        self.name = name
        self.providers = providers
        self.models = models
        self.roles = roles
        self.targets = targets
        self.formats = formats
        self.evaluation = evaluation or {}
        self.seed = seed
        self.bootstrap = bootstrap
        self.max_cost_usd = max_cost_usd

    def render(self, kind: str, *, store: str, base_url: str | None = None, headers: dict | None = None) -> str:
        """The sim-server's config (`kind` "sim") or the cluster's ("client"): every provider at `base_url`,
        sending `headers` with each request (they enter neither the response cache's key nor the account)."""
        assert kind in ("sim", "client")
        lines = [
            "# Written by bench/cluster_harness.py.",
            "[sweep]",
            f"name = {_toml(self.name)}",
            f"seed = {self.seed}",
            f"store = {_toml(store)}",
            f"value_sets = {_toml(list(value_sets()))}",
            "scenarios_per_pair = 0",
            f"formats = {_toml(self.formats)}",
            *([f"max_cost_usd = {_toml(self.max_cost_usd)}"] if self.max_cost_usd is not None else []),
            "",
            "[evaluation]",
            *(f"{call} = {_toml(settings)}" for call, settings in self.evaluation.items()),
            "",
            "[analysis]",
            f"bootstrap = {self.bootstrap}",
            "",
            "[conditions.default]",
            "",
        ]
        for name, provider in self.providers.items():
            lines.append(f"[providers.{name}]")
            if kind == "sim":
                lines.append('kind = "simulated"')
            else:
                lines += ['kind = "openai"', f"base_url = {_toml(base_url)}", f"api_key_env = {_toml(KEY_ENV)}"]
                if headers:
                    lines.append(f"headers = {_toml(headers)}")
            # The sim-server may be told a lower limit than the cluster (`server_limits`), to provoke 429s.
            limits = provider.get("server_limits") if kind == "sim" and "server_limits" in provider else None
            settings = dict(limits if limits is not None else provider.get("limits", {}))
            settings.update(provider.get("client", {}))
            if kind == "sim":
                settings.update(provider.get("sim", {}))
            lines += [f"{key} = {_toml(value)}" for key, value in settings.items()]
            lines.append("")
        for name, model in self.models.items():
            lines += [f"[models.{name}]", f"provider = {_toml(model['provider'])}", f"model = {_toml(name)}"]
            lines += [f"{key} = {_toml(price)}" for key, price in model.get("prices", {}).items()]
            if kind == "sim":
                if "invalid_rate" in model:
                    lines.append(f"invalid_rate = {_toml(model['invalid_rate'])}")
                for fmt, utilities in model.get("utilities", {}).items():
                    lines.append(f"utilities.{fmt} = {_toml(utilities)}")
            lines.append("")
        for role, settings in self.roles.items():
            lines.append(f"[roles.{role}]")
            lines += [f"{key} = {_toml(value)}" for key, value in settings.items()]
            lines.append("")
        lines += ["[targets]", f"models = {_toml(self.targets)}", ""]
        return "\n".join(lines)


def latent_utilities(model: str, seed: int = 1) -> dict:
    """Per-format Bradley-Terry utilities for a simulated target, fixed by its name: every value of every
    built-in set gets a draw, the open-ended ones moved a little from the multiple-choice ones."""
    rng = random.Random(f"{seed}/{model}")
    mcq, open_ = {}, {}
    for values in value_sets().values():
        for value in values:
            mcq[value] = round(rng.gauss(0, 1.2), 3)
            open_[value] = round(mcq[value] + rng.gauss(0, 0.6), 3)
    return {"mcq": mcq, "open": open_}


# The paper's scenario CSV columns, then ours (as `conflictscope export --scenarios --format csv` writes them).
SCENARIO_COLUMNS = ["scenario_id", "context", "description", "user_prompt", "value1", "value2", "action1", "action2",
                    "keep_scenario", "check_results", "generating_model",
                    "template", "act_side", "domain", "consequence1", "consequence2"]


def write_scenarios(path: Path, per_set: int, *, prompts: Path | None = None, filler_words: int = 0,
                    seed: int = 7) -> int:
    """Writes kept scenarios in the paper's CSV layout for `conflictscope import`, and their opening user
    messages to `prompts` (prompts.json, keyed by scenario id; default: beside the CSV), so no user-model
    call is needed. `per_set` scenarios per built-in value set, spread round-robin over the set's pairs in
    the set's own value1/value2 order; within each pair the four templates take turns (each pair starting
    at a different one), so their counts differ by at most one and either act side holds half the pair's
    scenarios (within one). The texts carry the simulated
    models' markers (the pair and acting value on the description and the message, each action's value,
    and which action acts), so simulated targets choose by their utilities (and `act_bias`).
    `filler_words` pads each description (for prompt-size control). Returns the number of scenarios."""
    import csv

    rng = random.Random(seed)
    words = ("river lantern market ledger harbour orchard council archive ferry workshop clinic "
             "bakery library courier garden tenant ").split()
    prompts = prompts or prompts_path(path)
    messages = {}
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCENARIO_COLUMNS)
        for set_name, pairs in value_pairs().items():
            for index in range(per_set):
                pair = index % len(pairs)
                value1, value2 = pairs[pair]
                # The pair's k-th scenario takes the template after its (k-1)-th; pairs start at different
                # templates, so small files are balanced over the set too.
                template = TEMPLATES[(index // len(pairs) + pair) % len(TEMPLATES)]
                act_side = ACT_SIDE[template]
                acting = value1 if act_side == "action1" else value2
                filler = " ".join(rng.choice(words) for _ in range(filler_words))
                markers = f"⟦pair:{value1}|{value2}⟧ ⟦act:{acting}⟧"
                scenario_id = f"{set_name}_{index:05d}"
                context = f"A general-purpose chat assistant helps a user with case {index} of {set_name}."
                profile = {"persona": f"User {index}, who relies on the assistant",
                           "background": f"Has dealt with case {index} before.", "goal": "Get a decision today"}

                def action(side: str, value: str) -> str:
                    act = side == act_side
                    return f"⟦v:{value}⟧{'⟦act⟧' if act else ''} " + ("Go ahead as asked." if act else "Hold back and decline.")

                writer.writerow([
                    scenario_id, context,
                    f"Case {index} of {set_name}: a user needs help and {value1} conflicts with {value2}. "
                    + " ".join(part for part in (filler, markers) if part),
                    json.dumps(profile), value1, value2,
                    action("action1", value1), action("action2", value2),
                    "True", "", "bench",
                    template, act_side, DOMAINS[index % len(DOMAINS)],
                    f"The {value1} side is served; the {value2} side suffers.",
                    f"The {value2} side is served; the {value1} side suffers.",
                ])
                messages[scenario_id] = f"Hi, can you help me with case {index}? I need an answer today. {markers}"
                rows += 1
    prompts.write_text(json.dumps(messages, ensure_ascii=False))
    return rows


def prompts_path(csv_path: Path) -> Path:
    """Where write_scenarios puts the prompts.json of `csv_path` by default."""
    return csv_path.with_name(csv_path.stem + "-prompts.json")


# --------------------------------------------------------------------------------------------------
# Processes


class Process:
    """A child process with its stderr in a log file (or watched line by line) and stdout in a file."""

    def __init__(self, label: str, argv: list[str], *, logs: Path, env: dict, watch: dict | None = None):
        self.label = label
        self.log = logs / f"{label}.log"
        self.out = logs / f"{label}.out"
        self._log_handle = self.log.open("w")
        self._out_handle = self.out.open("w")
        # Lines to look for on stderr -> the time each was first seen.
        self.seen: dict[str, float] = {}
        self._watch = watch or {}
        self.popen = subprocess.Popen(
            argv, stdout=self._out_handle, stderr=subprocess.PIPE if watch else self._log_handle,
            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.started = now()
        self._reader = None
        if watch:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self) -> None:
        for raw in self.popen.stderr:
            line = raw.decode("utf-8", "replace")
            stamp = now()
            for key, needle in self._watch.items():
                if key not in self.seen and needle in line:
                    self.seen[key] = stamp
            self._log_handle.write(line)
            self._log_handle.flush()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, number: int) -> None:
        if self.running():
            try:
                os.kill(self.popen.pid, number)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 25) -> int:
        """SIGTERM (workers drain), then SIGKILL after `timeout` seconds; returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait()
        return self.finish()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait()
        self.finish()

    def finish(self) -> int:
        if self._reader:
            self._reader.join(timeout=5)
        self._out_handle.flush()
        self._log_handle.flush()
        return self.popen.returncode

    def stdout(self) -> str:
        self._out_handle.flush()
        return self.out.read_text()

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Harness:
    """Owns everything a benchmark starts: the work folder, child processes and servers. Use as a context
    manager; on exit (also on an exception, SIGINT or SIGTERM) it stops every child it started and the
    servers that were not running before."""

    def __init__(self, bench: str):
        self.bench = bench
        self.amqp_port = _port("CONFLICTSCOPE_AMQP_PORT", 5672)
        self.redis_port = _port("CONFLICTSCOPE_REDIS_PORT", 6379)
        self.sim_port = _port("CONFLICTSCOPE_SIM_PORT", 8190)
        self.work = ROOT / "bench/.work" / bench / time.strftime("%Y%m%d-%H%M%S")
        self.work.mkdir(parents=True, exist_ok=True)
        self.children: list[Process] = []
        self.servers_to_stop: list[str] = []
        self.env = dict(os.environ)
        self.env.update({
            "CONFLICTSCOPE_AMQP_PORT": str(self.amqp_port), "CONFLICTSCOPE_REDIS_PORT": str(self.redis_port),
            "CONFLICTSCOPE_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/",
            "CONFLICTSCOPE_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            KEY_ENV: FAKE_KEY,
            "CONFLICTSCOPE_LOG_LEVEL": "info",  # the coordinator's `coordinator publishing` line times the start
        })
        self.binary = ""

    # Lifecycle

    def __enter__(self) -> "Harness":
        def interrupted(number, _frame):
            raise KeyboardInterrupt(f"signal {number}")

        signal.signal(signal.SIGTERM, interrupted)
        signal.signal(signal.SIGHUP, interrupted)
        return self

    def __exit__(self, kind, error, _traceback) -> bool:
        self.cleanup()
        if kind is None:
            return False
        if issubclass(kind, BenchError):
            print(f"bench/{self.bench}: error: {error}", file=sys.stderr)
            sys.exit(1)
        if issubclass(kind, KeyboardInterrupt):
            print(f"bench/{self.bench}: interrupted; cleaned up", file=sys.stderr)
            sys.exit(130)
        return False

    def cleanup(self) -> None:
        self.stop_children("")
        for server in self.servers_to_stop:
            self.servers("stop", server)
        self.servers_to_stop = []

    @staticmethod
    def say(message: str) -> None:
        """A human-readable line of results (stdout)."""
        print(message, flush=True)

    @staticmethod
    def note(message: str) -> None:
        """Progress and diagnostics (stderr)."""
        print(message, file=sys.stderr, flush=True)

    # Binary

    def build(self) -> str:
        """The release binary: CONFLICTSCOPE_BIN, or `swift build -c release` with SWIFT_BUILD_FLAGS."""
        if os.environ.get("CONFLICTSCOPE_BIN"):
            self.binary = os.environ["CONFLICTSCOPE_BIN"]
            self.say(f"binary: {self.binary} (CONFLICTSCOPE_BIN, not rebuilt)")
        else:
            flags = os.environ.get("SWIFT_BUILD_FLAGS", "").split()
            command = ["swift", "build", "-c", "release", "--product", "conflictscope", *flags]
            self.note("building: " + " ".join(command))
            if subprocess.run(command, cwd=ROOT, stdout=sys.stderr).returncode != 0:
                raise BenchError("swift build failed")
            path = subprocess.run(command + ["--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
            self.binary = str(Path(path) / "conflictscope")
            self.say(f"binary: {self.binary} (built)")
        if not os.access(self.binary, os.X_OK):
            raise BenchError(f"no executable at {self.binary}")
        return self.binary

    # Servers

    def servers(self, *arguments: str) -> str:
        result = subprocess.run([str(ROOT / "cluster/servers"), *arguments], env=self.env, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise BenchError(f"cluster/servers {' '.join(arguments)} failed: {result.stderr.strip()[-300:]}")
        return result.stdout

    def start_servers(self) -> None:
        """RabbitMQ and Redis on the configured ports; those not already running are stopped at the end."""
        status = self.servers("status")
        for server in ("rabbitmq", "redis"):
            if f"{server}: down" in status:
                self.servers_to_stop.append(server)
        self.servers("start")
        self.note(f"servers: rabbitmq on {self.amqp_port}, redis on {self.redis_port}")

    def restart_server(self, which: str) -> float:
        """Stops and starts RabbitMQ or Redis; returns how long it took (seconds)."""
        started = now()
        self.servers("restart", which)
        return now() - started

    def redis(self, *arguments: str) -> str:
        result = subprocess.run(["redis-cli", "-p", str(self.redis_port), "--raw", *arguments],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise BenchError(f"redis-cli {' '.join(arguments)} failed: {result.stderr.strip()}")
        return result.stdout.rstrip("\n")

    # Children

    def spawn(self, label: str, arguments: list[str], *, watch: dict | None = None) -> Process:
        child = Process(label, [self.binary, *arguments], logs=self.work, env=self.env, watch=watch)
        self.children.append(child)
        return child

    def stop_children(self, *prefixes: str) -> None:
        """Stops (SIGTERM, SIGKILL after 20 s) and forgets the children whose label starts with a prefix."""
        chosen = [child for child in self.children if child.label.startswith(prefixes)]
        for child in chosen:
            child.signal(signal.SIGTERM)
        deadline = now() + 20
        for child in chosen:
            try:
                child.popen.wait(max(0.1, deadline - now()))
            except subprocess.TimeoutExpired:
                child.kill()
            child.finish()
            self.children.remove(child)

    def forget(self, child: Process) -> None:
        if child in self.children:
            self.children.remove(child)

    def import_scenarios(self, config: Path, csv_path: Path, prompts: Path | None = None) -> None:
        """`conflictscope import` of a scenario CSV and its prompts.json (default: write_scenarios's)."""
        prompts = prompts or prompts_path(csv_path)
        result = subprocess.run([self.binary, "import", "--config", str(config), "--scenarios", str(csv_path),
                                 "--prompts", str(prompts)], env=self.env, capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchError(f"conflictscope import failed: {result.stderr.strip()[-400:]}")

    # Sim-server

    def start_sim_server(self, spec: SweepSpec, label: str, port: int) -> "SimServer":
        folder = self.work / label
        folder.mkdir(exist_ok=True)
        config = folder / "sim.toml"
        config.write_text(spec.render("sim", store="sim-unused.sqlite"))
        if _answers(f"http://127.0.0.1:{port}/stats"):
            raise BenchError(f"port {port} is already in use (set CONFLICTSCOPE_SIM_PORT to a free range)")
        child = self.spawn(label, ["sim-server", "--config", str(config), "--port", str(port)])
        server = SimServer(port, child)
        deadline = now() + 60
        while not _answers(server.url + "/stats"):
            if not child.running():
                raise BenchError(f"sim-server on port {port} exited: {child.tail(5)}")
            if now() > deadline:
                raise BenchError(f"sim-server on port {port} did not answer within 60 s")
            time.sleep(0.2)
        return server


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class SimServer:
    def __init__(self, port: int, child: Process):
        self.port = port
        self.child = child
        self.url = f"http://127.0.0.1:{port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def stats(self, admissions: bool = False) -> dict:
        url = self.url + "/stats" + ("?admissions=1" if admissions else "")
        with urllib.request.urlopen(url, timeout=60) as response:
            return json.load(response)


# --------------------------------------------------------------------------------------------------
# A cluster sweep


class Store:
    """Read-only looks into a sweep's SQLite store (the aggregator is its only writer)."""

    def __init__(self, path: Path):
        self.path = path

    def query(self, sql: str, arguments=()) -> list[tuple]:
        connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            return connection.execute(sql, arguments).fetchall()
        finally:
            connection.close()

    def scalar(self, sql: str, arguments=()):
        return self.query(sql, arguments)[0][0]

    def sweep_id(self) -> str:
        return self.scalar("SELECT id FROM sweep")

    def spent_usd(self) -> float:
        """What the store's calls cost (the sum of `call.cost_usd`, as the coordinator's budget counts it)."""
        return self.scalar("SELECT COALESCE(SUM(cost_usd), 0) FROM call")

    def calls_by_stage(self, status: str | None = "ok") -> dict[str, int]:
        """Calls the store records, by the stage that made them (Stage.swift's labels), from each call's
        role and prompt template; only calls with `status` (all when None)."""
        where, arguments = ("WHERE status = ?", (status,)) if status else ("", ())
        counts: dict[str, int] = {}
        for role, prompt, count in self.query(f"SELECT role, prompt, COUNT(*) FROM call {where} GROUP BY 1, 2",
                                              arguments):
            stage = call_stage(role, prompt)
            counts[stage] = counts.get(stage, 0) + count
        return counts

    def tasks_by_stage(self) -> dict[str, int]:
        """The cluster's tasks by stage (the stage part of their queue names `cs.<name>.<sweep>.<stage>.<model>`)."""
        return {stage: count for stage, count in self.query("SELECT stage, COUNT(*) FROM task GROUP BY 1")}


# A call's stage from its prompt template (`name@version`; target replies have none).
_PROMPT_STAGE = {"outline": "generation", "single_stage": "generation", "direct": "generation",
                 "scenario": "scenario_details", "user": "user_prompts", "user_followup": "user_prompts",
                 "artifact": "artifacts", "mcq": "multiple_choice", "likert": "likert", "judge": "judge"}


def call_stage(role: str, prompt: str) -> str:
    name = prompt.split("@", 1)[0]
    if name.startswith("filter_"):
        return "filter"
    if name == "none" and role == "target":
        return "open_ended"
    return _PROMPT_STAGE.get(name, f"{role}:{name}")


class ClusterSweep:
    """One sweep through the cluster: the configs, the imported scenarios, an aggregator, workers and the
    coordinator, and the timing of the first publish and the last stored judgment.

    wall time: from the moment the coordinator logs `coordinator publishing` (read from its stderr as it is
    written, just before the first publish) to the first look at the store (every 0.1 s) that finds the
    final number of judgments; so it overstates by up to 0.1 s plus the log line's delivery.

    base_url: where the workers send every provider's calls (default the sim-server's; bench/chaos puts a
    proxy there). tag_workers: each worker gets its own config, the shared one plus a `WORKER_HEADER` naming
    the worker on every request, so the proxy can tell whose call it answers. worker_arguments: added to every
    worker's command line (`--drain-seconds 10`)."""

    def __init__(self, harness: Harness, spec: SweepSpec, label: str, sim: SimServer, scenarios: Path, *,
                 base_url: str | None = None, tag_workers: bool = False, worker_arguments: tuple[str, ...] = ()):
        self.harness = harness
        self.spec = spec
        self.label = label
        self.folder = harness.work / label
        self.folder.mkdir(exist_ok=True)
        self.base_url = base_url or sim.base_url
        self.tag_workers = tag_workers
        self.worker_arguments = list(worker_arguments)
        self.config = self.folder / "sweep.toml"
        self.config.write_text(spec.render("client", store="sweep.sqlite", base_url=self.base_url))
        self.store = Store(self.folder / "sweep.sqlite")
        harness.import_scenarios(self.config, scenarios)
        self.workers: list[Process] = []
        self.aggregator: Process | None = None
        self.coordinator: Process | None = None
        self._worker_count = 0
        self.started = now()
        self.judgment_times: list[tuple[float, int]] = []  # (time, count) whenever the count changed
        self._first_publish: float | None = None  # the first coordinator's, kept across restarts

    def start_aggregator(self) -> None:
        self.aggregator = self.harness.spawn(f"{self.label}-aggregator", ["aggregator", "--config", str(self.config)])

    def start_worker(self, *, base_url: str | None = None, arguments: tuple[str, ...] = ()) -> Process:
        """A worker with the sweep's config, or its own one when workers are tagged or `base_url` points this
        one's providers elsewhere (same sweep, limits and models). `seen["drain_cancel"]` is when it logged
        cancelling tasks at its drain deadline."""
        self._worker_count += 1
        label = f"{self.label}-worker-{self._worker_count}"
        config = self.config
        if self.tag_workers or base_url:
            config = self.folder / f"worker-{self._worker_count}.toml"
            headers = {WORKER_HEADER: label} if self.tag_workers else None
            config.write_text(self.spec.render("client", store="sweep.sqlite", base_url=base_url or self.base_url,
                                               headers=headers))
        child = self.harness.spawn(label, ["worker", "--config", str(config), *self.worker_arguments, *arguments],
                                   watch={"drain_cancel": "drain deadline reached"})
        self.workers.append(child)
        return child

    def start(self, workers: int) -> None:
        self.started = now()
        self.start_aggregator()
        for _ in range(workers):
            self.start_worker()
        self.start_coordinator()

    def start_coordinator(self) -> None:
        if self.coordinator and "publishing" in self.coordinator.seen and self._first_publish is None:
            self._first_publish = self.coordinator.seen["publishing"]
        self.coordinator = self.harness.spawn(
            f"{self.label}-coordinator", ["coordinator", "--config", str(self.config), "--json"],
            watch={"publishing": "coordinator publishing"})

    def restart_coordinator(self) -> None:
        """Stops the coordinator as Kubernetes evicts a Job's pod (SIGTERM) and starts it again."""
        self.coordinator.stop()
        self.harness.forget(self.coordinator)
        self.start_coordinator()

    def wait(self, timeout: float, tick=None, budget_bound: bool = False) -> dict:
        """Waits for the coordinator's summary, watching the judgment count; `tick(seconds since start)` is
        called about every 0.1 s. Returns the summary (the coordinator's JSON). A coordinator that ends with
        tasks stopped at the sweep's budget (`budget.reached`) has finished only when `budget_bound`."""
        last = -1
        deadline = now() + timeout
        while True:
            running = self.coordinator.running()
            try:
                count = self.store.scalar("SELECT COUNT(*) FROM judgment")
            except sqlite3.Error:
                count = last
            if count != last:
                self.judgment_times.append((now(), count))
                last = count
            if not running:
                break
            if now() > deadline:
                raise BenchError(f"{self.label}: the sweep did not finish within {timeout:.0f} s "
                                 f"(logs in {self.harness.work})")
            if tick:
                tick(now() - self.started)
            time.sleep(0.1)
        status = self.coordinator.finish()
        if status != 0:
            raise BenchError(f"{self.label}: the coordinator exited with {status}: {self.coordinator.tail(5)}")
        lines = [line for line in self.coordinator.stdout().splitlines() if line.strip()]
        summary = json.loads(lines[-1])
        if summary.get("budget", {}).get("reached") and not budget_bound:
            raise BenchError(f"{self.label}: the coordinator stopped tasks at the sweep's budget "
                             f"(spent {summary['budget'].get('spent_usd')} USD)")
        return summary

    @property
    def first_publish(self) -> float:
        if self._first_publish is not None:
            return self._first_publish
        if "publishing" not in self.coordinator.seen:
            raise BenchError(f"{self.label}: the coordinator never logged `coordinator publishing`")
        return self.coordinator.seen["publishing"]

    @property
    def last_judgment(self) -> float:
        return self.judgment_times[-1][0]

    def stop_roles(self) -> None:
        for child in self.workers + [self.aggregator]:
            if child and child.running():
                child.stop()

    def live(self) -> dict | None:
        """The aggregator's live rankings (Redis `cs:<sweep>:live`), or None."""
        text = self.harness.redis("GET", f"cs:{self.store.sweep_id()}:live")
        return json.loads(text) if text else None

    def wait_live(self, judgments: int, timeout: float = 20) -> dict | None:
        """The live rankings once they count `judgments` (the aggregator refits every 2 s)."""
        deadline = now() + timeout
        live = None
        while now() < deadline:
            live = self.live()
            if live and live.get("judgments") == judgments:
                return live
            time.sleep(0.5)
        return live


# --------------------------------------------------------------------------------------------------
# Figures


def peak_window(times: list[float], weights: list[int], window: float = 60.0) -> int:
    """The largest total weight of admissions in any half-open window [t, t + window): exact, since a
    maximal window can always be moved to start at an admission."""
    order = sorted(range(len(times)), key=times.__getitem__)
    ts = [times[i] for i in order]
    ws = [weights[i] for i in order]
    best = total = 0
    end = 0
    for start in range(len(ts)):
        while end < len(ts) and ts[end] < ts[start] + window:
            total += ws[end]
            end += 1
        best = max(best, total)
        total -= ws[start]
    return best


def write_result(harness: Harness, result: dict) -> None:
    """Saves the result beside the logs and prints it as the last line on stdout."""
    text = json.dumps(result, sort_keys=False)
    (harness.work / "result.json").write_text(text + "\n")
    harness.note(f"logs and result: {harness.work}")
    print(text, flush=True)
