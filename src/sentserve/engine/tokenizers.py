"""Text to token ids, with the OOV and truncation facts every answer reports.

Two kinds share one encode path and differ only in how they split text:
- `gensim`: exactly the classic server's `simple_preprocess`, so stored vectors stay comparable;
- `vocab`: vocabulary-aware (keeps one-letter words and known punctuation, optional accent folding).
"""

from __future__ import annotations

import json
import re
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sentserve.engine.errors import ModelLoadError, SentenceTooLong


@dataclass(frozen=True, slots=True)
class EncodedSentence:
    """What one sentence became. `ids[i]` is None for an unknown word dropped (no OOV token)."""

    tokens: tuple[str, ...]
    ids: tuple[int | None, ...]
    oov: tuple[bool, ...]
    truncated: bool

    @property
    def input_ids(self) -> list[int]:
        """The ids the model sees."""
        return [token_id for token_id in self.ids if token_id is not None]

    @property
    def oov_count(self) -> int:
        return sum(self.oov)


# A text's tokens, their ids (None where an unknown word is dropped) and which are unknown.
Lookup = tuple[list[str], list[int | None], list[bool]]


class Vocabulary:
    """token -> id, read from `word_mapping.json`; lookups are dict hits, never list scans."""

    def __init__(self, ids: dict[str, int], oov_token: str | None = None) -> None:
        self.ids = ids
        self.oov_token = oov_token
        self.oov_id: int | None = None
        if oov_token is not None:
            if oov_token not in ids:
                raise ModelLoadError(f"OOV token '{oov_token}' is not in word_mapping.json")
            self.oov_id = ids[oov_token]
        self.size = len(ids)
        self.max_id = max(ids.values(), default=-1)

    @staticmethod
    def read_mapping(path: Path) -> tuple[dict[str, int], list[str]]:
        """Parse and check a word mapping; returns it with warnings (ids shared by tokens)."""
        if not path.is_file():
            raise ModelLoadError(f"{path.name} not found")
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{path.name} is not valid JSON: {exc}") from None
        if not isinstance(mapping, dict) or not mapping:
            raise ModelLoadError(f"{path.name} must be a non-empty object of token -> id")
        for token, token_id in mapping.items():
            if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
                raise ModelLoadError(
                    f"{path.name}: token {token!r} has id {token_id!r}; ids must be integers >= 0"
                )
        shared = [i for i, count in Counter(mapping.values()).items() if count > 1]
        warnings = (
            [f"{path.name}: {len(shared)} ids are shared by several tokens"] if shared else []
        )
        return mapping, warnings


class Tokenizer(ABC):
    """Splits text into tokens and maps them to ids, truncating to the model's length."""

    kind: ClassVar[str]

    def __init__(self, vocabulary: Vocabulary, max_tokens: int) -> None:
        self.vocabulary = vocabulary
        self.max_tokens = max_tokens

    @abstractmethod
    def lookup(self, text: str) -> Lookup:
        """The text's tokens, their ids (None: an unknown word dropped), which are unknown."""

    def _word(self, word: str) -> tuple[str, int | None, bool]:
        token_id = self.vocabulary.ids.get(word)
        if token_id is not None:
            return word, token_id, False
        return word, self.vocabulary.oov_id, True

    def encode(
        self, text: str, truncate: bool = True, index: int = 0, max_tokens: int | None = None
    ) -> EncodedSentence:
        """Tokens and ids; longer than `max_tokens` (at most the model's) is cut or refused."""
        limit = min(max_tokens or self.max_tokens, self.max_tokens)
        tokens, ids, oov = self.lookup(text)
        fed = len(ids) - ids.count(None)
        if fed > limit:
            if not truncate:
                raise SentenceTooLong(index, fed, limit)
            cut = _past_nth_fed(ids, limit)
            tokens, ids, oov = tokens[:cut], ids[:cut], oov[:cut]
        return EncodedSentence(tuple(tokens), tuple(ids), tuple(oov), truncated=fed > limit)

    def encode_batch(
        self, texts: list[str], truncate: bool = True, max_tokens: int | None = None
    ) -> list[EncodedSentence]:
        return [self.encode(text, truncate, i, max_tokens) for i, text in enumerate(texts)]

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "vocabulary_size": self.vocabulary.size,
            "oov_token": self.vocabulary.oov_token,
            "max_tokens": self.max_tokens,
        }


class GensimTokenizer(Tokenizer):
    """The classic tokenization: lowercase alphabetic runs of 2-15 characters."""

    kind = "gensim"

    def lookup(self, text: str) -> Lookup:
        from gensim.utils import simple_preprocess  # gensim imports slowly; only load it if used

        # Comprehensions, not a call per word: this runs for every sentence of every request.
        words: list[str] = simple_preprocess(text)
        found = [self.vocabulary.ids.get(word) for word in words]
        oov = [token_id is None for token_id in found]
        oov_id = self.vocabulary.oov_id
        ids: list[int | None] = (
            found if oov_id is None else [oov_id if i is None else i for i in found]
        )
        return words, ids, oov


_TOKEN = re.compile(r"\w+|[^\w\s]")
_COMBINING = re.compile(r"[\u0300-\u036f]")


class VocabTokenizer(Tokenizer):
    """Splits on whitespace and punctuation, keeping what the vocabulary knows."""

    kind = "vocab"

    def __init__(
        self,
        vocabulary: Vocabulary,
        max_tokens: int,
        lowercase: bool = True,
        fold_accents: bool = False,
        keep_punctuation: bool = True,
    ) -> None:
        super().__init__(vocabulary, max_tokens)
        self.lowercase = lowercase
        self.fold_accents = fold_accents
        self.keep_punctuation = keep_punctuation

    def lookup(self, text: str) -> Lookup:
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        tokens: list[str] = []
        ids: list[int | None] = []
        oov: list[bool] = []
        for match in _TOKEN.finditer(text):
            token = match.group()
            if token[0].isalnum() or token[0] == "_":
                token, token_id, unknown = self._fold(token)
            elif self.keep_punctuation and token in self.vocabulary.ids:
                token_id, unknown = self.vocabulary.ids[token], False
            else:
                continue  # punctuation the vocabulary lacks, emoji: no meaning to the model
            tokens.append(token)
            ids.append(token_id)
            oov.append(unknown)
        return tokens, ids, oov

    def _fold(self, word: str) -> tuple[str, int | None, bool]:
        found = self._word(word)
        if not found[2] or not self.fold_accents:
            return found
        folded = unicodedata.normalize(
            "NFC", _COMBINING.sub("", unicodedata.normalize("NFD", word))
        )
        return self._word(folded) if folded in self.vocabulary.ids else found

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "lowercase": self.lowercase,
            "fold_accents": self.fold_accents,
            "keep_punctuation": self.keep_punctuation,
        }


def _past_nth_fed(ids: list[int | None], n: int) -> int:
    """The position just past the n-th id fed to the model (dropped words have no id)."""
    fed = 0
    for position, token_id in enumerate(ids):
        if token_id is not None:
            fed += 1
            if fed == n:
                return position + 1
    return len(ids)
