"""`/api/v1/models`: list, describe, embed, compare and tokenize with any served model."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Response
from flask_restx import Namespace, Resource

from sentserve.api.encoding import json_response, unit_length
from sentserve.api.inference import embed_sentences
from sentserve.api.problems import Problem
from sentserve.api.schemas import NAME_EXAMPLE, Schemas, problem_responses
from sentserve.api.state import server_state


def add_native_routes(api: Any, s: Schemas) -> None:
    """Declare the resources with this app's schemas (their limits come from settings)."""
    ns = Namespace("models", description="Embed text with the served models")

    @ns.route("")
    class ModelList(Resource):
        @ns.response(200, "Every model found, ready or not", s.model_list)
        def get(self) -> Response:
            models = server_state().registry.models.values()
            return json_response({"models": [m.summary() for m in models]})

    @ns.route("/<string:name>")
    @ns.param("name", "Model name (its folder)", **NAME_EXAMPLE)
    class ModelDetails(Resource):
        @ns.response(200, "The model, its tokenizer and counters", s.model_details)
        @problem_responses(ns, s.problem, 404)
        def get(self, name: str) -> Response:
            return json_response(server_state().registry.get(name).details())

    @ns.route("/<string:name>/embed")
    @ns.param("name", "Model name", **NAME_EXAMPLE)
    class Embed(Resource):
        @ns.expect(s.embed_request)
        @ns.response(200, "One vector per sentence", s.embed_answer)
        @problem_responses(ns, s.problem, 400, 404, 413, 415, 422, 429, 500, 503)
        def post(self, name: str) -> Response:
            """One vector per sentence of `sentences`.

            The classic body `{"title": "..."}` is accepted too, as one sentence. (Swagger 2.0
            cannot declare "this field or that one", so only `sentences` is declared.)
            """
            server_state().registry.get(name)
            body = s.validated_body(s.embed_request, classic=_title_as_sentences)
            sentences = body["sentences"]
            model, result = embed_sentences(name, sentences, body["truncate"])
            vectors = unit_length(result.vectors) if body["normalize"] else result.vectors
            answer: dict[str, Any] = {
                "model": name,
                "version": model.version,
                "dimensions": int(vectors.shape[1]),
                "embeddings": vectors,
                "usage": {
                    "sentences": len(sentences),
                    "tokens": result.token_count,
                    "oov_tokens": result.oov_count,
                    "truncated": sum(e.truncated for e in result.encoded),
                },
            }
            if body["return_tokens"]:
                answer["tokens"] = [list(e.tokens) for e in result.encoded]
            return json_response(answer)

    @ns.route("/<string:name>/similarity")
    @ns.param("name", "Model name", **NAME_EXAMPLE)
    class Similarity(Resource):
        @ns.expect(s.similarity_request)
        @ns.response(200, "Cosine similarity of each sentence to the source", s.similarity_answer)
        @problem_responses(ns, s.problem, 400, 404, 413, 415, 422, 429, 500, 503)
        def post(self, name: str) -> Response:
            server_state().registry.get(name)
            body = s.validated_body(s.similarity_request)
            _, result = embed_sentences(name, [body["source"], *body["sentences"]])
            vectors = unit_length(result.vectors)
            scores = vectors[1:] @ vectors[0]
            return json_response({"model": name, "scores": np.clip(scores, -1.0, 1.0)})

    @ns.route("/<string:name>/tokenize")
    @ns.param("name", "Model name", **NAME_EXAMPLE)
    class Tokenize(Resource):
        @ns.expect(s.tokenize_request)
        @ns.response(200, "The tokens, ids and OOV flags of each sentence", s.tokenize_answer)
        @problem_responses(ns, s.problem, 400, 404, 413, 415, 422, 503)
        def post(self, name: str) -> Response:
            """What the model's tokenizer makes of each sentence: for vocabulary debugging."""
            model = server_state().registry.get(name)
            body = s.validated_body(s.tokenize_request)
            model.require_ready()
            if model.tokenizer is None:
                raise Problem(
                    422,
                    "not-tokenizable",
                    f"model '{name}' tokenizes inside its graph (text input)",
                )
            encoded = model.tokenizer.encode_batch(body["sentences"])
            sentences = [
                {"tokens": e.tokens, "ids": e.ids, "oov": e.oov, "truncated": e.truncated}
                for e in encoded
            ]
            return json_response({"model": name, "sentences": sentences})

    api.add_namespace(ns, path="/models")


def _title_as_sentences(body: Any) -> Any:
    """The classic `{"title": t}` is the new body with one sentence."""
    if isinstance(body, dict) and "sentences" not in body and "title" in body:
        return {**body, "sentences": [body["title"]]}
    return body
