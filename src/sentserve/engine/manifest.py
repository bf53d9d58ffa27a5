"""The optional per-model manifest, `sentserve.yaml` or `sentserve.json` beside the model.

Every key is optional and its default fits the classic bow-spanish model, so a folder copied
from the classic server serves with no manifest at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sentserve.engine.errors import ModelLoadError

CLASSIC_INPUT = "input/title:0"
CLASSIC_OUTPUT = (
    "target-embedding/title_sub_network/clickability/add_title_emb/"
    "apply_title_to_vec_func/reduced_title_emb:0"
)
CLASSIC_FEEDS = {"config/dense_dropout_keep_prob:0": 1.0, "config/title_dropout_keep_prob:0": 1.0}
MANIFEST_NAMES = ("sentserve.yaml", "sentserve.yml", "sentserve.json")


class TokenizerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["gensim", "vocab"] = "gensim"
    lowercase: bool = True
    fold_accents: bool = False
    keep_punctuation: bool = True


class BatchingSpec(BaseModel):
    """Per-model overrides of the batching settings; unset keys use the settings."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(None, ge=1)
    max_wait_ms: float | None = Field(None, ge=0)
    max_queued_sentences: int | None = Field(None, ge=1)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = CLASSIC_INPUT
    output: str = CLASSIC_OUTPUT
    # None: the classic dropout feeds, for those present in the graph.
    feeds: dict[str, float | int | bool] | None = None
    signature: str = "serving_default"
    max_tokens: int | None = Field(None, ge=1)
    pad_id: int = Field(0, ge=0)
    # Unset: the OOV_TOKEN setting; an explicit null turns OOV mapping off for this model.
    oov_token: str | None = None
    tokenizer: TokenizerSpec = TokenizerSpec()
    batching: BatchingSpec = BatchingSpec()

    def oov_token_or(self, setting: str | None) -> str | None:
        return self.oov_token if "oov_token" in self.model_fields_set else setting

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The folder's manifest, or the defaults when it has none."""
        for name in MANIFEST_NAMES:
            path = folder / name
            if path.is_file():
                return cls._parse(path)
        return cls()

    @classmethod
    def _parse(cls, path: Path) -> Manifest:
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            raise ModelLoadError(f"{path.name} cannot be read: {exc}") from None
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'manifest'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ModelLoadError(f"{path.name}: {problems}") from None
