"""The one settings object: environment variables, an optional env file, profile defaults.

Every variable is `SENTSERVE_<NAME>`; the classic server's unprefixed names (`MODELS_BASE_DIR`,
`MODEL_NAMES`, `OOV_TOKEN`, `LOG_FILE`, `LOG_LEVEL`, `CONSOLE_LOG`, `FLASK_ENV`) still work so
its users can migrate without editing their env files. No other module reads `os.environ`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Profile = Literal["development", "testing", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
CLASSIC_MODEL_FILES = (
    "tensorflow_model",
    "net_config.json",
    "tensorflow_model.meta",
    "word_mapping.json",
)

# What each profile sets when the variable itself is not given.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "development": {"log_level": "DEBUG", "console_log": True, "log_format": "text", "debug": True},
    "testing": {"log_level": "DEBUG", "console_log": False, "log_format": "text", "debug": False},
    "production": {"log_level": "INFO", "console_log": True, "log_format": "json", "debug": False},
}


def _env(name: str, *classic: str) -> AliasChoices:
    """Accept `SENTSERVE_<NAME>` and, for migrating users, the classic unprefixed names."""
    return AliasChoices(f"SENTSERVE_{name}", *classic)


CommaList = Annotated[list[str], NoDecode]


class SettingsError(Exception):
    """A setting has a value sentserve cannot start with; the message is one line per problem."""


class Settings(BaseSettings):
    """Everything an operator can set. Field docs are the one-line comments of the `env` file."""

    model_config = SettingsConfigDict(
        env_prefix="SENTSERVE_", extra="ignore", populate_by_name=True, validate_default=True
    )

    # Profile and logging. None means "the profile decides".
    profile: Profile = Field("production", validation_alias=_env("PROFILE", "FLASK_ENV"))
    log_level: LogLevel | None = Field(None, validation_alias=_env("LOG_LEVEL", "LOG_LEVEL"))
    log_file: Path | None = Field(None, validation_alias=_env("LOG_FILE", "LOG_FILE"))
    console_log: bool | None = Field(None, validation_alias=_env("CONSOLE_LOG", "CONSOLE_LOG"))
    log_format: Literal["text", "json"] | None = Field(None, validation_alias=_env("LOG_FORMAT"))
    log_max_bytes: int = Field(10_000_000, ge=1, validation_alias=_env("LOG_MAX_BYTES"))
    log_backups: int = Field(5, ge=0, validation_alias=_env("LOG_BACKUPS"))
    debug: bool | None = Field(None, validation_alias=_env("DEBUG"))

    # Models.
    models_dir: Path = Field(Path("models"), validation_alias=_env("MODELS_DIR", "MODELS_BASE_DIR"))
    model_names: CommaList = Field([], validation_alias=_env("MODEL_NAMES", "MODEL_NAMES"))
    model_files: CommaList = Field(
        list(CLASSIC_MODEL_FILES), validation_alias=_env("MODEL_FILES", "MODEL_FILES")
    )
    oov_token: str | None = Field(None, validation_alias=_env("OOV_TOKEN", "OOV_TOKEN"))
    ready_when: Literal["all", "any"] = Field("all", validation_alias=_env("READY_WHEN"))
    warmup_batches: int = Field(3, ge=0, validation_alias=_env("WARMUP_BATCHES"))

    # Request limits.
    max_sentences: int = Field(256, ge=1, validation_alias=_env("MAX_SENTENCES"))
    max_sentence_chars: int = Field(10_000, ge=1, validation_alias=_env("MAX_SENTENCE_CHARS"))
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, validation_alias=_env("MAX_BODY_BYTES"))

    # Micro-batching (per model; a manifest may override).
    max_batch_size: int = Field(64, ge=1, validation_alias=_env("MAX_BATCH_SIZE"))
    max_wait_ms: float = Field(2.0, ge=0, validation_alias=_env("MAX_WAIT_MS"))
    max_queued_sentences: int = Field(2048, ge=1, validation_alias=_env("MAX_QUEUED_SENTENCES"))

    # HTTP server.
    host: str = Field("127.0.0.1", validation_alias=_env("HOST"))
    port: int = Field(5000, ge=1, le=65535, validation_alias=_env("PORT"))
    workers: int = Field(2, ge=1, validation_alias=_env("WORKERS"))
    threads: int = Field(8, ge=1, validation_alias=_env("THREADS"))
    timeout_s: int = Field(60, ge=1, validation_alias=_env("TIMEOUT_S"))
    graceful_timeout_s: int = Field(30, ge=1, validation_alias=_env("GRACEFUL_TIMEOUT_S"))
    keepalive_s: int = Field(5, ge=0, validation_alias=_env("KEEPALIVE_S"))

    # TensorFlow threads; 0 lets sentserve pick from the core and worker counts.
    tf_intra_op_threads: int = Field(0, ge=0, validation_alias=_env("TF_INTRA_OP_THREADS"))
    tf_inter_op_threads: int = Field(0, ge=0, validation_alias=_env("TF_INTER_OP_THREADS"))

    @field_validator("model_names", "model_files", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("oov_token", "log_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("models_dir")
    @classmethod
    def _models_dir_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @model_validator(mode="after")
    def _apply_profile(self) -> Settings:
        for name, default in PROFILE_DEFAULTS[self.profile].items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        return self

    @property
    def all_models(self) -> bool:
        """`MODEL_NAMES` empty or `*` serves every model folder found."""
        return not self.model_names or self.model_names == ["*"]


def _variables(field_name: str) -> str:
    """The variable names a field is read from, for error messages."""
    alias = Settings.model_fields[field_name].validation_alias
    assert isinstance(alias, AliasChoices)
    return " or ".join(dict.fromkeys(str(choice) for choice in alias.choices))


_FIELD_OF_VARIABLE = {
    str(choice): name
    for name, field in Settings.model_fields.items()
    if isinstance(field.validation_alias, AliasChoices)
    for choice in field.validation_alias.choices
}


def _describe(error: ErrorDetails) -> str:
    located = str(error["loc"][0]) if error["loc"] else ""
    field_name = _FIELD_OF_VARIABLE.get(located, located)
    variable = _variables(field_name) if field_name in Settings.model_fields else "settings"
    message = error["msg"].removeprefix("Value error, ")
    return f"{variable}={error.get('input')!r}: {message}"


def load_settings(env_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from the environment and an env file (`--env-file`, `SENTSERVE_ENV_FILE`,
    else `.env` when present). Raises SettingsError with one line per bad variable."""
    chosen = env_file or os.environ.get("SENTSERVE_ENV_FILE")
    if chosen is not None and not Path(chosen).is_file():
        raise SettingsError(f"env file {chosen} does not exist")
    path = Path(chosen) if chosen else Path(".env")
    try:
        return Settings(_env_file=path if path.is_file() else None, **overrides)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None
