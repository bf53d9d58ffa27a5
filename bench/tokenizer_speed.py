"""Tokenizer throughput: sentserve's two tokenizer kinds against the classic list scan.

The classic server looked each word up with `vocab_list.index(word)`: a scan of a 100,000-word
list per word, and a full scan for every unknown word. sentserve's tokenizers look words up in
a dict. This measures both kinds over the large bow-spanish vocabulary on a few thousand
realistic sentences (a share of them with unknown words), single-threaded, and prints a table:

    .venv/bin/python bench/tokenizer_speed.py [--seconds 2] [--sentences 3000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

from gensim.utils import simple_preprocess

from corpus import VOCABULARY_FILE, build_models, make_sentences
from sentserve.engine.tokenizers import GensimTokenizer, VocabTokenizer, Vocabulary

MODEL = "bow-spanish"
MAX_TOKENS = 128  # no truncation: every word of every sentence is looked up
UNKNOWN_WORDS = ("zorglub", "blorpt", "quuxify")  # what real text has: typos, names, slang


@dataclass(frozen=True)
class Timing:
    name: str
    sentences: int
    tokens: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.sentences / self.seconds


def with_unknown_words(sentences: list[str], every: int = 4) -> list[str]:
    """One sentence in `every` gets a word the vocabulary lacks, so the list scan also pays its
    worst case (a full scan) as often as real traffic would make it."""
    return [
        f"{text[:-1]} {UNKNOWN_WORDS[i % len(UNKNOWN_WORDS)]}." if i % every == 0 else text
        for i, text in enumerate(sentences)
    ]


Encoder = Callable[[str], int]  # text -> number of tokens it became


def classic_encoder(mapping: dict[str, int]) -> Encoder:
    """The classic lookup: gensim's preprocessing, then `list.index` per word, in a list whose
    positions are the ids."""
    vocab_list = [""] * (max(mapping.values()) + 1)
    for word, token_id in mapping.items():
        vocab_list[token_id] = word
    oov_id = mapping["OOV"]

    def encode(text: str) -> int:
        ids = []
        for word in simple_preprocess(text):
            try:
                ids.append(vocab_list.index(word))
            except ValueError:
                ids.append(oov_id)
        return len(ids)

    return encode


def time_encoder(name: str, encode: Encoder, sentences: list[str], seconds: float) -> Timing:
    """Encode sentences one by one, cycling, until `seconds` have passed (the list scan may not
    get through one pass, which is the point)."""
    done = tokens = 0
    started = time.perf_counter()
    stop = started + seconds
    while time.perf_counter() < stop:
        tokens += encode(sentences[done % len(sentences)])
        done += 1
    return Timing(name, done, tokens, time.perf_counter() - started)


def encoders(mapping: dict[str, int]) -> dict[str, Encoder]:
    vocabulary = Vocabulary(mapping, "OOV")
    gensim = GensimTokenizer(vocabulary, MAX_TOKENS)
    vocab = VocabTokenizer(vocabulary, MAX_TOKENS, fold_accents=True)
    return {
        "sentserve GensimTokenizer (dict lookups)": lambda text: len(gensim.encode(text).ids),
        "sentserve VocabTokenizer (dict lookups, accent folding)": lambda text: len(
            vocab.encode(text).ids
        ),
        "classic: simple_preprocess + vocab_list.index(word)": classic_encoder(mapping),
    }


def table(timings: list[Timing]) -> str:
    slowest = min(t.per_second for t in timings)
    lines = [
        "| tokenizer | sentences/s | µs/sentence | tokens/sentence | vs list scan |",
        "|---|--:|--:|--:|--:|",
    ]
    for t in timings:
        lines.append(
            f"| {t.name} | {t.per_second:,.0f} | {1e6 / t.per_second:,.1f}"
            f" | {t.tokens / t.sentences:.1f} | {t.per_second / slowest:,.0f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per tokenizer")
    parser.add_argument("--sentences", type=int, default=3000)
    args = parser.parse_args()
    path = build_models() / MODEL / VOCABULARY_FILE
    mapping, _ = Vocabulary.read_mapping(path)
    sentences = with_unknown_words(make_sentences(path, args.sentences))
    timings = [
        time_encoder(name, encode, sentences, args.seconds)
        for name, encode in encoders(mapping).items()
    ]
    print(f"{len(mapping):,}-entry vocabulary ({MODEL} large), {len(sentences):,} sentences\n")
    print(table(timings))


if __name__ == "__main__":
    main()
