"""The `sentserve` / `my-server-manage` command line: models, embed, configuration errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sentserve.cli import main
from sentserve.engine.registry import ModelRegistry

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _restore_sentserve_logger():
    """The commands configure the `sentserve` logger; leave it as other tests expect it."""
    logger = logging.getLogger("sentserve")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def cli(monkeypatch, tmp_path, demo_dir, test_env_file):
    """Invoke the CLI in-process with the test env file, from an empty working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SENTSERVE_MODELS_DIR", str(demo_dir))

    def invoke(*args, env_file=test_env_file):
        options = ["--env-file", str(env_file)] if env_file else []
        return CliRunner().invoke(main, [*args, *options], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="module")
def bow_spanish(make_settings):
    registry = ModelRegistry(make_settings(model_names=["bow-spanish"]))
    registry.load_all()
    yield registry.ready("bow-spanish")
    registry.close()


def run_script(name, *args, env=None, cwd):
    executable = BIN / name
    assert executable.is_file(), f"{name} is not installed in {BIN}"
    return subprocess.run(
        [str(executable), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


# --------------------------------------------------------------------------- entry points


@pytest.mark.parametrize("name", ["sentserve", "my-server-manage"])
def test_entry_points_installed(name, tmp_path):
    result = run_script(name, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("run", "serve", "models", "embed", "demo-models"):
        assert command in result.stdout
    assert "Serve TensorFlow sentence-embedding models over HTTP." in result.stdout


def test_version(tmp_path):
    result = run_script("sentserve", "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sentserve, version {version('sentserve')}"


# --------------------------------------------------------------------------- models


def test_models_json(cli):
    result = cli("models", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["models"]
    assert sorted(row["name"] for row in rows) == [
        "bow-keras",
        "bow-spanish",
        "lstm-multilingual",
        "text-encoder",
    ]
    assert all(row["status"] == "ready" for row in rows)
    formats = {row["name"]: row["format"] for row in rows}
    assert formats["bow-spanish"] == "tf1-checkpoint-v1"
    assert formats["lstm-multilingual"] == "tf1-checkpoint-v2"


def test_models_table(cli, monkeypatch):
    monkeypatch.setenv("MODEL_NAMES", "bow-spanish")
    result = cli("models")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "VERSION",
        "FORMAT",
        "STATUS",
        "DIMENSIONS",
        "MAX_TOKENS",
        "ERROR",
    ]
    rows = {line.split()[0]: line for line in lines}
    assert rows["bow-spanish"].split() == [
        "bow-spanish",
        "1",
        "tf1-checkpoint-v1",
        "ready",
        "300",
        "20",
    ]
    assert "disabled" in rows["lstm-multilingual"].split()
    assert rows["lstm-multilingual"].endswith("not listed in MODEL_NAMES")


def test_models_exit_1_when_a_model_failed(cli, monkeypatch, tmp_path, demo_dir):
    models = tmp_path / "models"
    models.mkdir()
    (models / "bow-spanish").symlink_to(demo_dir / "bow-spanish", target_is_directory=True)
    (models / "broken").mkdir()
    monkeypatch.setenv("SENTSERVE_MODELS_DIR", str(models))
    result = cli("models", "--json")
    assert result.exit_code == 1
    rows = {row["name"]: row for row in json.loads(result.stdout)["models"]}
    assert rows["bow-spanish"]["status"] == "ready"
    assert rows["broken"]["status"] == "failed"
    assert "no saved_model.pb or tensorflow_model.meta" in rows["broken"]["error"]


def test_models_disabled_only_is_not_a_failure(cli, monkeypatch):
    monkeypatch.setenv("MODEL_NAMES", "text-encoder")
    result = cli("models", "--json")
    assert result.exit_code == 0, result.output
    statuses = {row["name"]: row["status"] for row in json.loads(result.stdout)["models"]}
    assert statuses["text-encoder"] == "ready"
    assert statuses["bow-spanish"] == "disabled"


# --------------------------------------------------------------------------- embed


def test_embed_to_npy(cli, tmp_path, bow_spanish):
    output = tmp_path / "x.npy"
    result = cli("embed", "bow-spanish", "hola mundo", "arriba abajo", "--output", str(output))
    assert result.exit_code == 0, result.output
    vectors = np.load(output)
    assert vectors.shape == (2, 300)
    assert vectors.dtype == np.float32
    expected = bow_spanish.embed(["hola mundo", "arriba abajo"]).vectors
    np.testing.assert_allclose(vectors, expected, rtol=1e-6, atol=1e-6)


def test_embed_to_jsonl(cli, tmp_path, bow_spanish):
    output = tmp_path / "x.jsonl"
    result = cli("embed", "bow-spanish", "hola mundo", "--output", str(output))
    assert result.exit_code == 0, result.output
    lines = output.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["text"] == "hola mundo"
    assert len(record["embedding"]) == 300
    expected = bow_spanish.embed(["hola mundo"]).vectors[0]
    np.testing.assert_allclose(record["embedding"], expected, rtol=1e-6, atol=1e-6)


def test_embed_input_file(cli, tmp_path):
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("hola mundo\nArriba, abajo lento lento!\nla canción\n", encoding="utf-8")
    output = tmp_path / "out.npy"
    result = cli("embed", "bow-spanish", "--input", str(sentences), "--output", str(output))
    assert result.exit_code == 0, result.output
    assert np.load(output).shape == (3, 300)


def test_embed_to_stdout(cli):
    result = cli("embed", "lstm-multilingual", "hola", "mundo")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == ["hola", "mundo"]
    assert all(len(r["embedding"]) == 64 for r in records)


def test_embed_unknown_model(cli):
    result = cli("embed", "ghost", "hola")
    assert result.exit_code == 1
    assert "sentserve: model 'ghost' is failed: not found" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bow-spanish"], "give TEXT arguments or --input FILE"),
        (["bow-spanish", "hola", "--output", "x.csv"], "--output must end in .npy or .jsonl"),
    ],
)
def test_embed_usage_errors(cli, args, message):
    result = cli("embed", *args)
    assert result.exit_code == 2
    assert message in result.stderr


# --------------------------------------------------------------------------- configuration errors


def test_bad_setting_exits_2_with_one_line(tmp_path, demo_dir):
    result = run_script(
        "sentserve",
        "models",
        cwd=tmp_path,
        env={"LOG_LEVEL": "LOUD", "SENTSERVE_MODELS_DIR": str(demo_dir)},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sentserve: configuration error: ")
    assert "LOG_LEVEL='LOUD'" in lines[0]
    assert "DEBUG" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "MODELS_BASE_DIR='models': models is not a directory"),  # none in the cwd
        ({"MODELS_BASE_DIR": "/no/such/dir"}, "MODELS_BASE_DIR='/no/such/dir'"),
        ({"FLASK_ENV": "staging"}, "FLASK_ENV='staging'"),
        ({"SENTSERVE_MAX_BATCH_SIZE": "-4"}, "SENTSERVE_MAX_BATCH_SIZE='-4'"),
    ],
)
def test_configuration_errors_in_process(cli, monkeypatch, env, expected):
    monkeypatch.delenv("SENTSERVE_MODELS_DIR")
    if "MODELS_BASE_DIR" not in env and env:
        monkeypatch.setenv("SENTSERVE_MODELS_DIR", ".")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = cli("models", env_file=None)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert expected in result.stderr


def test_missing_env_file(cli, tmp_path):
    result = cli("models", env_file=tmp_path / "nope.env")
    assert result.exit_code == 2
    assert "env file" in result.stderr and "nope.env does not exist" in result.stderr
