"""Count-based N-gram language model: fit, score, sample, save, load, ARPA in and out.

Three steps, each its own function so that a parallel run can do step 1 on shards:

1. counts    ``count_ngrams(ids, order)`` per shard, ``merge_counts`` (ngram_counts.py)
2. statistics adjusted counts and discounts from the merged counts (kneser_ney.py)
3. tables    log10 probabilities and backoff weights per listed gram (kneser_ney.py)

``NGramModel.from_counts(counts, vocab, smoothing)`` runs 2 and 3; ``NGramModel.fit`` runs
all three on one id stream. Smoothings:

    ml      maximum likelihood, c(cw) / c(c.), from the longest seen context
    addk    (c(cw) + k) / (c(c.) + k |V'|), from the longest seen context
    kn      interpolated modified Kneser-Ney with D1, D2, D3+ (as KenLM's lmplz)
    stupid  Stupid Backoff (Brants et al. 2007): f(cw) / f(c), else alpha * S(w | c');
            scores, not probabilities (they do not sum to 1)

Sentences and <unk>: each line is ``<s> w1 .. wm </s>``; ``</s>`` is predicted and counted
as a token, ``<s>`` never. A word outside the vocabulary is scored as ``<unk>``; under KN
``<unk>`` has count 0 and gets gamma() / |V'| from the uniform floor, under ML and Stupid
Backoff it gets 0 (infinite perplexity) unless training text held ``<unk>`` (vocabulary
cut-offs). Perplexity = 10^(-sum log10 p / tokens), tokens including ``</s>`` and OOVs;
the perplexity without OOVs is reported too, as KenLM's ``query`` does.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from minipar.data.tokenize import Vocab
from minipar.core.errors import ConfigError, DataError
from minipar.models.arpa import read_arpa, write_arpa
from minipar.models.kneser_ney import kn_tables, ml_tables
from minipar.models.ngram_counts import NGramCounts, count_ngrams, sentence_stream
from minipar.models.ngram_index import (GramIndex, addk_score, backoff_score, history_matrix,
                                        stupid_score)

__all__ = ["NGramModel", "load_model", "summary_line", "SMOOTHINGS"]

SMOOTHINGS = ("kn", "ml", "addk", "stupid")
_FORMAT = "minipar-ngram-1"
_CHUNK = 1 << 18


class NGramModel:
    """An N-gram model over ``vocab``: a ``GramIndex`` plus per-order tables."""

    def __init__(self, vocab: Vocab, order: int, smoothing: str, grams, counts=None,
                 logp=None, logbo=None, k: float = 1.0, alpha: float = 0.4,
                 sentences: int = 0, tokens: int = 0, parents=None, stage=None,
                 keep_counts: bool = True, queries: bool = True):
        if smoothing not in SMOOTHINGS + ("arpa",):
            raise ConfigError(f"unknown smoothing {smoothing!r}: use {', '.join(SMOOTHINGS)}")
        if smoothing == "addk" and not k > 0:
            raise ConfigError(f"add-k needs k > 0, got {k} (k = 0 is --smoothing ml)")
        if smoothing == "stupid" and not 0 < alpha <= 1:
            raise ConfigError(f"Stupid Backoff needs 0 < alpha <= 1, got {alpha}")
        self.vocab, self.order, self.smoothing = vocab, order, smoothing
        self.k, self.alpha = float(k), float(alpha)
        self.sentences, self.tokens = sentences, tokens
        self.grams, self.counts = grams, counts if keep_counts else None
        self.index = GramIndex(grams, len(vocab), parents)
        self.discounts, self.warnings = None, []
        bos = vocab.bos_id
        if smoothing == "kn":
            logp, logbo, self.discounts, self.warnings = kn_tables(
                self.index, grams, counts, bos, stage, release=not keep_counts,
                queries=queries)
        elif smoothing in ("ml", "stupid"):
            logp, logbo = ml_tables(self.index, grams, counts, bos)
        elif smoothing == "addk":
            c = [np.asarray(x, dtype=np.float64) for x in counts]
            c[0] = c[0].copy()
            c[0][bos] = 0.0
            # totals[j][r] = sum_x c(g x) for the j-gram g of rank r; totals[0] = all tokens.
            self._totals = [np.array([c[0].sum()])] + [
                np.bincount(self.index.parent[j], weights=c[j], minlength=self.index.sizes[j - 1])
                for j in range(1, order)]
            self._addk_counts = c
        self.logp, self.logbo = logp, logbo
        self.index.drop_parents()  # the tables are built: queries need only the keys

    # ------------------------------------------------------------------ building
    @classmethod
    def fit(cls, ids, vocab: Vocab, order: int = 3, smoothing: str = "kn", k: float = 1.0,
            alpha: float = 0.4) -> "NGramModel":
        """Count ``ids`` (a ``Vocab.encode`` stream) and smooth: steps 1-3 in one process."""
        if order < 1:
            raise ConfigError(f"--order must be at least 1, got {order}")
        counts = count_ngrams(ids, order, vocab.bos_id, vocab.eos_id)
        return cls.from_counts(counts, vocab, smoothing, k=k, alpha=alpha)

    @classmethod
    def from_counts(cls, counts: NGramCounts, vocab: Vocab, smoothing: str = "kn",
                    k: float = 1.0, alpha: float = 0.4, stage=None,
                    keep_counts: bool = True, queries: bool = True) -> "NGramModel":
        """Build from (merged) counts: unigrams are made dense over the vocabulary.
        ``stage``: called with "adjust" and "discount" as KN passes them (timings).
        ``keep_counts=False``: the model does not keep the raw counts, so it cannot be
        saved as .npz; ``counts.counts`` and ``counts.parents`` are taken (set to None),
        and Kneser-Ney lets each order's counts go once its adjusted counts are made (8
        bytes a gram less while the probabilities are made and written). ``queries=False``
        (Kneser-Ney): the index's keys go too, so the model can be written (``write_arpa``)
        but not queried (8 bytes a gram less)."""
        V = len(vocab)
        if counts.tokens == 0 or counts.counts[0].sum() == 0:
            raise DataError("no training tokens to count")
        if any(len(g) and int(g.max()) >= V for g in counts.grams):
            raise ValueError("counts use ids outside the vocabulary")
        uni = np.zeros(V, dtype=np.int64)
        uni[counts.grams[0][:, 0]] = counts.counts[0]
        grams = [np.arange(V, dtype=np.int32)[:, None]] + list(counts.grams[1:])
        cnts = [uni] + list(counts.counts[1:])
        if not keep_counts:
            counts.counts = counts.parents = None
        parents = None
        if counts.parents is not None and counts.order > 1:  # order 2: dense unigram rows
            parents = [None, grams[1][:, 0]] + list(counts.parents[2:])
        return cls(vocab, counts.order, smoothing, grams, cnts, k=k, alpha=alpha,
                   sentences=counts.sentences, tokens=counts.tokens, parents=parents,
                   stage=stage, keep_counts=keep_counts, queries=queries)

    @classmethod
    def from_arpa(cls, path, tokens: str = "word", lower: bool = False) -> "NGramModel":
        """Load any ARPA file (ours, KenLM's, SRILM's); ``tokens`` says how to read text."""
        names, grams, logp, logbo = read_arpa(path, char_level=(tokens == "char"))
        vocab = Vocab(names, kind=tokens, lower=lower)
        for i in range(len(grams)):
            order = np.lexsort(grams[i].T[::-1])
            rows = grams[i][order]
            if len(rows) > 1 and (rows[1:] == rows[:-1]).all(axis=1).any():
                raise DataError(f"{path}: an n-gram of order {i + 1} is listed twice")
            grams[i], logp[i], logbo[i] = rows.astype(np.int32), logp[i][order], logbo[i][order]
        logp[0][vocab.bos_id] = -np.inf  # the <s> placeholder is never a prediction
        try:
            return cls(vocab, len(grams), "arpa", grams, logp=logp, logbo=logbo)
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from None

    # ------------------------------------------------------------------ scoring
    def _score(self, G: np.ndarray) -> np.ndarray:
        if self.smoothing == "stupid":
            return stupid_score(self.index, self.logp, G, np.log10(self.alpha))
        if self.smoothing == "addk":
            return addk_score(self.index, self._addk_counts, self._totals, G, self.k,
                              len(self.vocab) - 1, self.vocab.bos_id)
        return backoff_score(self.index, self.logp, self.logbo, G)

    def log10probs(self, ids) -> np.ndarray:
        """log10 p of every predicted token of a stream (its words and each </s>)."""
        s = sentence_stream(ids, self.vocab.bos_id, self.vocab.eos_id)
        pred = np.flatnonzero(s != self.vocab.bos_id)
        parts = [self._score(history_matrix(s, pred[i:i + _CHUNK], self.order,
                                            self.vocab.bos_id))
                 for i in range(0, len(pred), _CHUNK)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def perplexity(self, ids) -> dict:
        """Perplexity of held-out ids, with the token, sentence and OOV counts used."""
        s = sentence_stream(ids, self.vocab.bos_id, self.vocab.eos_id)
        words = s[s != self.vocab.bos_id]
        lp = self.log10probs(ids)
        oov = words == self.vocab.unk_id
        n, n_in = len(lp), int((~oov).sum())
        total = float(lp.sum())
        return {"tokens": n, "sentences": int((s == self.vocab.bos_id).sum()),
                "oov": int(oov.sum()), "log10prob": total,
                "ppl": float(10 ** (-total / n)) if n else float("nan"),
                "ppl_without_oov": float(10 ** (-lp[~oov].sum() / n_in)) if n_in else float("nan")}

    def _history_rows(self, histories) -> np.ndarray:
        return history_rows(histories, self.order, self.vocab.bos_id)

    def log10_distributions(self, histories) -> np.ndarray:
        """(B, V): log10 p(w | <s> + history) for every id w; histories are id lists of the
        sentence so far (without <s>). Stupid Backoff gives unnormalised scores."""
        H = self._history_rows(histories)
        V = len(self.vocab)
        G = np.concatenate([np.repeat(H, V, axis=0),
                            np.tile(np.arange(V), len(H))[:, None]], axis=1)
        return self._score(G).reshape(len(H), V)

    def distributions(self, histories) -> np.ndarray:
        """(B, V) probabilities; each row sums to 1 for every smoothing but Stupid Backoff."""
        return 10.0 ** self.log10_distributions(histories)

    def sample(self, n: int = 1, max_len: int = 100, temperature: float = 1.0, seed: int = 0,
               allow_unk: bool = False) -> list[np.ndarray]:
        """``n`` sentences (id arrays without </s>), drawn token by token with p^(1/T)
        renormalised; T = 0 takes the most likely token. All sentences advance together."""
        return sample_sentences(self.log10_distributions, self.vocab, n, max_len, temperature,
                                seed, allow_unk)

    # ------------------------------------------------------------------ files
    def meta(self) -> dict:
        return {"format": _FORMAT, "order": self.order, "smoothing": self.smoothing,
                "k": self.k, "alpha": self.alpha, "sentences": self.sentences,
                "tokens": self.tokens, "vocab": self.vocab.to_dict()}

    def save(self, path) -> None:
        """Native file (.npz): the vocabulary and the counts (or, for a model read from ARPA,
        its tables); probabilities are recomputed on load. Written atomically."""
        if self.counts is None and self.smoothing != "arpa":
            raise ValueError("this model was built with keep_counts=False: no counts to save")
        arrays = {}
        for i, g in enumerate(self.grams):
            arrays[f"grams{i + 1}"] = g
            if self.smoothing == "arpa":
                arrays[f"logp{i + 1}"], arrays[f"logbo{i + 1}"] = self.logp[i], self.logbo[i]
            else:
                arrays[f"counts{i + 1}"] = self.counts[i]
        _write_npz(path, self.meta(), arrays)

    @staticmethod
    def save_counts(path, counts: NGramCounts, vocab: Vocab, smoothing: str = "kn",
                    k: float = 1.0, alpha: float = 0.4) -> None:
        """The file ``from_counts(counts, vocab, smoothing).save(path)`` writes, without
        building the tables (a sharded run has them spread over its ranks)."""
        uni = np.zeros(len(vocab), dtype=np.int64)
        uni[counts.grams[0][:, 0]] = counts.counts[0]
        arrays = {"grams1": np.arange(len(vocab), dtype=np.int32)[:, None], "counts1": uni}
        for i in range(1, counts.order):
            arrays[f"grams{i + 1}"], arrays[f"counts{i + 1}"] = counts.grams[i], counts.counts[i]
        meta = {"format": _FORMAT, "order": counts.order, "smoothing": smoothing,
                "k": float(k), "alpha": float(alpha), "sentences": counts.sentences,
                "tokens": counts.tokens, "vocab": vocab.to_dict()}
        _write_npz(path, meta, arrays)

    @classmethod
    def load(cls, path) -> "NGramModel":
        path = os.fspath(path)
        if not os.path.exists(path):
            raise DataError(f"{path}: model file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != _FORMAT:
                    raise DataError(f"{path}: not a minipar N-gram model")
                vocab = Vocab.from_dict(meta["vocab"], name=path)
                N = meta["order"]
                grams = [z[f"grams{i}"] for i in range(1, N + 1)]
                if meta["smoothing"] == "arpa":
                    tables = {"logp": [z[f"logp{i}"] for i in range(1, N + 1)],
                              "logbo": [z[f"logbo{i}"] for i in range(1, N + 1)]}
                else:
                    tables = {"counts": [z[f"counts{i}"] for i in range(1, N + 1)]}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: not a readable minipar N-gram model ({exc})") from None
        return cls(vocab, N, meta["smoothing"], grams, k=meta["k"], alpha=meta["alpha"],
                   sentences=meta["sentences"], tokens=meta["tokens"], **tables)

    def write_arpa(self, path, progress=None) -> None:
        """Write the model as ARPA (kn, ml and models read from ARPA)."""
        if self.smoothing in ("addk", "stupid"):
            raise ConfigError(f"--smoothing {self.smoothing} cannot be written as ARPA: it is "
                              "not a normalised backoff model (use kn or ml)")
        chars = self.vocab.kind == "char"  # word names as bytes: no str per word
        write_arpa(path, self.vocab.tokens if chars else self.vocab.joined(), self.grams,
                   self.logp, self.logbo, bos=self.vocab.bos_id, char_level=chars,
                   progress=progress)

    def summary(self) -> str:
        return summary_line(self.order, self.smoothing, self.vocab.kind, len(self.vocab),
                            [len(g) for g in self.grams], self.discounts)


def _write_npz(path, meta: dict, arrays: dict) -> None:
    """meta (JSON) and the arrays in one .npz, written under a temporary name and renamed."""
    arrays = {"meta": np.array(json.dumps(meta, ensure_ascii=False)), **arrays}
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as exc:  # one line, and no half-written file left behind
        if os.path.exists(tmp):
            os.remove(tmp)
        raise DataError(f"{path}: cannot write ({exc.strerror})") from None


def summary_line(order: int, smoothing: str, kind: str, V: int, sizes, discounts) -> str:
    """``5-gram kn, word vocabulary 1,234, n-grams 1:.. 2:..; discounts 1:[..] ..``."""
    shown = " ".join(f"{k + 1}:{n:,}" for k, n in enumerate(sizes))
    text = f"{order}-gram {smoothing}, {kind} vocabulary {V:,}, n-grams {shown}"
    if discounts:
        ds = [" ".join(f"{d:.4f}" for d in D) for D in discounts]
        text += "; discounts " + " ".join(f"{k + 1}:[{d}]" for k, d in enumerate(ds))
    return text


def load_model(path, tokens: str | None = None, lower: bool = False) -> NGramModel:
    """A native .npz model or an ARPA file (told apart by content, not by name)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: model file not found")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        model = NGramModel.load(path)
        if tokens is not None and tokens != model.vocab.kind:
            raise ConfigError(f"{path} is a {model.vocab.kind}-level model, not --tokens {tokens}")
        return model
    return NGramModel.from_arpa(path, tokens=tokens or "word", lower=lower)


def history_rows(histories, order: int, bos: int) -> np.ndarray:
    """(B, order-1): ``<s>`` and each history's tokens, right-aligned, -1 padded."""
    n = order - 1
    H = np.full((len(histories), n), -1, dtype=np.int64)
    for b, h in enumerate(histories):
        full = [bos] + [int(x) for x in h]
        tail = full[len(full) - n:] if n else []
        if tail:
            H[b, n - len(tail):] = tail
    return H


def sample_sentences(log10_distributions, vocab, n: int, max_len: int, temperature: float,
                     seed: int, allow_unk: bool = False) -> list[np.ndarray]:
    """Draw ``n`` sentences token by token from ``log10_distributions(histories)`` ((B, V)
    log10 p of every next id): p^(1/T) renormalised, T = 0 the most likely token. Shared by
    the one-process model and the sharded one, so the same distributions give the same
    sentences."""
    if temperature < 0:
        raise ConfigError(f"--temperature must be >= 0, got {temperature}")
    rng = np.random.default_rng(seed)
    V, eos = len(vocab), vocab.eos_id
    out = np.full((n, max_len), -1, dtype=np.int64)
    length = np.zeros(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    for t in range(max_len):
        act = np.flatnonzero(active)
        if len(act) == 0:
            break
        lp = log10_distributions([out[b, :t] for b in act]) * np.log(10.0)
        lp[:, vocab.bos_id] = -np.inf
        if not allow_unk:
            lp[:, vocab.unk_id] = -np.inf
        lp[~np.isfinite(lp).any(axis=1), eos] = 0.0  # nothing left: end the sentence
        if temperature == 0:
            x = lp.argmax(axis=1)
        else:
            z = lp / temperature
            p = np.exp(z - z.max(axis=1, keepdims=True))
            cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
            x = np.minimum((cdf < rng.random(len(act))[:, None]).sum(axis=1), V - 1)
        ended = x == eos
        out[act[~ended], t] = x[~ended]
        length[act[~ended]] += 1
        active[act[ended]] = False
    return [out[b, :length[b]] for b in range(n)]
