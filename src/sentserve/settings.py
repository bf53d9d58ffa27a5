"""The one settings object: environment variables, an optional env file, profile defaults.

Every variable is `SENTSERVE_<NAME>`; the classic server's unprefixed names (`MODELS_BASE_DIR`,
`MODEL_NAMES`, `OOV_TOKEN`, `LOG_FILE`, `LOG_LEVEL`, `CONSOLE_LOG`, `FLASK_ENV`) still work so
its users can migrate without editing their env files. No other module reads `os.environ`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
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
    profile: Profile = Field(
        "production",
        validation_alias=_env("PROFILE", "FLASK_ENV"),
        description="development | testing | production: sets the logging and DEBUG defaults",
    )
    log_level: LogLevel | None = Field(
        None,
        validation_alias=_env("LOG_LEVEL", "LOG_LEVEL"),
        description="DEBUG | INFO | WARNING | ERROR | CRITICAL (profile: INFO in production)",
    )
    log_file: Path | None = Field(
        None,
        validation_alias=_env("LOG_FILE", "LOG_FILE"),
        description="also log to this file, rotated by size (default: no file)",
    )
    console_log: bool | None = Field(
        None,
        validation_alias=_env("CONSOLE_LOG", "CONSOLE_LOG"),
        description="log to stderr (profile default: true, false in testing)",
    )
    log_format: Literal["text", "json"] | None = Field(
        None,
        validation_alias=_env("LOG_FORMAT"),
        description="text | json (profile default: json in production, text otherwise)",
    )
    log_max_bytes: int = Field(
        10_000_000,
        ge=1,
        validation_alias=_env("LOG_MAX_BYTES"),
        description="rotate the log file at this size",
    )
    log_backups: int = Field(
        5, ge=0, validation_alias=_env("LOG_BACKUPS"), description="rotated log files to keep"
    )
    debug: bool | None = Field(
        None,
        validation_alias=_env("DEBUG"),
        description="debugger and reloader for `sentserve run` (profile: true in development)",
    )

    # Models.
    models_dir: Path = Field(
        Path("models"),
        validation_alias=_env("MODELS_DIR", "MODELS_BASE_DIR"),
        description="folder holding one folder per model",
    )
    model_names: CommaList = Field(
        [],
        validation_alias=_env("MODEL_NAMES", "MODEL_NAMES"),
        description="comma list of models to serve; empty or * serves every folder found",
    )
    model_files: CommaList = Field(
        list(CLASSIC_MODEL_FILES),
        validation_alias=_env("MODEL_FILES", "MODEL_FILES"),
        description="files a TF1 checkpoint model must have (the classic list)",
    )
    oov_token: str | None = Field(
        None,
        validation_alias=_env("OOV_TOKEN", "OOV_TOKEN"),
        description="vocabulary token for unknown words (e.g. OOV); unset drops unknown words",
    )
    ready_when: Literal["all", "any"] = Field(
        "all",
        validation_alias=_env("READY_WHEN"),
        description="all | any: /readyz is 200 when all enabled models are ready, or any one",
    )
    warmup_batches: int = Field(
        3,
        ge=0,
        validation_alias=_env("WARMUP_BATCHES"),
        description="batches run through each model at start, before it is ready",
    )

    # Request limits.
    max_sentences: int = Field(
        256, ge=1, validation_alias=_env("MAX_SENTENCES"), description="sentences per request"
    )
    max_sentence_chars: int = Field(
        10_000,
        ge=1,
        validation_alias=_env("MAX_SENTENCE_CHARS"),
        description="characters per sentence",
    )
    max_body_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        validation_alias=_env("MAX_BODY_BYTES"),
        description="request body size; larger bodies get 413",
    )

    # Micro-batching (per model; a manifest may override).
    max_batch_size: int = Field(
        64,
        ge=1,
        validation_alias=_env("MAX_BATCH_SIZE"),
        description="sentences per inference call (a manifest may override per model)",
    )
    max_wait_ms: float = Field(
        2.0,
        ge=0,
        validation_alias=_env("MAX_WAIT_MS"),
        description="under load, how long a batch waits for more sentences after the first",
    )
    max_queued_sentences: int = Field(
        2048,
        ge=1,
        validation_alias=_env("MAX_QUEUED_SENTENCES"),
        description="sentences queued per model before requests get 429",
    )

    # Access: API keys, rate limits, CORS. All off by default.
    api_keys_file: Path | None = Field(
        None,
        validation_alias=_env("API_KEYS_FILE"),
        description="file of `name:sha256-of-key[:rate limit]` lines; turns API keys on",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [],
        validation_alias=_env("API_KEYS"),
        description="comma list of plaintext keys for quick setups; turns API keys on",
    )
    protect_metrics: bool = Field(
        False, validation_alias=_env("PROTECT_METRICS"), description="/metrics needs a key too"
    )
    protect_docs: bool = Field(
        False,
        validation_alias=_env("PROTECT_DOCS"),
        description="the Swagger UI and document need a key too",
    )
    rate_limit: str | None = Field(
        None,
        validation_alias=_env("RATE_LIMIT"),
        description="per key (or client address) in `limits` notation, e.g. 600/minute;20/second",
    )
    rate_limit_per_sentence: bool = Field(
        False,
        validation_alias=_env("RATE_LIMIT_PER_SENTENCE"),
        description="a request costs one unit per sentence instead of one",
    )
    redis_url: SecretStr | None = Field(
        None,
        validation_alias=_env("REDIS_URL"),
        description="redis://host:port/db shares rate limits across workers and instances",
    )
    rate_limit_fail_closed: bool = Field(
        False,
        validation_alias=_env("RATE_LIMIT_FAIL_CLOSED"),
        description="when Redis is down: false serves anyway (fail open), true answers 503",
    )
    cors_origins: CommaList = Field(
        [],
        validation_alias=_env("CORS_ORIGINS"),
        description="comma list of browser origins allowed to call the API; empty: CORS off",
    )
    trusted_proxies: int = Field(
        0,
        ge=0,
        validation_alias=_env("TRUSTED_PROXIES"),
        description="reverse proxies in front (nginx: 1) whose X-Forwarded-For is trusted",
    )

    # HTTP server.
    host: str = Field(
        "127.0.0.1",
        validation_alias=_env("HOST"),
        description="interface to bind (0.0.0.0 for every interface)",
    )
    port: int = Field(
        5000, ge=1, le=65535, validation_alias=_env("PORT"), description="port to listen on"
    )
    workers: int = Field(
        2,
        ge=1,
        validation_alias=_env("WORKERS"),
        description="gunicorn worker processes for `serve`; each holds its own copy of the models",
    )
    threads: int = Field(
        16, ge=1, validation_alias=_env("THREADS"), description="request threads per worker"
    )
    timeout_s: int = Field(
        60, ge=1, validation_alias=_env("TIMEOUT_S"), description="gunicorn worker timeout"
    )
    graceful_timeout_s: int = Field(
        30,
        ge=1,
        validation_alias=_env("GRACEFUL_TIMEOUT_S"),
        description="on SIGTERM, how long to finish accepted requests",
    )
    keepalive_s: int = Field(
        5,
        ge=0,
        validation_alias=_env("KEEPALIVE_S"),
        description="seconds to keep an idle client connection open",
    )

    # TensorFlow threads; 0 lets sentserve pick from the core and worker counts.
    tf_intra_op_threads: int = Field(
        0,
        ge=0,
        validation_alias=_env("TF_INTRA_OP_THREADS"),
        description="TensorFlow threads per op; 0 = cores / workers",
    )
    tf_inter_op_threads: int = Field(
        0,
        ge=0,
        validation_alias=_env("TF_INTER_OP_THREADS"),
        description="TensorFlow ops run in parallel; 0 = 1",
    )

    @field_validator("model_names", "model_files", "cors_origins", "api_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "oov_token", "log_file", "api_keys_file", "rate_limit", "redis_url", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("models_dir")
    @classmethod
    def _models_dir_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _parse_rate_limit(cls, value: str | None) -> str | None:
        from sentserve.api_keys import valid_rate_limit

        if value is not None and not valid_rate_limit(value):
            raise ValueError("expected limits like 600/minute;20/second")
        return value

    @field_validator("api_keys_file")
    @classmethod
    def _keys_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file (create it with `sentserve keys add NAME`)")
        if value is not None:
            from sentserve.api_keys import KeyFileError, parse_keys_file

            try:
                parse_keys_file(value)
            except (OSError, KeyFileError) as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _apply_profile(self) -> Settings:
        for name, default in PROFILE_DEFAULTS[self.profile].items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        return self

    @property
    def keys_enabled(self) -> bool:
        return self.api_keys_file is not None or bool(self.api_keys)

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
    value = error.get("input")
    shown = str(value) if isinstance(value, Path) else value  # 'models', not PosixPath('models')
    return f"{variable}={shown!r}: {message}"


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


def env_template() -> str:
    """The example env file: every setting, commented out at its default, with its comment."""
    lines = [
        "# sentserve settings. Copy to .env (read at start) and uncomment what you change.",
        "# Unset logging settings take their profile's default. Classic names still work.",
    ]
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices)
        variable, *classic = dict.fromkeys(str(choice) for choice in alias.choices)
        default = field.default
        if isinstance(default, list):
            default = ",".join(default)
        elif isinstance(default, bool):
            default = str(default).lower()
        elif default is None:
            default = ""
        also = f" (classic name: {classic[0]})" if classic else ""
        lines += ["", f"# {field.description}{also}", f"# {variable}={default}"]
    return "\n".join(lines) + "\n"
