"""The one path from any dialect's request to vectors: native, classic and compatibility routes
all embed through here, so tokenization, batching, metrics and logging fields are shared."""

from __future__ import annotations

import numpy as np
from flask import g

from sentserve import metrics
from sentserve.api.state import server_state
from sentserve.engine.model import Embedding, ServedModel


def embed_sentences(
    name: str, sentences: list[str], truncate: bool = True, max_tokens: int | None = None
) -> tuple[ServedModel, Embedding]:
    """Embed with a ready model; engine errors propagate and become each dialect's error."""
    model = server_state().registry.ready(name)
    g.model, g.sentences = name, len(sentences)
    result = model.embed(sentences, truncate, max_tokens)
    _record(name, result)
    return model, result


def embed_token_ids(name: str, rows: list[list[int]]) -> np.ndarray:
    """Raw token ids (TF Serving's input tensor): no tokenizer, the same batcher and counters."""
    model = server_state().registry.ready(name)
    g.model, g.sentences = name, len(rows)
    result = model.embed_ids(rows)
    _record(name, result)
    return result.vectors


def _record(name: str, result: Embedding) -> None:
    """Metrics and timing headers for one embedding request, whatever its dialect."""
    metrics.TOKENIZE_SECONDS.labels(name).observe(result.tokenize_s)
    metrics.QUEUE_SECONDS.labels(name).observe(result.queue_s)
    metrics.SENTENCES.labels(name).inc(len(result.vectors))
    metrics.TOKENS.labels(name).inc(result.token_count)
    metrics.OOV_TOKENS.labels(name).inc(result.oov_count)
    g.timings = {
        "X-Tokenization-Time": result.tokenize_s,
        "X-Queue-Time": result.queue_s,
        "X-Inference-Time": result.inference_s,
    }
