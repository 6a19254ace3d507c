"""Text classification data: TSV files and the built-in word-order task.

File format: one example per line, ``label<TAB>text`` (UTF-8; blank lines skipped). Labels
are any strings; their ids follow sorted order of the training labels.

Built-in task (no download): sentences of the built-in corpus (prose paragraphs only, 5 to
40 words, ending in . ! or ?), each given twice: as written (label "original") and with its
words in a seeded random order (label "shuffled"). The two share one bag of words, so a
model that ignores word order cannot beat 50% accuracy; a sequence model can. Both versions
of a sentence go to the same split, so no bag-of-words cue leaks across splits.

Split (built-in, or one TSV file without --valid): examples (built-in: sentences) are
dealt 8 / 1 / 1 into train / valid / test, round-robin over a seeded permutation (built-in)
or over file order (TSV).

Examples are stored ragged: flat ``ids`` and ``offsets`` (example i is
ids[offsets[i]:offsets[i+1]]), plus ``labels``; ``batching.ClassifierBatches`` pads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from minipar.core.errors import ConfigError, DataError
from minipar.data.corpus import builtin_text, read_text
from minipar.data.tokenize import EOS, Vocab, normalize_text

__all__ = ["Examples", "ClassifyData", "builtin_sentences", "builtin_examples", "read_tsv",
           "load_classify", "BUILTIN_LABELS"]

BUILTIN_LABELS = ("original", "shuffled")
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=[A-Z"(])')


def builtin_sentences(min_words: int = 5, max_words: int = 40) -> list[str]:
    """Prose sentences of the built-in corpus, in corpus order (code blocks skipped)."""
    out = []
    for para in re.split(r"\n\s*\n", builtin_text()):
        if para.startswith((" ", "\t")) or ">>>" in para:
            continue  # indented blocks are code or grammar, not prose
        for s in _SENTENCE_END.split(" ".join(para.split())):
            words = s.split()
            if (min_words <= len(words) <= max_words and s[-1] in ".!?"
                    and len(set(words)) > 1):
                out.append(s)
    return out


def _shuffled(words: list[str], rng) -> list[str]:
    perm = rng.permutation(len(words))
    out = [words[i] for i in perm]
    if out == words:  # a permutation that changes nothing; rotating by one always changes
        out = words[1:] + words[:1]  # a sentence whose words are not all equal
    return out


def builtin_examples(seed: int = 0, max_sentences: int | None = None):
    """(train, valid, test) lists of (label, text) for the built-in word-order task."""
    sents = builtin_sentences()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sents))
    if max_sentences is not None:
        order = order[:max_sentences]
    splits = ([], [], [])
    for slot, i in enumerate(order):
        words = sents[i].split()
        pair = [("original", sents[i]),
                ("shuffled", " ".join(_shuffled(words, np.random.default_rng([seed, int(i)]))))]
        part = splits[{8: 1, 9: 2}.get(slot % 10, 0)]
        part.extend(pair)
    return tuple([split[j] for j in rng.permutation(len(split))] for split in splits)


def read_tsv(path, what: str = "data") -> list[tuple[str, str]]:
    """(label, text) pairs of a ``label<TAB>text`` file; one DataError per bad line."""
    out = []
    for lineno, line in enumerate(read_text(path, what).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep:
            raise DataError(f"{path}:{lineno}: expected 'label<TAB>text', found no TAB")
        if not label.strip() or not text.split():
            raise DataError(f"{path}:{lineno}: empty {'label' if not label.strip() else 'text'}")
        out.append((label.strip(), text))
    if not out:
        raise DataError(f"{path}: no examples")
    return out


@dataclass
class Examples:
    """Ragged token ids of a set of examples with their label ids."""

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.ids[self.offsets[i]:self.offsets[i + 1]], int(self.labels[i])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class ClassifyData:
    train: Examples
    valid: Examples
    test: Examples | None
    vocab: Vocab
    labels: list
    names: dict = field(default_factory=dict)


def _texts(pairs) -> str:
    """One line per example: whitespace inside a text (line breaks too) becomes one space."""
    return "\n".join(" ".join(t.split()) for _, t in pairs) + "\n"


def _encode(pairs, vocab: Vocab, label_ids: dict, name: str) -> Examples:
    ids = vocab.encode(normalize_text(_texts(pairs), vocab.lower), normalized=True)
    ends = np.flatnonzero(ids == EOS)
    if len(ends) != len(pairs):
        raise DataError(f"{name}: an example has no text left after normalisation")
    lengths = np.diff(np.concatenate([[-1], ends])) - 1
    unknown = sorted({lab for lab, _ in pairs} - set(label_ids))
    if unknown:
        raise DataError(f"{name}: label {unknown[0]!r} does not occur in the training data")
    labels = np.array([label_ids[lab] for lab, _ in pairs], dtype=np.int64)
    return Examples(ids[ids != EOS], np.concatenate([[0], np.cumsum(lengths)]), labels)


def load_classify(data=None, valid=None, test=None, tokens: str = "word", lower: bool = False,
                  min_count: int = 1, max_vocab: int | None = None, seed: int = 0,
                  max_examples: int | None = None, vocab: Vocab | None = None) -> ClassifyData:
    """Train / valid / test examples, vocabulary (from training text) and label names.

    data: a TSV path, or None / "builtin" for the built-in task (``seed`` picks the shuffles
    and the split; ``max_examples`` caps the number of sentences, or of TSV lines).
    """
    if tokens not in ("char", "word"):
        raise ConfigError(f"--tokens must be 'char' or 'word', got {tokens!r}")
    if data is None or data == "builtin":
        if valid is not None:
            raise ConfigError("--valid needs a --data TSV file")
        tr, va, te = builtin_examples(seed, max_examples)
        name = "built-in classification task"
        names = {"train": name, "valid": f"{name} (valid)", "test": f"{name} (test)"}
    else:
        name = str(data)
        pairs = read_tsv(data)[:max_examples]
        names = {"train": name}
        if valid is None:
            slot = np.arange(len(pairs)) % 10
            tr, va, te = ([pairs[i] for i in np.flatnonzero(m)]
                          for m in (slot < 8, slot == 8, slot == 9))
            names.update(valid=f"{name} (valid split)", test=f"{name} (test split)")
            if not va or not te:
                raise DataError(f"{name}: {len(pairs)} examples are too few to split (need "
                                "10); give a separate --valid file")
        else:
            tr, va = pairs, read_tsv(valid, "validation")
            te = read_tsv(test, "test") if test is not None else None
            names.update(valid=str(valid), test=str(test) if test is not None else None)
    labels = sorted({lab for lab, _ in tr})
    if len(labels) < 2:
        raise DataError(f"{name}: the training data has {len(labels)} label(s); need 2 or more")
    if vocab is None:
        vocab = Vocab.build(normalize_text(_texts(tr), lower), tokens, lower, min_count,
                            max_vocab, name=name)
    label_ids = {lab: i for i, lab in enumerate(labels)}
    sets = [_encode(x, vocab, label_ids, names.get(k, name)) if x is not None else None
            for k, x in (("train", tr), ("valid", va), ("test", te))]
    return ClassifyData(sets[0], sets[1], sets[2], vocab, labels, names)
