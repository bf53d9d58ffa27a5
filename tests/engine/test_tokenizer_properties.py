"""Properties of both tokenizers over arbitrary Unicode: no input makes them raise, every id
they emit is in the vocabulary, and truncation never exceeds the limit."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentserve.engine.errors import SentenceTooLong
from sentserve.engine.tokenizers import GensimTokenizer, Tokenizer, VocabTokenizer, Vocabulary

WORDS = ["hola", "mundo", "canción", "cancion", "y", "a", "el", "niño", "ß", "東京", "x1"]
MAPPING = {"OOV": 1, ".": 2, ",": 3, "¿": 4, "?": 5, **{w: i for i, w in enumerate(WORDS, 10)}}
LIMIT = 7


def tokenizers() -> list[Tokenizer]:
    found: list[Tokenizer] = []
    for oov in ("OOV", None):
        vocabulary = Vocabulary(MAPPING, oov)
        found.append(GensimTokenizer(vocabulary, LIMIT))
        for fold in (True, False):
            found.append(VocabTokenizer(vocabulary, LIMIT, lowercase=fold, fold_accents=fold))
    return found


TOKENIZERS = tokenizers()
# Text that mixes known words, punctuation and any Unicode, so lookups hit and miss.
TEXT = st.lists(
    st.one_of(st.sampled_from([*WORDS, ".", "¿", " ", "OOV"]), st.text()), max_size=30
).map(" ".join)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(text=TEXT)
def test_never_raises_and_every_id_is_in_the_vocabulary(text: str) -> None:
    ids = set(MAPPING.values())
    for tokenizer in TOKENIZERS:
        encoded = tokenizer.encode(text)
        assert set(encoded.input_ids) <= ids
        assert len(encoded.tokens) == len(encoded.ids) == len(encoded.oov)


@PROPERTY
@given(text=TEXT, limit=st.integers(min_value=1, max_value=LIMIT))
def test_truncation_never_exceeds_the_limit(text: str, limit: int) -> None:
    for tokenizer in TOKENIZERS:
        encoded = tokenizer.encode(text, max_tokens=limit)
        assert len(encoded.input_ids) <= limit
        if not encoded.truncated:
            continue
        assert len(encoded.input_ids) == limit
        try:
            tokenizer.encode(text, truncate=False, max_tokens=limit)
        except SentenceTooLong as error:
            assert error.limit == limit and error.tokens > limit
        else:
            raise AssertionError("truncate=False must refuse what truncate=True cut")
