"""Which models this process serves, and their status. Usable without any web server:

registry = ModelRegistry(load_settings())
registry.load_all()
registry.ready("bow-spanish").embed(["hola mundo"])
"""

from __future__ import annotations

import logging
import os
import threading

from sentserve import metrics
from sentserve.engine.errors import ModelNotFound
from sentserve.engine.model import ModelStatus, ServedModel
from sentserve.engine.tensorflow_runtime import configure_eager_threads, default_thread_counts
from sentserve.settings import Settings

log = logging.getLogger(__name__)


class ModelRegistry:
    def __init__(self, settings: Settings, workers: int = 1) -> None:
        self.settings = settings
        auto_intra, auto_inter = default_thread_counts(os.cpu_count() or 1, workers)
        self.intra = settings.tf_intra_op_threads or auto_intra
        self.inter = settings.tf_inter_op_threads or auto_inter
        self.models: dict[str, ServedModel] = {}
        self._loader: threading.Thread | None = None
        self._discover()

    def _discover(self) -> None:
        """Every folder, or the named ones; a folder not named is listed as disabled and a
        named model with no folder as failed, never silently skipped."""
        base = self.settings.models_dir
        found = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        wanted = found if self.settings.all_models else self.settings.model_names
        for name in wanted:
            self.models[name] = ServedModel(name, base / name, self.settings)
        for name in found:
            if name not in self.models:
                model = ServedModel(name, base / name, self.settings)
                model.mark(ModelStatus.DISABLED, "not listed in MODEL_NAMES")
                self.models[name] = model

    def load_all(self, background: bool = False) -> None:
        """Load every enabled model; in the background, requests meanwhile see `loading`."""
        if background:
            self._loader = threading.Thread(target=self._load_all, name="model-loader", daemon=True)
            self._loader.start()
        else:
            self._load_all()

    def _load_all(self) -> None:
        """Load the enabled models in order; one log line per model (disabled ones too)."""
        configure_eager_threads(self.intra, self.inter)
        for model in self.models.values():
            metrics.record_model_status(model.name, model.status.value)
        for model in self.models.values():
            if model.status is not ModelStatus.DISABLED:
                model.load(self.intra, self.inter)
                metrics.record_model_status(model.name, model.status.value)
            log.info(
                "model %s: %s",
                model.name,
                model.status.value,
                extra={
                    "model": model.name,
                    "status": model.status.value,
                    "reason": model.reason,
                    "load_seconds": model.load_seconds,
                },
            )

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Wait for a background load; True once every enabled model is ready or failed."""
        if self._loader is not None:
            self._loader.join(timeout)
            return not self._loader.is_alive()
        return True

    def enabled(self) -> list[ServedModel]:
        return [m for m in self.models.values() if m.status is not ModelStatus.DISABLED]

    def get(self, name: str) -> ServedModel:
        try:
            return self.models[name]
        except KeyError:
            raise ModelNotFound(name) from None

    def ready(self, name: str) -> ServedModel:
        model = self.get(name)
        model.require_ready()
        return model

    def not_ready(self) -> list[ServedModel]:
        """Enabled models that cannot serve; readiness fails on these per READY_WHEN."""
        enabled = self.enabled()
        waiting = [m for m in enabled if m.status is not ModelStatus.READY]
        if self.settings.ready_when == "any" and len(waiting) < len(enabled):
            return []
        return waiting

    def close(self) -> None:
        """Finish queued work and release every session."""
        for model in self.models.values():
            model.close()
