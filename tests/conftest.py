"""Fixtures shared by the whole test suite.

- `demo_dir`: the four demo models, built once per session (real TensorFlow, no mocks).
- `make_settings(**overrides)`: Settings from the suite's own env file (`test_env`).
- The developer's shell never leaks in: every sentserve variable is cleared for the session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sentserve.settings import Settings, load_settings  # noqa: E402

TEST_ENV_FILE = Path(__file__).resolve().parent.parent / "test_env"


def _settings_variables() -> set[str]:
    """Every variable name Settings reads (SENTSERVE_* and the classic aliases)."""
    names = {"SENTSERVE_ENV_FILE"}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.update(str(choice) for choice in getattr(alias, "choices", ()))
    return names


@pytest.fixture(scope="session", autouse=True)
def _clean_environment() -> Iterator[None]:
    """Clear sentserve's variables (in any case: pydantic-settings ignores case) for the run;
    tests set what they need with `monkeypatch.setenv`."""
    known = {name.upper() for name in _settings_variables()}
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper() in known or name.upper().startswith("SENTSERVE_"):
                patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def test_env_file() -> Path:
    return TEST_ENV_FILE


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bow-spanish, lstm-multilingual, text-encoder/1 and bow-keras, small size. Read-only:
    a test that breaks a model works on a copy."""
    from sentserve.engine.demo_models import build_demo_models

    root = tmp_path_factory.mktemp("demo")
    build_demo_models(root)
    return root


@pytest.fixture(scope="session")
def make_settings(request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """`make_settings(**overrides)`: load_settings with test_env; models_dir defaults to
    demo_dir (built only when a test needs it). Session-scoped so module fixtures can use it."""

    def make(**overrides: Any) -> Settings:
        if "models_dir" not in overrides:
            overrides["models_dir"] = request.getfixturevalue("demo_dir")
        return load_settings(env_file=TEST_ENV_FILE, **overrides)

    return make
