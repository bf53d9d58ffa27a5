"""schemathesis against /api/v1/swagger.json: generated requests, valid and not, never get a
5xx and every answer matches the document. Run with API keys off and on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from sentserve.api.app import create_app
from sentserve.engine.registry import ModelRegistry

KEY = "fuzz-key"


@pytest.fixture(scope="module")
def fuzz_registry(demo_dir: Path, make_settings: Any) -> Any:
    registry = ModelRegistry(make_settings(models_dir=demo_dir))
    registry.load_all()
    yield registry
    registry.close()


@pytest.fixture(scope="module", params=["keys off", "keys on"])
def fuzz_schema(
    request: pytest.FixtureRequest, fuzz_registry: ModelRegistry, make_settings: Any
) -> Any:
    keyed = request.param == "keys on"
    app = create_app(
        make_settings(max_sentences=8, max_sentence_chars=200, api_keys=KEY if keyed else ""),
        registry=fuzz_registry,
    )
    schema = schemathesis.openapi.from_wsgi("/api/v1/swagger.json", app)
    if keyed:
        schema.config.update(headers={"X-API-Key": KEY})
    return schema


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_answers_as_documented(case: Any) -> None:
    case.call_and_validate()
