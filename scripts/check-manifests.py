"""Checks kustomize's rendered output (a multi-document YAML file) for scripts/validate-deploy.

Kubernetes' own kinds go to kubernetes-validate (strict: unknown fields fail); custom resources
are checked against our schemas in k8s/schemas/; a kind with neither fails. Then a few checks of
our own that no schema can express: the worker's grace period against its drain time, metrics
flags and scrape annotations on every role, KEDA's queue pattern against real queue names, and the
security model (docs/operations.md, "Security model"): no Secret rendered, every pod template within
Pod Security "restricted" and the namespace enforcing it, a default-deny NetworkPolicy, provider
keys only in the workers, TLS URLs and the Redis tunnel in every role, no administrator user.

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
import tomllib

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
            # Applying again must never overwrite the real Secrets with templates: they are made once by hand.
            problems.append(f"{where}: Secrets must not be in the kustomization (created once, by hand)")
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
    problems += check_security(documents)
    return problems


def pod_template(doc):
    if doc.get("kind") in {"Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"}:
        return doc.get("spec", {}).get("template")
    if doc.get("kind") == "CronJob":
        return doc.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template")
    if doc.get("kind") == "Pod":
        return doc
    return None


PROVIDER_KEYS = "conflictscope-provider-keys"
ADMIN_SECRET = "conflictscope-rabbitmq-default-user"  # the Cluster Operator's administrator
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret"}


def pod_templates(documents):
    """(where, pod spec, ours) for every pod the manifests make, including the RabbitMQ operator's
    StatefulSet as far as our override shapes it (the operator merges it into its own)."""
    for doc in documents:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name', '?')}"
        template = pod_template(doc)
        if template is not None:
            yield where, template.get("spec", {}), True
        elif doc.get("kind") == "RabbitmqCluster":
            override = doc.get("spec", {}).get("override", {}).get("statefulSet", {})
            yield where, override.get("spec", {}).get("template", {}).get("spec", {}), False


def restricted_problems(where, spec, ours):
    """Pod Security "restricted" (Kubernetes' pod security standards), plus a read-only root
    filesystem for the pods we build ourselves."""
    problems = []
    pod = spec.get("securityContext") or {}
    containers = [(c.get("name", "?"), c) for c in spec.get("initContainers", []) + spec.get("containers", [])]
    if not containers:
        problems.append(f"{where}: no containers to check against the restricted profile")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{where}: {field} is not allowed (restricted)")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"{where}: volume {volume.get('name')} of type {sorted(kinds)} is not allowed (restricted)")
    if pod.get("runAsUser") == 0:
        problems.append(f"{where}: runAsUser 0 (restricted)")
    for name, container in containers:
        context = container.get("securityContext") or {}
        at = f"{where}: container {name}"
        if not (context.get("runAsNonRoot", pod.get("runAsNonRoot")) is True):
            problems.append(f"{at}: runAsNonRoot must be true (restricted)")
        if context.get("runAsUser") == 0:
            problems.append(f"{at}: runAsUser 0 (restricted)")
        seccomp = (context.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{at}: seccompProfile must be RuntimeDefault or Localhost (restricted)")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation must be false (restricted)")
        if context.get("privileged"):
            problems.append(f"{at}: privileged (restricted)")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{at}: capabilities must drop ALL (restricted)")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{at}: only NET_BIND_SERVICE may be added (restricted)")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{at}: hostPort is not allowed")
        if ours and context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: readOnlyRootFilesystem must be true (writable paths as volumes)")
    return problems


def secret_names(spec):
    """Every Secret a pod spec reads, by container name ("" for volumes)."""
    found = []
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        name = container.get("name", "?")
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                found.append((name, source["secretRef"].get("name")))
        for variable in container.get("env", []):
            reference = (variable.get("valueFrom") or {}).get("secretKeyRef")
            if reference:
                found.append((name, reference.get("name")))
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            found.append(("", volume["secret"].get("secretName")))
        for source in (volume.get("projected") or {}).get("sources", []):
            if "secret" in source:
                found.append(("", source["secret"].get("name")))
    return found


def check_security(documents):
    problems = []
    namespaces = [d for d in documents if d.get("kind") == "Namespace"]
    for namespace in namespaces:
        labels = namespace.get("metadata", {}).get("labels", {})
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            problems.append(f"Namespace/{namespace['metadata']['name']}: must enforce Pod Security \"restricted\"")
    if not namespaces:
        problems.append("no Namespace: the namespace must be rendered, labelled to enforce \"restricted\"")

    for where, spec, ours in pod_templates(documents):
        problems += restricted_problems(where, spec, ours)

    # Default deny: a policy selecting every pod, for both directions, that allows nothing.
    default_deny = [
        d for d in documents
        if d.get("kind") == "NetworkPolicy" and d.get("spec", {}).get("podSelector") in ({}, None)
        and set(d["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not d["spec"].get("ingress") and not d["spec"].get("egress")
    ]
    if not default_deny:
        problems.append("no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)")

    for doc in documents:
        template = pod_template(doc)
        if template is None:
            continue
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        component = template.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")
        spec = template.get("spec", {})
        for container, secret in secret_names(spec):
            if secret == PROVIDER_KEYS and (component != "worker" or container not in ("worker", "")):
                problems.append(f"{where}: {PROVIDER_KEYS} is mounted outside the worker container")
            if secret == ADMIN_SECRET:
                problems.append(f"{where}: uses the RabbitMQ administrator ({ADMIN_SECRET}); use the roles' user")
        if component not in ROLES:
            continue
        for container in spec.get("containers", []):
            values = {v.get("name"): v.get("value") for v in container.get("env", [])}
            amqp = values.get("CONFLICTSCOPE_AMQP_URL") or ""
            if not amqp.startswith("amqps://"):
                problems.append(f"{where}: CONFLICTSCOPE_AMQP_URL must be amqps:// (TLS)")
            redis = values.get("CONFLICTSCOPE_REDIS_URL") or ""
            if not re.search(r"@127\.0\.0\.1:6379/", redis):
                problems.append(f"{where}: CONFLICTSCOPE_REDIS_URL must go through the TLS tunnel on 127.0.0.1:6379")
        tunnels = [c for c in spec.get("initContainers", [])
                   if c.get("restartPolicy") == "Always" and "stunnel" in " ".join(c.get("command", []))]
        if not tunnels:
            problems.append(f"{where}: no redis-tunnel sidecar (stunnel, restartPolicy Always)")

    for doc in documents:
        if doc.get("kind") == "TriggerAuthentication":
            for reference in doc.get("spec", {}).get("secretTargetRef", []):
                if reference.get("name") == ADMIN_SECRET:
                    problems.append(f"TriggerAuthentication/{doc['metadata']['name']}: KEDA must not use the administrator")
    return problems


def flag(args, name):
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


# The stages that are tasks, each with a queue per model (Stage.isTask and Stage.queueModels in
# Sources/ConflictScope/Pipeline/Stage.swift), and the config role whose model they use (None: one
# queue per target).
TASK_STAGES = {"generation": "generator", "scenario_details": "generator", "filter": "filter_judge",
               "user_prompts": "user", "multiple_choice": None, "open_ended": None}
STAGE_SWIFT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "ConflictScope", "Pipeline",
                           "Stage.swift")
# The management API's largest page (RabbitMQ refuses page_size above 500).
MAX_PAGE_SIZE = 500


def queue_label(sweep_name):
    """The sweep name as queue names carry it (the naming proposed in k8s/autoscaling.yaml)."""
    return re.sub(r"[^a-z0-9-]", "-", sweep_name.lower())[:64]


def check_queue_pattern(documents):
    """KEDA must count this sweep's task queues (cs.<name>.<sweep id>.<stage>.<model>) and nothing else,
    in one page of the management API."""
    problems = []
    try:
        with open(STAGE_SWIFT) as f:
            stage_swift = f.read()
        for stage in TASK_STAGES:
            if f'"{stage}"' not in stage_swift and not re.search(rf"\bcase {stage}\b", stage_swift):
                problems.append(f"check-manifests.py: stage {stage} is not in Stage.swift; update TASK_STAGES")
    except OSError as error:
        problems.append(f"check-manifests.py: cannot read {STAGE_SWIFT}: {error}")
    config = None
    for doc in documents:
        if doc.get("kind") == "ConfigMap" and "config.toml" in doc.get("data", {}):
            config = tomllib.loads(doc["data"]["config.toml"])
    if config is None:
        return problems + ["ConfigMap with config.toml: not found (KEDA's queue pattern is checked against it)"]
    label = queue_label(config["sweep"]["name"])
    targets = config.get("targets", {}).get("models", [])
    models = {stage: [config["roles"][role]["model"]] if role else targets for stage, role in TASK_STAGES.items()}
    counted = [f"cs.{label}.{SWEEP}.{stage}.{model}" for stage in TASK_STAGES for model in models[stage] + ["gpt-4.1"]]
    task = f"{SWEEP}.generation.{models['generation'][0]}"
    ignored = [f"cs.{label}.{SWEEP}.results", f"cs.{label}.{SWEEP}.dead",
               f"cs.{label}.{SWEEP}.multiple_choice.{targets[0] if targets else 'm'}.retry",
               f"cs.{label}.{SWEEP}.open_ended.gpt-4.1.retry",
               f"cs.{label}x.{task}", f"cs.other-sweep.{task}", f"cs.{task}"]
    queues_per_sweep = sum(len(m) for m in models.values())
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
            page_size = int(metadata.get("pageSize", "100"))  # KEDA's default
            if not queues_per_sweep <= page_size <= MAX_PAGE_SIZE:
                problems.append(f"{where}: pageSize {page_size} must hold the sweep's {queues_per_sweep} task queues"
                                f" and be at most {MAX_PAGE_SIZE}")
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
