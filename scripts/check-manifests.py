"""Checks kustomize's rendered output (a multi-document YAML file) for scripts/validate-deploy.

Kubernetes' own kinds go to kubernetes-validate (strict: unknown fields fail); custom resources
are checked against our schemas in k8s/schemas/; a kind with neither fails. Then a few checks of
our own that no schema can express: placeholder-only secrets, the worker's grace period against
its drain time, metrics flags and scrape annotations on every role, and KEDA's queue pattern
against real queue names.

Usage: check-manifests.py RENDERED.yaml SCHEMA_DIR KUBERNETES_VALIDATE|-
(`-`: skip kubernetes-validate, for broken copies aimed at the other checks; it is the slow part).
Prints one line per problem and exits 1 if there is any.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

BUILT_IN_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1"}
ROLES = {"coordinator", "worker", "aggregator"}
SWEEP = "0f8b2a9c-1d2e-4f50-8a6b-7c8d9e0f1a2b"


def main(rendered, schema_dir, kubernetes_validate):
    with open(rendered) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    problems = []
    built_in = []
    for doc in documents:
        api, kind, name = doc.get("apiVersion", ""), doc.get("kind", ""), doc.get("metadata", {}).get("name", "?")
        where = f"{kind}/{name}"
        if api in BUILT_IN_GROUPS:
            built_in.append(doc)
            continue
        path = os.path.join(schema_dir, f"{api.replace('/', '_')}_{kind}.json")
        if not os.path.exists(path):
            problems.append(f"{where}: no schema for {api} {kind} in {schema_dir}")
            continue
        with open(path) as f:
            schema = json.load(f)
        for error in sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str):
            field = ".".join(str(p) for p in error.absolute_path) or "(top)"
            problems.append(f"{where}: {field}: {error.message}")
    if kubernetes_validate != "-":
        problems += validate_built_in(built_in, kubernetes_validate)
    problems += house_rules(documents)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def validate_built_in(documents, kubernetes_validate):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(documents, f)
        path = f.name
    try:
        run = subprocess.run(
            [kubernetes_validate, "--strict", "--quiet", path], capture_output=True, text=True, check=False
        )
    finally:
        os.unlink(path)
    lines = [line.replace(path, "rendered") for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    if run.returncode != 0 or any("ERROR" in line or "Couldn't find schema" in line for line in lines):
        return lines or [f"kubernetes-validate exited {run.returncode}"]
    return []


def house_rules(documents):
    problems = []
    for doc in documents:
        kind, meta = doc.get("kind"), doc.get("metadata", {})
        where = f"{kind}/{meta.get('name', '?')}"
        if kind == "Secret":
            # Templates only: a committed secret holds nothing but empty values and placeholders.
            for key, value in (doc.get("stringData") or {}).items():
                if value and "REPLACE_ME" not in value:
                    problems.append(f"{where}: {key} holds a value; commit placeholders only")
            if doc.get("data"):
                problems.append(f"{where}: use stringData placeholders, not data")
        template = pod_template(doc)
        component = meta.get("labels", {}).get("app.kubernetes.io/component")
        if template is None or component not in ROLES:
            continue
        annotations = template.get("metadata", {}).get("annotations", {})
        wanted = {"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}
        for key, value in wanted.items():
            if annotations.get(key) != value:
                problems.append(f"{where}: pod annotation {key} should be {value!r}")
        spec = template.get("spec", {})
        for container in spec.get("containers", []):
            args = [str(a) for a in container.get("args", [])]
            if not args or args[0] != component:
                problems.append(f"{where}: container {container['name']} should run `conflictscope {component}`")
            if flag(args, "--metrics-port") != "9090":
                problems.append(f"{where}: container {container['name']} needs --metrics-port 9090")
            if component == "worker":
                drain = float(flag(args, "--drain-seconds") or 20)
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace < drain + 10:
                    problems.append(
                        f"{where}: terminationGracePeriodSeconds {grace} must exceed --drain-seconds {drain:g} "
                        "by at least 10 s"
                    )
    problems += check_queue_pattern(documents)
    return problems


def pod_template(doc):
    if doc.get("kind") in {"Deployment", "StatefulSet", "Job"}:
        return doc.get("spec", {}).get("template")
    return None


def flag(args, name):
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def check_queue_pattern(documents):
    """KEDA must count task queues (cs.<sweep>.<stage>.<model>) and nothing else."""
    counted = [f"cs.{SWEEP}.{stage}.{model}" for stage in ("generate", "detail", "filter", "user", "mcq", "open")
               for model in ("sim-writer", "gpt-4.1")]
    ignored = [f"cs.{SWEEP}.results", f"cs.{SWEEP}.dead", f"cs.{SWEEP}.mcq.sim-steady.retry",
               f"cs.{SWEEP}.open.gpt-4.1.retry"]
    problems = []
    for doc in documents:
        if doc.get("kind") != "ScaledObject":
            continue
        for trigger in doc.get("spec", {}).get("triggers", []):
            if trigger.get("type") != "rabbitmq":
                continue
            metadata = trigger.get("metadata", {})
            where = f"ScaledObject/{doc['metadata']['name']}"
            if metadata.get("protocol") != "http" or metadata.get("useRegex") != "true":
                problems.append(f"{where}: the rabbitmq trigger must use protocol http with useRegex (counts unacked)")
            if metadata.get("excludeUnacknowledged", "false") != "false":
                problems.append(f"{where}: unacknowledged tasks (held by workers) must count")
            if metadata.get("operation", "sum") != "sum":
                problems.append(f"{where}: queue lengths must be summed (operation: sum)")
            try:
                pattern = re.compile(metadata.get("queueName", ""))
            except re.error as error:
                problems.append(f"{where}: queueName is not a regular expression: {error}")
                continue
            problems += [f"{where}: queueName misses task queue {q}" for q in counted if not pattern.search(q)]
            problems += [f"{where}: queueName counts {q}" for q in ignored if pattern.search(q)]
    return problems


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
