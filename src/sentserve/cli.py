"""`sentserve` (also installed as the classic `my-server-manage`).

Heavy imports (TensorFlow, Flask, prometheus_client) stay inside the commands: `--help` is
instant, and `serve` must set up multiprocess metrics before prometheus_client is imported.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from dotenv import dotenv_values

from sentserve.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from sentserve.engine.registry import ModelRegistry

F = TypeVar("F", bound=Callable[..., Any])


def env_file_option(command: F) -> F:
    return click.option(
        "--env-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Env file to read instead of .env (also SENTSERVE_ENV_FILE).",
    )(command)


def settings_from(env_file: Path | None, **overrides: Any) -> Settings:
    """Settings, or exit 2 with the one-line problem: a bad variable is never a traceback."""
    try:
        return load_settings(env_file, **{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        click.echo(f"sentserve: configuration error: {exc}", err=True)
        sys.exit(2)


def loaded_registry(settings: Settings) -> ModelRegistry:
    from sentserve.engine.registry import ModelRegistry
    from sentserve.logs import configure_logging

    configure_logging(settings)
    registry = ModelRegistry(settings)
    registry.load_all()
    return registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sentserve")
def main() -> None:
    """Serve TensorFlow sentence-embedding models over HTTP."""


@main.command()
@click.option("--host", default=None, help="Interface to bind (setting HOST).")
@click.option("--port", type=int, default=None, help="Port (setting PORT, default 5000).")
@env_file_option
def run(host: str | None, port: int | None, env_file: Path | None) -> None:
    """Flask's development server; reloader and debugger on in the development profile."""
    from werkzeug.serving import is_running_from_reloader, run_simple

    settings = settings_from(env_file, host=host, port=port)
    reloading = bool(settings.debug)
    if reloading and not is_running_from_reloader():
        # The reloader's parent only watches files and restarts the child, which serves:
        # loading TensorFlow and the models here would only double start-up and memory.
        app: Any = _never_called
    else:
        from sentserve.api.app import create_app

        app = create_app(settings)
    run_simple(
        settings.host,
        settings.port,
        app,
        use_reloader=reloading,
        use_debugger=reloading,
        threaded=True,
        reloader_type="stat",
    )


def _never_called(environ: Any, start_response: Any) -> Any:  # pragma: no cover
    raise RuntimeError("the reloader parent does not serve requests")


@main.command()
@click.option("--host", default=None, help="Interface to bind (setting HOST).")
@click.option("--port", type=int, default=None, help="Port (setting PORT).")
@click.option("--workers", type=int, default=None, help="Worker processes (setting WORKERS).")
@click.option("--threads", type=int, default=None, help="Threads per worker (setting THREADS).")
@env_file_option
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
    env_file: Path | None,
) -> None:
    """The production server: gunicorn, one model copy per worker, batching per model."""
    settings = settings_from(env_file, host=host, port=port, workers=workers, threads=threads)
    from sentserve.server import serve_forever

    serve_forever(settings)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@env_file_option
def models(as_json: bool, env_file: Path | None) -> None:
    """Load and validate every configured model; exit 1 when an enabled model failed."""
    settings = settings_from(env_file, warmup_batches=0)
    registry = loaded_registry(settings)
    rows = [model.summary() for model in registry.models.values()]
    registry.close()
    if as_json:
        click.echo(json.dumps({"models": rows}, indent=2))
    else:
        _print_table(rows)
    sys.exit(1 if any(row["status"] == "failed" for row in rows) else 0)


def _print_table(rows: list[dict[str, Any]]) -> None:
    columns = ["name", "version", "format", "status", "dimensions", "max_tokens", "error"]
    cells = [[("" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    for line in [[c.upper() for c in columns], *cells]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


@main.command()
@click.argument("model")
@click.argument("text", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Read sentences from a file, one per line.",
)
@click.option(
    "--output",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write vectors to FILE.npy or FILE.jsonl instead of stdout.",
)
@click.option("--batch-size", type=int, default=256, show_default=True)
@env_file_option
def embed(
    model: str,
    text: tuple[str, ...],
    input_file: Any,
    output_file: Path | None,
    batch_size: int,
    env_file: Path | None,
) -> None:
    """Embed TEXT arguments (or --input lines) with MODEL."""
    from sentserve.engine.errors import EngineError
    from sentserve.file_embedding import embed_in_slices, write_vectors

    sentences = list(text) + ([line.rstrip("\n") for line in input_file] if input_file else [])
    if not sentences:
        raise click.UsageError("give TEXT arguments or --input FILE")
    if output_file is not None and output_file.suffix not in {".npy", ".jsonl"}:
        raise click.UsageError("--output must end in .npy or .jsonl")
    settings = settings_from(env_file, model_names=[model], warmup_batches=0)
    registry = loaded_registry(settings)
    try:
        vectors = embed_in_slices(
            registry.ready(model), sentences, batch_size, progress=bool(input_file)
        )
    except EngineError as exc:
        click.echo(f"sentserve: {exc}", err=True)
        sys.exit(1)
    finally:
        registry.close()
    write_vectors(vectors, sentences, output_file)


@main.group()
def keys() -> None:
    """Manage API keys (hashed in the file named by SENTSERVE_API_KEYS_FILE or --file)."""


def _keys_file(file: Path | None, env_file: Path | None) -> Path:
    """Keys are managed before a server is configured (the file may not exist yet), so this
    reads the one variable it needs instead of validating every setting."""
    if file is not None:
        return file
    configured = os.environ.get("SENTSERVE_API_KEYS_FILE") or dotenv_values(
        env_file or os.environ.get("SENTSERVE_ENV_FILE") or ".env"
    ).get("SENTSERVE_API_KEYS_FILE")
    if not configured:
        raise click.UsageError("give --file or set SENTSERVE_API_KEYS_FILE")
    return Path(configured)


keys_file_option = click.option(
    "--file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keys file (default: SENTSERVE_API_KEYS_FILE).",
)


@keys.command("add")
@click.argument("name")
@click.option("--rate-limit", default=None, help="This key's own limit, e.g. 100/minute.")
@keys_file_option
@env_file_option
def keys_add(name: str, rate_limit: str | None, file: Path | None, env_file: Path | None) -> None:
    """Create a key: its hash goes to the file, the key itself is printed once."""
    from sentserve.api_keys import KeyFileError, add_key

    path = _keys_file(file, env_file)
    try:
        key = add_key(path, name, rate_limit)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(key)
    click.echo(f"key '{name}' added to {path}; it is shown only this once", err=True)


@keys.command("revoke")
@click.argument("name")
@keys_file_option
@env_file_option
def keys_revoke(name: str, file: Path | None, env_file: Path | None) -> None:
    """Remove a key; running servers stop accepting it within a second."""
    from sentserve.api_keys import revoke_key

    path = _keys_file(file, env_file)
    if not revoke_key(path, name):
        raise click.ClickException(f"no key named '{name}' in {path}")
    click.echo(f"key '{name}' revoked", err=True)


@keys.command("list")
@keys_file_option
@env_file_option
def keys_list(file: Path | None, env_file: Path | None) -> None:
    """Key names and their own rate limits (never the keys)."""
    from sentserve.api_keys import parse_keys_file

    for entry in parse_keys_file(_keys_file(file, env_file)):
        click.echo(f"{entry.name}\t{entry.rate_limit or '-'}")


@main.command()
@click.option("--template", is_flag=True, help="Print the example env file (every setting).")
@env_file_option
def config(template: bool, env_file: Path | None) -> None:
    """Print the settings in force (after env file and profile), or the env file template."""
    if template:
        from sentserve.settings import env_template

        click.echo(env_template(), nl=False)
        return
    settings = settings_from(env_file)
    click.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


@main.command("demo-models")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", type=click.Choice(["small", "large"]), default="small", show_default=True)
def demo_models(directory: Path, size: str) -> None:
    """Build the deterministic demo models (quickstart, tests, benchmarks) into DIRECTORY."""
    from sentserve.engine.demo_models import build_demo_models

    for path in build_demo_models(directory, size):  # type: ignore[arg-type]
        click.echo(str(path))
