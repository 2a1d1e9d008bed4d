"""The README documents every flag, its commands are marked and valid, and the compose file
is well formed."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import yaml

from diarizer.config import parser as diarizer_parser
from gateway.config import parser as gateway_parser
from orchestrator.config import DIARIZATION_STARTS
from orchestrator.config import parser as orchestrator_parser
from tests import readme
from transcriber.config import parser as transcriber_parser
from whospoke.cli.main import parser as cli_parser

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
        "max-connection-age-seconds",
        "max-connection-age-grace-seconds",
        "nice",
    }
    envs = list(transcriber_parser().env_vars.values()) + [
        env
        for parser in (diarizer_parser(), orchestrator_parser())
        for flag, env in parser.env_vars.items()
        if flag not in shared
    ]
    envs.append("WHOSPOKE_ORCHESTRATOR_MAX_MESSAGE_BYTES")
    envs += gateway_parser().env_vars.values()
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
    shared = cpu["services"]["orchestrator"]["environment"]  # both models on the same cores
    assert shared["WHOSPOKE_ORCHESTRATOR_DIARIZATION_START"] == "after-first-segment"
    assert "after-first-segment" in DIARIZATION_STARTS
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = [t for c in scrape["scrape_configs"][0]["static_configs"] for t in c["targets"]]
    assert {"transcriber:9461", "diarizer:9462", "orchestrator:9460"} <= set(targets)
    orchestrator = compose["services"]["orchestrator"]
    assert "dns:///diarizer:50062" in orchestrator["environment"].values()
    gateway = compose["services"]["gateway"]
    assert gateway["environment"]["WHOSPOKE_GATEWAY_ORCHESTRATOR"] == "dns:///orchestrator:50060"
    assert "/health" in " ".join(gateway["healthcheck"]["test"])
    assert "gateway:8000" in targets


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


# README commands: every block marked, every command line accepted by its parser, every
# documented flag real. The blocks marked `run` are executed by
# tests/integration/test_readme_commands.py and tests/e2e/test_readme.py.


def test_every_command_block_carries_a_marker() -> None:
    unmarked = [
        f"{b.id} ({b.language or 'no language'})"
        for b in readme.blocks()
        if b.language in readme.MARKED_LANGUAGES and b.marker is None
    ]
    assert not unmarked, (
        "put <!-- readme-test: run -->, <!-- readme-test: node --> or "
        f"<!-- readme-test: illustrative (why) --> directly above these blocks: {unmarked}"
    )
    assert not readme.dangling_markers(), "a marker must be well formed and directly above a fence"
    assert all(b.reason for b in readme.blocks() if b.marker == "illustrative")


def test_marker_rules_catch_unmarked_and_misplaced_blocks() -> None:
    text = (
        "<!-- readme-test: run -->\n```sh\nls\n```\n\n```bash\nls\n```\n"
        "```text\nout\n```\n<!-- readme-test: illustrative -->\n\n```\nx\n```\n"
    )
    found = readme.blocks(text)
    assert [(b.language, b.marker) for b in found] == [
        ("sh", "run"),
        ("bash", None),
        ("text", None),
        ("", None),
    ]
    assert readme.dangling_markers(text) == [12]


def test_every_grpcurl_command_is_in_a_run_block() -> None:
    """So each one is executed against the servers' reflection."""
    for block in readme.blocks():
        tools = {readme.program(argv) for argv in block.commands}
        if tools & {"grpcurl", "grpc-health-probe"}:
            assert block.marker == "run", f"{block.id}: grpcurl commands must be run"


def _parse(parser: argparse.ArgumentParser, argv: list[str], out: io.StringIO | None = None) -> str:
    """argparse's complaint about `argv`, or "" when it parses (`--help` included)."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(out or io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as stop:
        return "" if stop.code == 0 else errors.getvalue().strip().splitlines()[-1]
    return ""


def _parsers() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    return {
        "whospoke": cli_parser,
        "whospoke-transcriber": transcriber_parser,
        "whospoke-diarizer": diarizer_parser,
        "whospoke-orchestrator": orchestrator_parser,
        "whospoke-gateway": gateway_parser,
    }


def test_readme_command_lines_parse_with_the_real_parsers() -> None:
    """Every whospoke command in a block (run or not) and in the prose uses real flags."""
    parsers = _parsers()
    lines = [
        (b.id, argv)
        for b in readme.blocks()
        for argv in b.commands
        if readme.program(argv) in parsers
    ]
    lines += [
        ("README.md prose", shlex.split(span))
        for span in readme.inline_code()
        if readme.program(span.split()) in parsers and len(span.split()) > 2
    ]
    assert len(lines) > 10
    failures = [
        f"{where}: {' '.join(argv)}: {problem}"
        for where, argv in lines
        if (problem := _parse(parsers[readme.program(argv)](), argv[1:]))
    ]
    assert not failures, failures


def cli_help(*command: str) -> str:
    """What `whospoke [COMMAND] --help` prints."""
    out = io.StringIO()
    assert _parse(cli_parser(), [*command, "--help"], out) == ""
    return out.getvalue()


FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")


def test_cli_flags_are_documented_and_documented_flags_exist() -> None:
    text = (ROOT / "README.md").read_text()
    spans = " ".join(readme.inline_code())
    helps = {
        command: cli_help(*command.split())
        for command in ("", "serve", "process", "health", "submit", "job", "jobs", "cancel")
    }
    real = {flag for h in helps.values() for flag in FLAG.findall(h)} - {"--help"}
    undocumented = sorted(f for f in real if f not in FLAG.findall(spans))
    assert not undocumented, f"document these CLI flags in README.md: {undocumented}"
    required = {
        "process": {
            "--require-diarization",
            "--allow-partial",
            "--tls",
            "--tls-ca",
            "--tls-cert",
            "--tls-key",
        },
        "serve": {"--base-port", "--metrics-base-port"},
    }
    for command, flags in required.items():
        missing = flags - set(FLAG.findall(helps[command]))
        assert not missing, f"`whospoke {command} --help` lacks {sorted(missing)}"
    assert "--debug" in real
    using = text[text.index("## Using whospoke") : text.index("### The contract")]
    rows = re.findall(r"^\| (`--[^|]*)\|", using, re.M)
    assert len(rows) > 10, "the option tables of `whospoke serve` and `whospoke process`"
    phantom = sorted({flag for row in rows for flag in FLAG.findall(row)} - real)
    assert not phantom, f"the README documents CLI flags that do not exist: {phantom}"


def test_flags_named_in_the_prose_exist() -> None:
    parsers = _parsers()
    known = {
        option
        for make in parsers.values()
        for parser in [make(), *_subparsers(make())]
        for action in parser._actions
        for option in action.option_strings
    }
    other_tools = {"--no-deps", "--go_opt", "--go-grpc_opt"}  # pip's, protoc's
    named = {FLAG.findall(span)[0] for span in readme.inline_code() if span.startswith("--")}
    assert not sorted(named - known - other_tools)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every subcommand's parser, nested ones (`speakers enroll`) included."""
    found = [
        sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for sub in action.choices.values()
    ]
    return [deeper for sub in found for deeper in [sub, *_subparsers(sub)]]


def test_serve_ports_in_the_readme_follow_its_defaults() -> None:
    args = cli_parser().parse_args(["serve"])
    text = (ROOT / "README.md").read_text()
    base, metrics = args.base_port, args.metrics_base_port
    assert f"| `--base-port` | `{base}` |" in text
    assert f"| `--metrics-base-port` | `{metrics}` |" in text
    serve = text[text.index("## Using whospoke") : text.index("Then, in another terminal")]
    for port in (base, base + 1, base + 2, metrics, metrics + 1, metrics + 2):
        assert str(port) in serve
    metrics_section = text[text.index("## Metrics") : text.index("| metric | type")]
    assert all(f"127.0.0.1:{metrics + i}/metrics" in metrics_section for i in range(3))


def test_exit_code_table_matches_the_cli() -> None:
    from whospoke.cli import errors

    text = (ROOT / "README.md").read_text()
    table = text[text.index("### Exit codes") : text.index("### The contract")]
    codes = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    cli = {errors.OK, errors.SERVER_ERROR, errors.USAGE, errors.PARTIAL, errors.INTERRUPTED}
    assert codes == cli == {0, 1, 2, 3, 130}


def test_go_command_agrees_with_every_go_package() -> None:
    """One Go package for all protos; the README's protoc options must not split it."""
    protos = sorted((ROOT / "protos" / "whospoke" / "v1").glob("*.proto"))
    packages = {p.name: re.search(r'option go_package = "([^"]+)";', p.read_text()) for p in protos}
    assert all(packages.values()), f"every proto needs a go_package: {packages}"
    values = {m.group(1) for m in packages.values() if m}
    assert len(values) == 1, values
    (go_package,) = values
    import_path = go_package.split(";")[0]
    text = (ROOT / "README.md").read_text()
    assert f"`{go_package}`" in text
    go = [
        argv
        for b in readme.blocks()
        for argv in b.commands
        if readme.program(argv) == "protoc" and any(a.startswith("--go_out") for a in argv)
    ]
    assert len(go) == 1
    for plugin in ("go", "go-grpc"):
        options = [a.split("=", 1)[1] for a in go[0] if a.startswith(f"--{plugin}_opt=")]
        modules = [o.removeprefix("module=") for o in options if o.startswith("module=")]
        assert all(import_path.startswith(m + "/") for m in modules), (plugin, modules)
        mapped = {o[1:].split("=")[0]: o.split("=", 1)[1] for o in options if o.startswith("M")}
        assert not mapped or (
            set(mapped) == {f"whospoke/v1/{p.name}" for p in protos}
            and len(set(mapped.values())) == 1
        ), f"--{plugin}_opt M mappings split the package: {mapped}"
        assert options, f"--{plugin}_opt missing: say where the files go"
