"""Fixtures of the HTTP API tests: one real Flask app over the real demo models, built once.

The app serves a copy of the demo models plus two faulty ones:
- `broken`: bow-spanish with its checkpoint cut short, so it fails to load (503 / readyz);
- `lstm-bad-padding`: lstm-multilingual whose manifest pads with an id outside its embedding
  table. It loads (its smoke sentence needs no padding) but an empty sentence, padded with
  that id, makes TensorFlow fail at request time: a real inference error, no mock.

`make_app(**overrides)` builds more apps with other settings (limits, logging) around the
same loaded registry, so they cost no model loading.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sentserve.api.app import create_app
from sentserve.engine.registry import ModelRegistry
from sentserve.logs import configure_logging
from sentserve.settings import Settings
from tests.api.contract import BAD_PADDING, BROKEN


@pytest.fixture(scope="session")
def api_models_dir(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api-models") / "models"
    shutil.copytree(demo_dir, root)
    broken = root / BROKEN
    shutil.copytree(demo_dir / "bow-spanish", broken)
    checkpoint = broken / "tensorflow_model"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    bad = root / BAD_PADDING
    shutil.copytree(demo_dir / "lstm-multilingual", bad)
    with (bad / "sentserve.yaml").open("a", encoding="utf-8") as manifest:
        manifest.write("pad_id: 1000000000\n")
    return root


@pytest.fixture(scope="session")
def api_settings(
    make_settings: Callable[..., Settings], api_models_dir: Path
) -> Callable[..., Settings]:
    """Settings from test_env over the API models, with OOV mapping and no warm-up."""

    def settings(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "models_dir": api_models_dir,
            "warmup_batches": 0,
            "oov_token": "OOV",
        }
        return make_settings(**{**values, **overrides})

    return settings


@pytest.fixture(scope="session")
def app(api_settings: Callable[..., Settings]) -> Iterator[Flask]:
    app = create_app(api_settings())
    yield app
    registry_of(app).close()


@pytest.fixture(scope="session")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def registry(app: Flask) -> ModelRegistry:
    return registry_of(app)


@pytest.fixture(scope="session")
def make_app(
    api_settings: Callable[..., Settings], app: Flask, registry: ModelRegistry
) -> Iterator[Callable[..., Flask]]:
    """Another app with other settings over the already loaded models. create_app sets up
    the process-wide `sentserve` logger, so the session app's logging is restored after."""

    def make(**overrides: Any) -> Flask:
        return create_app(api_settings(**overrides), registry=registry)

    yield make
    restore_logging(app)


def registry_of(app: Flask) -> ModelRegistry:
    registry: ModelRegistry = app.extensions["sentserve"].registry
    return registry


def restore_logging(app: Flask) -> None:
    configure_logging(app.extensions["sentserve"].settings)
