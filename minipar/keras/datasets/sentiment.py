"""3,000 review sentences labelled positive (1) or negative (0), ready for a classifier.

    (x_train, y_train), (x_test, y_test) = keras.datasets.sentiment.load_data(num_words=1000)

The sentences (imdb.com, amazon.com and yelp.com, 1,000 each, half of them positive) ship
with minipar (``sentiment_sentences/``, with their README: UCI "Sentiment Labelled
Sentences", Kotzias et al., KDD 2015, CC BY 4.0). As ``keras.datasets.imdb.load_data`` does,
``load_data`` returns lists of word ids, not padded: pad them with
``keras.utils.pad_sequences``. The sentences are shuffled with ``seed`` and the last
``test_split`` of them are the test set; the vocabulary is counted on the training part only
(ids: 0 padding, 1 out of vocabulary, 2.. by frequency, all below ``num_words``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minipar.core.errors import ConfigError, DataError
from minipar.keras.utils import Tokenizer

HERE = Path(__file__).resolve().parent / "sentiment_sentences"
FILES = ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt")


def load_sentences() -> tuple[list[str], np.ndarray]:
    """(sentences, labels) in file order."""
    texts, labels = [], []
    for name in FILES:
        path = HERE / name
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            text, sep, label = line.rpartition("\t")
            if not sep or label.strip() not in ("0", "1"):
                raise DataError(f"{path}:{n}: expected 'sentence<TAB>0 or 1'")
            texts.append(text.strip())
            labels.append(int(label))
    return texts, np.array(labels, dtype=np.int64)


def load_data(num_words: int | None = 1000, maxlen: int | None = None, seed: int = 113,
              test_split: float = 0.2):
    """``(x_train, y_train), (x_test, y_test)``; x are arrays of lists of ids. With
    ``maxlen``, sentences longer than that are left out (as imdb.load_data does)."""
    if not 0.0 < test_split < 1.0:
        raise ConfigError(f"load_data(test_split={test_split!r}): must be in (0, 1)")
    texts, labels = load_sentences()
    order = np.random.default_rng(seed).permutation(len(texts))
    cut = int(round(len(texts) * (1.0 - test_split)))
    train, test = order[:cut], order[cut:]
    tok = Tokenizer(num_words)
    tok.fit_on_texts([texts[i] for i in train])

    def part(idx):
        seqs = tok.texts_to_sequences([texts[i] for i in idx])
        keep = [k for k, s in enumerate(seqs) if maxlen is None or len(s) <= maxlen]
        x = np.empty(len(keep), dtype=object)
        x[:] = [seqs[k] for k in keep]
        return x, labels[idx][keep]

    return part(train), part(test)


def get_word_index(num_words: int | None = None, seed: int = 113,
                   test_split: float = 0.2) -> dict[str, int]:
    """word -> id, as ``load_data`` with the same arguments assigns them."""
    texts, _ = load_sentences()
    order = np.random.default_rng(seed).permutation(len(texts))
    cut = int(round(len(texts) * (1.0 - test_split)))
    tok = Tokenizer(num_words)
    tok.fit_on_texts([texts[i] for i in order[:cut]])
    limit = num_words or len(tok.word_index) + 2
    return {w: i for w, i in tok.word_index.items() if i < limit}
