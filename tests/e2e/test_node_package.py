"""The Node client as its users get it, outside the repository.

`clients/node` is copied to a scratch folder, built and packed there (so nothing reaches back
into the repository's protos), and the tarball is installed into a scratch project with npm's
cache. The TypeScript blocks of README.md and clients/node/README.md marked
`<!-- readme-test: node -->` are compiled there against the installed package with the package's
tsconfig, then run, with the packaged `whospoke-process` command, against an in-process
orchestrator (fake backends): over plaintext with a bearer token, and over mutual TLS.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes import orchestrator_server, wav_bytes
from whospoke.common.config import ServerConfig

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "node"
READMES = (ROOT / "README.md", PACKAGE / "README.md")
NPM_INSTALL = ("--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error")
TOKEN = "node-client-test-token"
SECONDS = 40  # 1.28 MB: the upload goes in two 1 MiB chunks

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")), reason="needs Node.js"),
]


def run(command: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done


def readme_blocks(readme: Path) -> list[str]:
    """The TypeScript blocks marked to be compiled and run; every TypeScript block must be."""
    text = readme.read_text()
    fence = r"```(?:ts|typescript)\n"
    marked = re.findall(rf"<!-- readme-test: node -->\n{fence}(.*?)\n```", text, re.DOTALL)
    every = re.findall(rf"^{fence}", text, re.MULTILINE)
    assert len(marked) == len(every), f"{readme}: a TypeScript block is not marked node"
    return marked


@dataclass(frozen=True)
class Packed:
    tarball: Path
    files: list[str]


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Packed:
    """`npm ci` and `npm pack` in a copy of the package outside the repository."""
    copy = tmp_path_factory.mktemp("vendored") / "whospoke-client"
    ignored = shutil.ignore_patterns("node_modules", "dist", "generated", "*.tgz")
    shutil.copytree(PACKAGE, copy, ignore=ignored)
    assert not copy.is_relative_to(ROOT)
    run(["npm", "ci", *NPM_INSTALL], copy)
    done = run(["npm", "pack", "--json", "--loglevel=error"], copy)
    manifest = json.loads(done.stdout[done.stdout.index("[") :])[0]
    return Packed(copy / manifest["filename"], sorted(f["path"] for f in manifest["files"]))


@dataclass(frozen=True)
class App:
    directory: Path
    compiled: subprocess.CompletedProcess[str]
    snippets: list[Path]

    def bin(self, name: str) -> str:
        return str(self.directory / "node_modules" / ".bin" / name)


@pytest.fixture(scope="module")
def app(packed: Packed, tmp_path_factory: pytest.TempPathFactory) -> App:
    """A scratch project with the tarball installed and the READMEs' blocks compiled."""
    directory = tmp_path_factory.mktemp("app")
    (directory / "package.json").write_text('{"name": "scratch-app", "private": true}\n')
    lock = json.loads((PACKAGE / "package-lock.json").read_text())["packages"]
    # The compiler and Node's types a TypeScript user has, at the versions in npm's cache.
    tools = [f"{n}@{lock[f'node_modules/{n}']['version']}" for n in ("typescript", "@types/node")]
    run(["npm", "install", *NPM_INSTALL, str(packed.tarball), *tools], directory)
    tsconfig = json.loads((PACKAGE / "tsconfig.json").read_text())
    tsconfig["compilerOptions"].update(rootDir="src", outDir="out", declaration=False)
    (directory / "tsconfig.json").write_text(json.dumps(tsconfig))
    (directory / "src").mkdir()
    snippets: list[Path] = []
    for readme in READMES:
        for code in readme_blocks(readme):
            source = directory / "src" / f"block{len(snippets)}.ts"
            source.write_text(code + "\n")
            snippets.append(directory / "out" / f"block{len(snippets)}.js")
    command = [str(directory / "node_modules" / ".bin" / "tsc"), "-p", "."]
    compiled = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=120)
    return App(directory, compiled, snippets)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    ca = ["-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem"]
    run(["openssl", "req", "-x509", *key, *ca], d)
    for name, extension in (
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        signed = ["-CA", "ca.pem", "-CAkey", "ca.key", "-addext", extension]
        subject = ["-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem"]
        run(["openssl", "req", "-x509", *key, *signed, *subject], d)
    files = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    return {name: str(d / name) for name in files}


def orchestrator(uploads: Path, server: ServerConfig) -> AbstractAsyncContextManager[int]:
    """A real orchestrator gRPC server with fake backends; yields its port."""
    return orchestrator_server(uploads, server=server)


async def node(app: App, args: list[str], **env: str) -> tuple[int, str, str]:
    """Runs Node with only the WHOSPOKE_* variables given (none leak from the caller)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WHOSPOKE_")}
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=app.directory,
        env=clean | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "meeting.wav"
    path.write_bytes(wav_bytes(SECONDS))
    return path


def test_the_tarball_carries_the_build_protos_types_and_readme(packed: Packed) -> None:
    expected = {
        "README.md",
        "package.json",
        "dist/client.js",
        "dist/client.d.ts",
        "dist/process.js",
        *(f"protos/whospoke/v1/{p.name}" for p in (ROOT / "protos" / "whospoke" / "v1").iterdir()),
    }
    assert expected <= set(packed.files)
    assert not [f for f in packed.files if f.startswith(("src/", "node_modules/", "scripts/"))]
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert manifest["types"] == "dist/client.d.ts" and not manifest.get("private")


def test_the_build_bundles_the_repositorys_protos() -> None:
    """`make node` copied the contracts into the package (they are not committed there)."""
    bundled = PACKAGE / "protos" / "whospoke" / "v1"
    for proto in (ROOT / "protos" / "whospoke" / "v1").glob("*.proto"):
        assert (bundled / proto.name).read_bytes() == proto.read_bytes(), (
            f"{proto.name} changed: run `npm run sync-protos` in clients/node (make node does)"
        )


def test_readme_typescript_compiles_against_the_installed_package(app: App) -> None:
    assert app.compiled.returncode == 0, app.compiled.stdout + app.compiled.stderr
    assert len(app.snippets) >= 3 and all(s.exists() for s in app.snippets)


async def test_token_over_plaintext(app: App, recording: Path, tmp_path: Path) -> None:
    assert app.compiled.returncode == 0, app.compiled.stdout
    server = ServerConfig(port=0, auth_tokens=(TOKEN,))
    async with orchestrator(tmp_path / "uploads", server) as port:
        env = {"WHOSPOKE_SERVER": f"127.0.0.1:{port}", "WHOSPOKE_TOKEN": TOKEN}
        readme_main = str(app.snippets[0])
        code, out, err = await node(app, ["node", readme_main, str(recording)], **env)
        assert code == 0, err
        assert out.splitlines() == ["SPEAKER_00: one", "SPEAKER_01: two"] * SECONDS
        assert not list((tmp_path / "uploads").glob("*.json")), "the README deletes its upload"
        code, out, err = await node(app, ["node", str(app.snippets[1]), str(recording)], **env)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == f"en, {SECONDS:.1f} s"
        assert lines[1:] == ["SPEAKER_00: one", "SPEAKER_01: two"] * SECONDS

        one_step = """
        const w = require("whospoke-client");
        const client = w.connect();
        w.processFile(client, process.argv[1]).then(({ result }) => {
          console.log(result.audio_duration_seconds);
          client.close();
        });
        """
        code, out, err = await node(app, ["node", "-e", one_step, str(recording)], **env)
        assert code == 0 and float(out) == SECONDS, err
        assert not list((tmp_path / "uploads").glob("*.json")), "processFile deletes its upload"

        code, out, err = await node(app, ["node", str(app.snippets[-1])], **env)
        assert code == 0, err
        assert json.loads(out)["max_concurrent_jobs"] == 1

        cli = [app.bin("whospoke-process"), "--server", f"localhost:{port}", str(recording)]
        code, out, err = await node(app, [*cli, "--token", TOKEN])
        assert code == 0, err
        summary = json.loads(out)
        assert summary["event_kinds"][-1] == "result" and "progress" in summary["event_kinds"]
        assert summary["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
        assert not (tmp_path / "uploads" / f"{summary['upload_id']}.json").exists()

        code, _, err = await node(app, cli)
        assert code == 1 and "UNAUTHENTICATED" in err and "WHOSPOKE_TOKEN" in err
        code, _, err = await node(app, [*cli[:-1], str(tmp_path / "missing.wav")])
        assert code == 1 and err.strip().endswith("missing.wav: no such file")


async def test_mutual_tls_with_a_token(
    app: App, pki: dict[str, str], recording: Path, tmp_path: Path
) -> None:
    assert app.compiled.returncode == 0, app.compiled.stdout
    server = ServerConfig(
        port=0,
        auth_tokens=(TOKEN,),
        tls_cert=pki["server.pem"],
        tls_key=pki["server.key"],
        tls_client_ca=pki["ca.pem"],
    )
    async with orchestrator(tmp_path / "uploads", server) as port:
        cli = [app.bin("whospoke-process"), "--server", f"127.0.0.1:{port}", "--token", TOKEN]
        mtls = ["--tls-ca", pki["ca.pem"], "--tls-cert", pki["client.pem"]]
        mtls += ["--tls-key", pki["client.key"]]
        code, out, err = await node(app, [*cli, *mtls, str(recording)])
        assert code == 0, err
        assert json.loads(out)["speakers"] == ["SPEAKER_00", "SPEAKER_01"]

        env = {"WHOSPOKE_SERVER": f"localhost:{port}", "WHOSPOKE_TOKEN": TOKEN}
        env |= {"WHOSPOKE_TLS_CA": pki["ca.pem"], "WHOSPOKE_TLS_CERT": pki["client.pem"]}
        env["WHOSPOKE_TLS_KEY"] = pki["client.key"]
        code, out, err = await node(app, ["node", str(app.snippets[0]), str(recording)], **env)
        assert code == 0, err
        assert out.splitlines() == ["SPEAKER_00: one", "SPEAKER_01: two"] * SECONDS

        for refused in (
            [*cli, "--tls-ca", pki["ca.pem"], str(recording)],  # no client certificate
            [*cli, str(recording)],  # plaintext to a TLS port
        ):
            code, _, err = await node(app, refused)
            assert code == 1 and "UNAVAILABLE" in err and "--tls" in err, err


async def test_addresses_and_settings_resolve_like_the_cli(app: App, pki: dict[str, str]) -> None:
    script = """
    const c = require("whospoke-client");
    const [ca, notPem] = process.argv.slice(1);
    const r = (o) => { try { return c.resolveConnection(o); } catch (e) { return e.message; } };
    const a = (s) => { try { return c.serverAddress(s); } catch (e) { return e.message; } };
    console.log(JSON.stringify({
      addresses: ["example.org", "example.org:443", "::1", "[::1]", "unix:/run/w.sock"].map(a),
      refused: ["https://example.org", "example.org:http", "[::1", ":50060"].map(a),
      byDefault: r({ env: {} }),
      tokenOnly: r({ env: { WHOSPOKE_TOKEN: " t  " } }),
      tlsFlag: r({ env: { WHOSPOKE_TLS: "1" } }).tls,
      caImpliesTls: r({ env: { WHOSPOKE_TLS: "0", WHOSPOKE_TLS_CA: ca } }).tls,
      nameImpliesTls: r({ tlsServerName: "whospoke.internal", env: {} }).tls,
      certWithoutKey: r({ tlsCert: ca, env: {} }),
      missingCa: r({ tlsCa: ca + ".missing", env: {} }),
      notPem: r({ tlsCa: notPem, env: {} }),
      badFlag: r({ env: { WHOSPOKE_TLS: "maybe" } }),
    }));
    """
    not_pem = str(app.directory / "package.json")
    code, out, err = await node(app, ["node", "-e", script, pki["ca.pem"], not_pem])
    assert code == 0, err
    got = json.loads(out)
    assert got["addresses"] == [
        "example.org:50060",
        "example.org:443",
        "[::1]:50060",
        "[::1]:50060",
        "unix:/run/w.sock",
    ]
    assert all(m.startswith("server") for m in got["refused"]), got["refused"]
    assert "not a URL" in got["refused"][0] and "not a port" in got["refused"][1]
    assert got["byDefault"]["address"] == "127.0.0.1:50060" and not got["byDefault"]["tls"]
    assert got["tokenOnly"]["token"] == "t" and got["tokenOnly"]["tls"] is False
    assert (got["tlsFlag"], got["caImpliesTls"], got["nameImpliesTls"]) == (True, True, True)
    assert "go together" in got["certWithoutKey"]
    assert "WHOSPOKE_TLS_CA" in got["missingCa"] and "no such file" in got["missingCa"]
    assert "not a PEM file" in got["notPem"] and "not a boolean" in got["badFlag"]
