"""Data: corpora, tokenizers and vocabulary, a synthetic source, batching, classification.

    from minipar.data import load_corpus, LMBatches
    corpus = load_corpus(tokens="char")              # built-in corpus, 90/5/5 split
    for x, y in LMBatches(corpus.train, batch=32, seq=64, name="train"):
        ...
"""

from minipar.data.batching import ClassifierBatches, ContextBatches, LMBatches, pad_batch
from minipar.data.classify import (BUILTIN_LABELS, ClassifyData, Examples, builtin_examples,
                                   builtin_sentences, load_classify, read_tsv)
from minipar.data.corpus import BUILTIN, Corpus, builtin_text, load_corpus, read_text, split_lines
from minipar.data.synthetic import MarkovSource
from minipar.data.tokenize import BOS, EOS, SPECIALS, UNK, Vocab, normalize_text

__all__ = [
    "BOS", "BUILTIN", "BUILTIN_LABELS", "ClassifierBatches", "ClassifyData", "ContextBatches",
    "Corpus", "EOS", "Examples", "LMBatches", "MarkovSource", "SPECIALS", "UNK", "Vocab",
    "builtin_examples", "builtin_sentences", "builtin_text", "load_classify", "load_corpus",
    "normalize_text", "pad_batch", "read_tsv", "read_text", "split_lines",
]
