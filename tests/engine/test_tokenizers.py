"""Tokenizers, built directly on small vocabularies: splitting, OOV, truncation, odd input."""

from __future__ import annotations

import json

import pytest

from sentserve.engine.errors import ModelLoadError, SentenceTooLong
from sentserve.engine.tokenizers import GensimTokenizer, VocabTokenizer, Vocabulary

SPANISH = {
    "OOV": 1,
    ",": 2,
    "!": 3,
    "¿": 4,
    "?": 5,
    "arriba": 10,
    "abajo": 11,
    "lento": 12,
    "y": 13,
    "a": 14,
    "o": 15,
    "canción": 16,
    "hola": 17,
    "mundo": 18,
    "cancion": 19,
    "esta": 20,
    "Hola": 21,
}


def vocab(oov_token=None, ids=None):
    return Vocabulary(dict(SPANISH if ids is None else ids), oov_token)


def gensim(max_tokens=20, **kwargs):
    return GensimTokenizer(vocab(**kwargs), max_tokens)


def vocab_tokenizer(max_tokens=20, oov_token=None, ids=None, **options):
    return VocabTokenizer(vocab(oov_token, ids), max_tokens, **options)


# --------------------------------------------------------------------------- gensim


def test_gensim_classic_example():
    encoded = gensim().encode("Arriba, abajo lento lento!")
    assert list(encoded.tokens) == ["arriba", "abajo", "lento", "lento"]
    assert encoded.input_ids == [10, 11, 12, 12]
    assert encoded.oov_count == 0
    assert not encoded.truncated


def test_gensim_drops_punctuation_and_one_letter_words_even_when_known():
    encoded = gensim().encode("hola , y a o ! mundo")
    assert list(encoded.tokens) == ["hola", "mundo"]
    assert encoded.input_ids == [17, 18]


def test_gensim_lowercases_and_keeps_accents():
    encoded = gensim().encode("HOLA Canción")
    assert list(encoded.tokens) == ["hola", "canción"]
    assert encoded.input_ids == [17, 16]


def test_gensim_drops_words_longer_than_15():
    encoded = gensim().encode("hola " + "x" * 16 + " mundo")
    assert list(encoded.tokens) == ["hola", "mundo"]


def test_gensim_kind_and_description():
    tokenizer = gensim(max_tokens=7, oov_token="OOV")
    assert tokenizer.kind == "gensim"
    assert tokenizer.describe() == {
        "kind": "gensim",
        "vocabulary_size": len(SPANISH),
        "oov_token": "OOV",
        "max_tokens": 7,
    }


# --------------------------------------------------------------------------- vocab kind


def test_vocab_keeps_known_punctuation_only():
    ids = {**SPANISH}
    del ids["?"]
    encoded = vocab_tokenizer(ids=ids).encode("¿hola, mundo?")
    assert list(encoded.tokens) == ["¿", "hola", ",", "mundo"]
    assert encoded.input_ids == [4, 17, 2, 18]
    assert encoded.oov_count == 0  # unknown punctuation is dropped, not counted as OOV


def test_vocab_keep_punctuation_off():
    encoded = vocab_tokenizer(keep_punctuation=False).encode("¿hola, mundo?")
    assert list(encoded.tokens) == ["hola", "mundo"]


def test_vocab_keeps_one_letter_words():
    encoded = vocab_tokenizer().encode("arriba y abajo, a o lento")
    assert list(encoded.tokens) == ["arriba", "y", "abajo", ",", "a", "o", "lento"]
    assert encoded.input_ids == [10, 13, 11, 2, 14, 15, 12]


def test_vocab_normalises_to_nfc():
    tokenizer = vocab_tokenizer()
    decomposed = tokenizer.encode("cancio\u0301n")
    composed = tokenizer.encode("canción")
    assert decomposed == composed
    assert decomposed.input_ids == [16]
    assert decomposed.tokens == ("canción",)


@pytest.mark.parametrize(
    ("lowercase", "expected"),
    [(True, [17, 18]), (False, [21, 18])],
)
def test_vocab_lowercase_on_and_off(lowercase, expected):
    encoded = vocab_tokenizer(lowercase=lowercase).encode("Hola mundo")
    assert encoded.input_ids == expected


def test_vocab_lowercase_off_misses_capitalised_unknowns():
    encoded = vocab_tokenizer(lowercase=False, oov_token="OOV").encode("MUNDO")
    assert encoded.input_ids == [1]
    assert encoded.oov == (True,)


def test_fold_accents_only_when_the_accented_form_is_missing():
    tokenizer = vocab_tokenizer(fold_accents=True)
    # "canción" is known as such: not folded to "cancion" (id 19).
    assert tokenizer.encode("canción").input_ids == [16]
    # "está" is not known, "esta" is: folded.
    folded = tokenizer.encode("está")
    assert folded.input_ids == [20]
    assert folded.tokens == ("esta",)
    assert folded.oov_count == 0


def test_fold_accents_off_leaves_unknown_accented_words_unknown():
    encoded = vocab_tokenizer(fold_accents=False, oov_token="OOV").encode("está")
    assert encoded.input_ids == [1]
    assert encoded.oov_count == 1


def test_fold_accents_when_folded_form_is_also_unknown():
    encoded = vocab_tokenizer(fold_accents=True).encode("pingüino")
    assert encoded.tokens == ("pingüino",)
    assert encoded.ids == (None,)
    assert encoded.oov_count == 1


def test_vocab_description():
    tokenizer = vocab_tokenizer(max_tokens=9, fold_accents=True)
    assert tokenizer.describe() == {
        "kind": "vocab",
        "vocabulary_size": len(SPANISH),
        "oov_token": None,
        "max_tokens": 9,
        "lowercase": True,
        "fold_accents": True,
        "keep_punctuation": True,
    }


# --------------------------------------------------------------------------- OOV


@pytest.mark.parametrize("make", [gensim, vocab_tokenizer])
def test_unknown_words_without_oov_token_are_dropped(make):
    encoded = make().encode("hola zzqx mundo blorf")
    assert encoded.tokens == ("hola", "zzqx", "mundo", "blorf")
    assert encoded.ids == (17, None, 18, None)
    assert encoded.oov == (False, True, False, True)
    assert encoded.input_ids == [17, 18]
    assert encoded.oov_count == 2


@pytest.mark.parametrize("make", [gensim, vocab_tokenizer])
def test_unknown_words_with_oov_token_map_to_its_id(make):
    encoded = make(oov_token="OOV").encode("hola zzqx mundo blorf")
    assert encoded.ids == (17, 1, 18, 1)
    assert encoded.input_ids == [17, 1, 18, 1]
    assert encoded.oov_count == 2


def test_oov_token_missing_from_vocabulary():
    with pytest.raises(ModelLoadError, match="OOV token 'UNK' is not in word_mapping.json"):
        Vocabulary({"hola": 1}, "UNK")


# --------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("make", [gensim, vocab_tokenizer])
def test_truncation_on(make):
    encoded = make(max_tokens=3).encode("hola mundo arriba abajo lento")
    assert encoded.truncated
    assert len(encoded.input_ids) == 3
    assert encoded.input_ids == [17, 18, 10]
    assert encoded.tokens == ("hola", "mundo", "arriba")


@pytest.mark.parametrize("make", [gensim, vocab_tokenizer])
def test_truncation_off_raises_with_index_and_limit(make):
    tokenizer = make(max_tokens=3)
    with pytest.raises(SentenceTooLong) as raised:
        tokenizer.encode_batch(["hola", "hola mundo arriba abajo lento"], truncate=False)
    assert raised.value.index == 1
    assert raised.value.limit == 3
    assert raised.value.tokens == 5
    assert "sentence 1 has 5 tokens" in str(raised.value)


def test_exactly_max_tokens_is_not_truncated():
    encoded = gensim(max_tokens=3).encode("hola mundo arriba", truncate=False)
    assert not encoded.truncated
    assert encoded.input_ids == [17, 18, 10]


def test_dropped_words_do_not_count_towards_the_limit():
    encoded = gensim(max_tokens=2).encode("zzqx hola blorf mundo", truncate=False)
    assert not encoded.truncated
    assert encoded.input_ids == [17, 18]
    assert encoded.oov_count == 2


def test_oov_ids_count_towards_the_limit():
    encoded = gensim(max_tokens=2, oov_token="OOV").encode("zzqx hola blorf mundo")
    assert encoded.truncated
    assert encoded.input_ids == [1, 17]


def test_encode_batch_keeps_order():
    encoded = gensim().encode_batch(["hola", "mundo", "arriba abajo"])
    assert [e.input_ids for e in encoded] == [[17], [18], [10, 11]]


# --------------------------------------------------------------------------- odd input


@pytest.mark.parametrize("make", [gensim, vocab_tokenizer])
@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_input(make, text):
    encoded = make(oov_token="OOV").encode(text)
    assert encoded.tokens == ()
    assert encoded.input_ids == []
    assert encoded.oov_count == 0
    assert not encoded.truncated


@pytest.mark.parametrize("make", [gensim, vocab_tokenizer])
def test_emoji_are_dropped(make):
    encoded = make(oov_token="OOV").encode("hola 😀 mundo 👍🏽🎉")
    assert encoded.input_ids == [17, 18]
    assert encoded.oov_count == 0


@pytest.mark.parametrize("make", [gensim, vocab_tokenizer])
def test_ten_thousand_characters(make):
    text = ("hola mundo " * 1000)[:10_000]
    assert len(text) == 10_000
    encoded = make(max_tokens=128).encode(text)
    assert encoded.truncated
    assert len(encoded.input_ids) == 128
    assert encoded.input_ids[:4] == [17, 18, 17, 18]
    with pytest.raises(SentenceTooLong) as raised:
        make(max_tokens=128).encode(text, truncate=False)
    assert raised.value.tokens == 1818  # 909 whole pairs; the trailing "h" is unknown: dropped


def test_one_ten_thousand_character_word():
    word = "x" * 10_000
    assert gensim(oov_token="OOV").encode(word).tokens == ()  # longer than gensim's 15
    encoded = vocab_tokenizer(oov_token="OOV").encode(word)
    assert encoded.input_ids == [1]
    assert encoded.oov_count == 1


def test_large_vocabulary_lookups():
    ids = {f"w{i}": i for i in range(1, 200_001)}
    tokenizer = VocabTokenizer(Vocabulary(ids), max_tokens=10)
    assert tokenizer.vocabulary.size == 200_000
    assert tokenizer.vocabulary.max_id == 200_000
    assert isinstance(tokenizer.vocabulary.ids, dict)
    encoded = tokenizer.encode("w200000 w1 w123456 nope")
    assert encoded.ids == (200_000, 1, 123_456, None)


# --------------------------------------------------------------------------- word_mapping.json


def write_mapping(tmp_path, data):
    path = tmp_path / "word_mapping.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_read_mapping(tmp_path):
    path = write_mapping(tmp_path, {"hola": 1, "mundo": 2, "OOV": 3, " ": 4})
    mapping, warnings = Vocabulary.read_mapping(path)
    assert mapping == {"hola": 1, "mundo": 2, "OOV": 3, " ": 4}
    assert warnings == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([["hola", 1]], "must be a non-empty object of token -> id"),
        ({}, "must be a non-empty object of token -> id"),
        ('"hola"', "must be a non-empty object"),
        ({"hola": -1}, "token 'hola' has id -1; ids must be integers >= 0"),
        ({"hola": 1, "mundo": "2"}, "token 'mundo' has id '2'"),
        ({"hola": 1.5}, "token 'hola' has id 1.5"),
        ({"hola": True}, "token 'hola' has id True"),
        ({"hola": None}, "token 'hola' has id None"),
        ("{not json", "word_mapping.json is not valid JSON"),
    ],
)
def test_read_mapping_rejects(tmp_path, data, message):
    path = write_mapping(tmp_path, data)
    with pytest.raises(ModelLoadError) as raised:
        Vocabulary.read_mapping(path)
    assert message in str(raised.value)
    assert str(raised.value).startswith("word_mapping.json")


def test_read_mapping_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="word_mapping.json not found"):
        Vocabulary.read_mapping(tmp_path / "word_mapping.json")


def test_read_mapping_rejects_bad_encoding(tmp_path):
    path = tmp_path / "word_mapping.json"
    path.write_bytes(b'{"canci\xf3n": 1}')  # latin-1, not UTF-8
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        Vocabulary.read_mapping(path)


def test_read_mapping_warns_on_shared_ids(tmp_path):
    path = write_mapping(tmp_path, {"hola": 1, "Hola": 1, "mundo": 2, "Mundo": 2, "y": 3})
    mapping, warnings = Vocabulary.read_mapping(path)
    assert len(mapping) == 5
    assert warnings == ["word_mapping.json: 2 ids are shared by several tokens"]
