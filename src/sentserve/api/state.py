"""What the request handlers share: the settings and the model registry, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from sentserve.engine.registry import ModelRegistry
from sentserve.settings import Settings

EXTENSION = "sentserve"


@dataclass(frozen=True)
class ServerState:
    settings: Settings
    registry: ModelRegistry


def server_state() -> ServerState:
    state: ServerState = current_app.extensions[EXTENSION]
    return state
