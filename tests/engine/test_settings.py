"""Settings: variables, classic aliases, env files, profiles and one-line error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentserve.settings import CLASSIC_MODEL_FILES, SettingsError, load_settings


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory: no `.env` from the repository is read by accident."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def write_env(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the test env file


def test_test_env_file_gives_the_testing_profile(make_settings, models_dir):
    settings = make_settings(models_dir=models_dir)
    assert settings.profile == "testing"
    assert settings.warmup_batches == 0
    assert settings.log_level == "DEBUG"
    assert settings.console_log is False
    assert settings.debug is False


def test_defaults_without_any_variable(workdir, models_dir):
    settings = load_settings(models_dir=models_dir)
    assert settings.profile == "production"
    assert settings.log_level == "INFO"
    assert settings.log_format == "json"
    assert settings.console_log is True
    assert settings.model_files == list(CLASSIC_MODEL_FILES)
    assert settings.model_names == []
    assert settings.oov_token is None
    assert settings.log_file is None


# --------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("profile", "level", "console", "log_format"),
    [
        ("development", "DEBUG", True, "text"),
        ("testing", "DEBUG", False, "text"),
        ("production", "INFO", True, "json"),
    ],
)
def test_profile_defaults(monkeypatch, workdir, models_dir, profile, level, console, log_format):
    monkeypatch.setenv("SENTSERVE_PROFILE", profile)
    settings = load_settings(models_dir=models_dir)
    assert (settings.log_level, settings.console_log, settings.log_format) == (
        level,
        console,
        log_format,
    )
    assert settings.debug is (profile == "development")


def test_explicit_variable_beats_profile_default(monkeypatch, workdir, models_dir):
    monkeypatch.setenv("SENTSERVE_PROFILE", "development")
    monkeypatch.setenv("SENTSERVE_LOG_LEVEL", "warning")
    monkeypatch.setenv("SENTSERVE_CONSOLE_LOG", "false")
    monkeypatch.setenv("SENTSERVE_DEBUG", "false")
    settings = load_settings(models_dir=models_dir)
    assert settings.profile == "development"
    assert settings.log_level == "WARNING"
    assert settings.console_log is False
    assert settings.debug is False
    assert settings.log_format == "text"  # not given: still the profile's


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("MODEL_NAMES", "bow-spanish,lstm", "model_names", ["bow-spanish", "lstm"]),
        ("OOV_TOKEN", "OOV", "oov_token", "OOV"),
        ("LOG_FILE", "var/sentserve.log", "log_file", Path("var/sentserve.log")),
        ("LOG_LEVEL", "error", "log_level", "ERROR"),
        ("CONSOLE_LOG", "false", "console_log", False),
        ("FLASK_ENV", "development", "profile", "development"),
        ("MODEL_FILES", "a.meta,b.json", "model_files", ["a.meta", "b.json"]),
    ],
)
@pytest.mark.parametrize("prefix", ["", "SENTSERVE_"])
def test_prefixed_and_classic_names(
    monkeypatch, workdir, models_dir, prefix, variable, value, field, expected
):
    name = "SENTSERVE_PROFILE" if prefix and variable == "FLASK_ENV" else prefix + variable
    monkeypatch.setenv(name, value)
    assert getattr(load_settings(models_dir=models_dir), field) == expected


@pytest.mark.parametrize("variable", ["MODELS_BASE_DIR", "SENTSERVE_MODELS_DIR"])
def test_models_dir_from_either_name(monkeypatch, workdir, models_dir, variable):
    monkeypatch.setenv(variable, str(models_dir))
    assert load_settings().models_dir == models_dir


def test_prefixed_name_beats_classic_alias(monkeypatch, workdir, models_dir):
    monkeypatch.setenv("LOG_LEVEL", "error")
    monkeypatch.setenv("SENTSERVE_LOG_LEVEL", "warning")
    monkeypatch.setenv("FLASK_ENV", "development")
    monkeypatch.setenv("SENTSERVE_PROFILE", "testing")
    settings = load_settings(models_dir=models_dir)
    assert settings.log_level == "WARNING"
    assert settings.profile == "testing"


def test_environment_beats_env_file(monkeypatch, workdir, models_dir):
    env_file = write_env(workdir / "my.env", SENTSERVE_LOG_LEVEL="error", MODEL_NAMES="a")
    monkeypatch.setenv("SENTSERVE_LOG_LEVEL", "critical")
    settings = load_settings(env_file, models_dir=models_dir)
    assert settings.log_level == "CRITICAL"
    assert settings.model_names == ["a"]


def test_arguments_beat_environment(monkeypatch, workdir, models_dir):
    monkeypatch.setenv("SENTSERVE_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("MODELS_BASE_DIR", "/does/not/exist")
    settings = load_settings(models_dir=models_dir, max_batch_size=16)
    assert settings.max_batch_size == 16
    assert settings.models_dir == models_dir


# --------------------------------------------------------------------------- env files


def test_env_file_argument(workdir, models_dir):
    env_file = write_env(
        workdir / "custom.env",
        FLASK_ENV="development",
        MODELS_BASE_DIR=str(models_dir),
        OOV_TOKEN="OOV",
    )
    settings = load_settings(env_file)
    assert settings.profile == "development"
    assert settings.models_dir == models_dir
    assert settings.oov_token == "OOV"


def test_env_file_from_sentserve_env_file(monkeypatch, workdir, models_dir):
    env_file = write_env(workdir / "chosen.env", SENTSERVE_MAX_SENTENCES="7")
    monkeypatch.setenv("SENTSERVE_ENV_FILE", str(env_file))
    assert load_settings(models_dir=models_dir).max_sentences == 7


def test_env_file_argument_beats_sentserve_env_file(monkeypatch, workdir, models_dir):
    chosen = write_env(workdir / "chosen.env", SENTSERVE_MAX_SENTENCES="7")
    other = write_env(workdir / "other.env", SENTSERVE_MAX_SENTENCES="9")
    monkeypatch.setenv("SENTSERVE_ENV_FILE", str(other))
    assert load_settings(chosen, models_dir=models_dir).max_sentences == 7


def test_dot_env_read_when_present(workdir, models_dir):
    write_env(workdir / ".env", LOG_LEVEL="error", MODELS_BASE_DIR=str(models_dir))
    settings = load_settings()
    assert settings.log_level == "ERROR"
    assert settings.models_dir == models_dir


def test_dot_env_ignored_when_another_file_is_chosen(workdir, models_dir):
    write_env(workdir / ".env", SENTSERVE_MAX_SENTENCES="3")
    chosen = write_env(workdir / "chosen.env", SENTSERVE_PORT="8080")
    settings = load_settings(chosen, models_dir=models_dir)
    assert settings.port == 8080
    assert settings.max_sentences == 256


def test_no_dot_env_is_fine(workdir, models_dir):
    assert not (workdir / ".env").exists()
    assert load_settings(models_dir=models_dir).max_sentences == 256


@pytest.mark.parametrize("via_variable", [False, True])
def test_missing_env_file_is_an_error(monkeypatch, workdir, models_dir, via_variable):
    missing = workdir / "nope.env"
    if via_variable:
        monkeypatch.setenv("SENTSERVE_ENV_FILE", str(missing))
    with pytest.raises(SettingsError, match="nope.env does not exist"):
        load_settings(None if via_variable else missing, models_dir=models_dir)


# --------------------------------------------------------------------------- lists


@pytest.mark.parametrize(
    ("value", "names", "all_models"),
    [
        ("", [], True),
        ("*", ["*"], True),
        (" * ", ["*"], True),
        ("bow-spanish", ["bow-spanish"], False),
        (" bow-spanish , ,lstm-multilingual,", ["bow-spanish", "lstm-multilingual"], False),
    ],
)
def test_model_names(monkeypatch, workdir, models_dir, value, names, all_models):
    monkeypatch.setenv("MODEL_NAMES", value)
    settings = load_settings(models_dir=models_dir)
    assert settings.model_names == names
    assert settings.all_models is all_models


def test_model_names_as_a_list_argument(workdir, models_dir):
    settings = load_settings(models_dir=models_dir, model_names=["a", "b"])
    assert settings.model_names == ["a", "b"]
    assert not settings.all_models


def test_empty_oov_token_and_log_file_mean_unset(monkeypatch, workdir, models_dir):
    monkeypatch.setenv("OOV_TOKEN", "")
    monkeypatch.setenv("LOG_FILE", "")
    settings = load_settings(models_dir=models_dir)
    assert settings.oov_token is None
    assert settings.log_file is None


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SENTSERVE_PROFILE", "staging", ["SENTSERVE_PROFILE", "'staging'", "production"]),
        ("FLASK_ENV", "staging", ["FLASK_ENV", "'staging'", "testing"]),
        ("LOG_LEVEL", "LOUD", ["LOG_LEVEL", "LOUD", "DEBUG"]),
        ("SENTSERVE_LOG_LEVEL", "loud", ["SENTSERVE_LOG_LEVEL", "LOUD", "CRITICAL"]),
        ("MODELS_BASE_DIR", "/no/such/dir", ["MODELS_BASE_DIR", "/no/such/dir", "not a directory"]),
        ("SENTSERVE_MAX_SENTENCES", "-1", ["SENTSERVE_MAX_SENTENCES", "-1", "greater than"]),
        ("SENTSERVE_MAX_WAIT_MS", "-0.5", ["SENTSERVE_MAX_WAIT_MS", "greater than or equal to 0"]),
        ("SENTSERVE_PORT", "70000", ["SENTSERVE_PORT", "70000"]),
        ("CONSOLE_LOG", "maybe", ["CONSOLE_LOG", "maybe", "boolean"]),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(
    monkeypatch, workdir, models_dir, variable, value, expected
):
    monkeypatch.setenv(variable, value)
    if variable != "MODELS_BASE_DIR":
        monkeypatch.setenv("MODELS_BASE_DIR", str(models_dir))
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    for part in expected:
        assert part in message
    assert raised.value.__cause__ is None  # no pydantic internals chained for a traceback


def test_default_models_dir_missing(workdir):
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message == (
        "SENTSERVE_MODELS_DIR or MODELS_BASE_DIR='models': models is not a directory"
    )


def test_several_bad_values_are_all_named(monkeypatch, workdir, models_dir):
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    monkeypatch.setenv("SENTSERVE_MAX_BATCH_SIZE", "0")
    with pytest.raises(SettingsError) as raised:
        load_settings(models_dir=models_dir)
    message = str(raised.value)
    assert "\n" not in message
    assert "LOG_LEVEL='LOUD'" in message
    assert "SENTSERVE_MAX_BATCH_SIZE='0'" in message


def test_bad_argument_names_its_variable(workdir, models_dir):
    with pytest.raises(SettingsError, match=r"^SENTSERVE_MAX_BATCH_SIZE=-1: .*greater than"):
        load_settings(models_dir=models_dir, max_batch_size=-1)
