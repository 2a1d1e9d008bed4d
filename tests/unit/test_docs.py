"""The README documents every flag, and the compose file is well formed."""

from __future__ import annotations

from pathlib import Path

import yaml

from diarizer.config import parser as diarizer_parser
from orchestrator.config import parser as orchestrator_parser
from transcriber.config import parser as transcriber_parser

ROOT = Path(__file__).resolve().parents[2]


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's `!reset` tag (drops an inherited value)."""


ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def test_readme_documents_every_flag() -> None:
    readme = (ROOT / "README.md").read_text()
    shared = {
        "host",
        "port",
        "metrics-port",
        "tls-cert",
        "tls-key",
        "tls-client-ca",
        "grace-seconds",
        "max-message-bytes",
        "log-level",
        "auth-tokens-file",
        "auth-health",
        "stream-idle-seconds",
    }
    envs = list(transcriber_parser().env_vars.values()) + [
        env
        for parser in (diarizer_parser(), orchestrator_parser())
        for flag, env in parser.env_vars.items()
        if flag not in shared
    ]
    envs.append("WHOSPOKE_ORCHESTRATOR_MAX_MESSAGE_BYTES")
    missing = [env for env in envs if f"`{env}`" not in readme]
    assert not missing, f"add these to the README configuration table: {missing}"


def test_compose_services_have_grpc_healthchecks_and_gpu_reservations() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    transcriber = compose["services"]["transcriber"]
    assert "whospoke.common.healthcheck" in transcriber["healthcheck"]["test"]
    devices = transcriber["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "prometheus" in compose["services"]
    cpu = yaml.load((ROOT / "docker-compose.cpu.yml").read_text(), ComposeLoader)
    assert cpu["services"]["transcriber"]["environment"]["WHOSPOKE_TRANSCRIBER_DEVICE"] == "cpu"
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = [t for c in scrape["scrape_configs"][0]["static_configs"] for t in c["targets"]]
    assert {"transcriber:9461", "diarizer:9462", "orchestrator:9460"} <= set(targets)
    orchestrator = compose["services"]["orchestrator"]
    assert "dns:///diarizer:50062" in orchestrator["environment"].values()


def test_grafana_dashboard_is_provisioned_and_queries_our_metrics() -> None:
    import json

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = " ".join(compose["services"]["grafana"]["volumes"])
    assert "deploy/grafana/whospoke.json" in mounts and "deploy/grafana/provisioning" in mounts
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "whospoke.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "whospoke_audio_processed_seconds_total",
        "whospoke_real_time_factor_bucket",
        "whospoke_queue_depth",
        "whospoke_grpc_request_duration_seconds_bucket",
        "whospoke_grpc_requests_total",
        "whospoke_grpc_requests_in_flight",
    ):
        assert metric in exprs, metric
    for service in ("transcriber", "diarizer", "orchestrator"):
        spec = compose["services"][service]
        assert spec["healthcheck"]["test"][3] == "whospoke.common.healthcheck"
        assert spec["ports"] and spec["command"][0].startswith("whospoke-")
