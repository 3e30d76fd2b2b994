"""MNLI split by a hypothesis-only classifier: the `mnli_easy` / `mnli_hard` subsets.

Gururangan et al. 2018 ("Annotation Artifacts in Natural Language Inference Data") classified
NLI examples from the hypothesis alone (fastText) and called "hard" the examples that classifier
gets wrong: their labels are not given away by annotation artifacts (negation words for
contradiction, vague words for neutral...). The same rule here, with a plain classifier and no
randomness:

  features    lowercased word unigrams and bigrams of the hypothesis (tokens: \\w+ or one
              punctuation mark)
  classifier  multinomial naive Bayes, add-one (Laplace) smoothing of the feature counts and of
              the class priors; argmax, ties to the first label of the task's label order
  train       cross-fitted over K = 5 folds, fold = crc32(example id) % K: every training example
              is classified by the model fitted on the other four folds, never by one that saw it
              (in-sample, a hypothesis's own rare words would give its label away)
  dev         classified by the model fitted on all of train
  easy        the examples classified correctly; hard = the rest (disjoint, union = the split)

The same source always gives the same split (ids and text fixed: no seed involved).

Sizes: Gururangan et al.'s fastText got about 53% of MNLI right, so expect roughly 53% easy / 47%
hard (no MNLI copy was at hand to measure this classifier on it). On a synthetic MNLI-sized twin
(392,702 train rows of Zipfian words, 30% with a label-revealing word, labels otherwise random)
it finds exactly that structure: 53.35% easy = 30% + 70% / 3.

Cost: linear in the data; the fitted split is kept per process (keyed by a hash of the training
examples), so the train and dev subsets of one run fit it once. On that synthetic set (1.8M
unigram+bigram features; 2 shared CPU cores, load ~1.5): reading train.tsv 1.3 s, the cross-fitted
fit 7.9 s, mnli_easy's train split 8.7 s in all, then mnli_hard's dev split 1.6 s (train read
again, fit reused); peak memory 1.4 GiB.
"""
from __future__ import annotations

import array
import hashlib
import re
import zlib

import numpy as np
import scipy.sparse as sp

K = 5
_TOKEN = re.compile(r"\w+|[^\w\s]")
_FITTED: dict = {}   # training-set hash -> _Split (the split of one process's data, fitted once)


def features(text: str) -> list[str]:
    words = _TOKEN.findall((text or "").lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def _counts(texts, vocab: dict, grow: bool) -> sp.csr_matrix:
    """Rows x vocabulary feature counts; features outside `vocab` are added (grow) or dropped."""
    indptr, indices = array.array("q", [0]), array.array("q")
    for t in texts:
        for f in features(t):
            j = vocab.get(f)
            if j is None and grow:
                j = vocab[f] = len(vocab)
            if j is not None:
                indices.append(j)
        indptr.append(len(indices))
    m = sp.csr_matrix((np.ones(len(indices), np.float64), np.frombuffer(indices, np.int64),
                       np.frombuffer(indptr, np.int64)), shape=(len(texts), len(vocab)))
    m.sum_duplicates()
    return m


class NaiveBayes:
    """Multinomial naive Bayes from per-class feature counts (classes x features) and class sizes."""

    def __init__(self, feature_counts: np.ndarray, class_sizes: np.ndarray):
        smoothed = feature_counts + 1.0
        self.log_likelihood = np.log(smoothed) - np.log(smoothed.sum(1, keepdims=True))
        self.log_prior = np.log(class_sizes + 1.0) - np.log(class_sizes.sum() + len(class_sizes))

    def predict(self, X: sp.csr_matrix) -> np.ndarray:
        return np.asarray(X @ self.log_likelihood.T + self.log_prior).argmax(1)


class _Split:
    """The fitted split of one training set: its cross-fitted verdicts and the all-train model."""

    def __init__(self, train: list, labels: tuple):
        self.labels, self.vocab = labels, {}
        X = _counts([ex["text_b"] for ex in train], self.vocab, grow=True)
        y = np.array([labels.index(ex["label"]) for ex in train])
        fold = np.array([zlib.crc32(str(ex["id"]).encode()) % K for ex in train])
        C = len(labels)
        per_fold = np.zeros((K, C, X.shape[1]))
        sizes = np.zeros((K, C))
        for f in range(K):
            Y = sp.csr_matrix((np.ones(int((fold == f).sum())), (y[fold == f], np.arange((fold == f).sum()))),
                              shape=(C, int((fold == f).sum())))
            per_fold[f] = (Y @ X[fold == f]).toarray()
            sizes[f] = np.bincount(y[fold == f], minlength=C)
        total, total_sizes = per_fold.sum(0), sizes.sum(0)
        pred = np.empty(len(train), int)
        for f in range(K):
            rows = np.flatnonzero(fold == f)
            if len(rows):
                pred[rows] = NaiveBayes(total - per_fold[f], total_sizes - sizes[f]).predict(X[rows])
        self.train_correct = pred == y
        self.model = NaiveBayes(total, total_sizes)

    def correct(self, examples: list) -> np.ndarray:
        X = _counts([ex["text_b"] for ex in examples], self.vocab, grow=False)
        y = np.array([self.labels.index(ex["label"]) for ex in examples])
        return self.model.predict(X) == y


def fitted(train: list, labels: tuple) -> _Split:
    h = hashlib.sha1(repr(labels).encode())
    for ex in train:
        h.update(f"{ex['id']}\t{ex['text_b']}\t{ex['label']}\n".encode())
    key = h.hexdigest()
    if key not in _FITTED:
        _FITTED.clear()          # one training set per process is what a run needs; keep memory flat
        _FITTED[key] = _Split(train, labels)
    return _FITTED[key]


def easy_mask(examples: list, split: str, read, labels: tuple) -> np.ndarray:
    """True where the hypothesis-only classifier gets the example right (cross-fitted on train)."""
    if split == "train":
        return fitted(examples, labels).train_correct
    return fitted(read("train"), labels).correct(examples)


def subset(which: str, labels: tuple):
    """A Task.select keeping the `which` ("easy" | "hard") examples of a split."""
    assert which in ("easy", "hard"), which

    def select(examples, split, read):
        easy = easy_mask(examples, split, read, labels)
        return [ex for ex, e in zip(examples, easy) if e == (which == "easy")]
    return select
