"""The engine: models, tokenizers, batching. Knows nothing of HTTP."""
