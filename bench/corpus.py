"""Shared by every benchmark script: where things live, the large demo models, and the sentences.

The sentences are built from each model's own vocabulary with a fixed seed, so the raw
in-process limit, the sentserve server and the naive baseline all embed exactly the same text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
MODELS_DIR = OUT_DIR / "models-large"
BUILT_MARKER = MODELS_DIR / ".built"
SENTSERVE = Path(sys.executable).parent / "sentserve"
VOCABULARY_FILE = "word_mapping.json"
SEED = 20240604

# Word counts drawn so sentences look like titles and short texts: 5 to 25 words.
MIN_WORDS, MAX_WORDS = 5, 25
# Zipf-like exponent over the vocabulary's frequency ranks: frequent words dominate, as in text.
ZIPF_EXPONENT = 1.0


def build_models(models_dir: Path = MODELS_DIR) -> Path:
    """Build the large demo models once (~20 s); a marker file says they are already there."""
    marker = models_dir / BUILT_MARKER.name
    if marker.is_file():
        return models_dir
    models_dir.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the large demo models into {models_dir} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [str(SENTSERVE), "demo-models", str(models_dir), "--size", "large"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    marker.touch()
    return models_dir


def vocabulary_words(vocabulary_path: Path) -> list[str]:
    """The vocabulary's real words in id order (= frequency order in the demo models): lowercase
    alphabetic tokens only, so OOV, punctuation and padding fillers are left out."""
    mapping: dict[str, int] = json.loads(vocabulary_path.read_text(encoding="utf-8"))
    ordered = sorted(mapping, key=mapping.__getitem__)
    return [word for word in ordered if word.isalpha() and word == word.lower()]


def make_sentences(vocabulary_path: Path, count: int = 200, seed: int = SEED) -> list[str]:
    """`count` varied sentences of 5-25 words drawn Zipf-like from the vocabulary, capitalised,
    with the odd comma and a final full stop: what a client would really send."""
    words = vocabulary_words(vocabulary_path)
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(words) + 1) ** ZIPF_EXPONENT
    weights /= weights.sum()
    sentences = []
    for _ in range(count):
        length = int(rng.integers(MIN_WORDS, MAX_WORDS + 1))
        picked = [words[i] for i in rng.choice(len(words), size=length, p=weights)]
        if length > 8 and rng.random() < 0.5:
            comma = int(rng.integers(2, length - 2))
            picked[comma] += ","
        sentences.append(" ".join(picked).capitalize() + ".")
    return sentences


def model_sentences(model: str, count: int = 200, models_dir: Path = MODELS_DIR) -> list[str]:
    return make_sentences(models_dir / model / VOCABULARY_FILE, count)
