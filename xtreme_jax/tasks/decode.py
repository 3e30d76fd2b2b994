"""From model outputs per feature row back to per-example predictions.

The evaluator (xtreme_jax.evaluation) gathers the outputs of every feature row; then:

- `decode_qa`: n-best start/end search per window, best span over all windows of an example,
  text cut from the original context through the offset mapping (SQuAD / XTREME procedure).
- `tags_to_words`: tag predictions on first sub-tokens re-assembled into one tag per word over
  all windows of a sentence (the scorer then runs seqeval on words).
"""
from __future__ import annotations

import numpy as np

from xtreme_jax.data.features import Features


def decode_qa(examples: list, features: Features, start_logits, end_logits, *, n_best: int = 20,
              max_answer_length: int = 30, version_2: bool = False,
              null_score_diff_threshold: float = 0.0) -> dict:
    """{example id: answer text} from per-row start/end logits ([row][token], any padding)."""
    ex_index = np.asarray(features.rows["example_index"])
    rows_of = {}
    for r, e in enumerate(ex_index):
        rows_of.setdefault(int(e), []).append(r)
    preds = {}
    for e, ex in enumerate(examples):
        best_text, best_score, null_score = "", -np.inf, np.inf
        for r in rows_of.get(e, []):
            n = int(features.row_splits[r + 1] - features.row_splits[r])
            offs = np.asarray(features.row_tokens("offsets", r))
            maxc = np.asarray(features.row_tokens("max_context", r)) if "max_context" in features.tokens \
                else (offs[:, 0] >= 0)
            sl, el = np.asarray(start_logits[r])[:n], np.asarray(end_logits[r])[:n]
            null_score = min(null_score, float(sl[0] + el[0]))
            starts = np.argsort(-sl)[:n_best]
            ends = np.argsort(-el)[:n_best]
            for s in starts:
                if offs[s, 0] < 0 or not maxc[s]:
                    continue
                for t in ends:
                    if offs[t, 0] < 0 or t < s or t - s + 1 > max_answer_length:
                        continue
                    score = float(sl[s] + el[t])
                    if score > best_score:
                        best_score = score
                        best_text = ex["context"][offs[s, 0]:offs[t, 1]]
        if version_2 and null_score - best_score > null_score_diff_threshold:
            best_text = ""
        preds[ex["id"]] = best_text
    return preds


def tags_to_words(features: Features, predictions, labels, fill: str | None = None) -> list:
    """One tag name per word for every example, from per-row predictions.

    `predictions[row]` is either tag ids per token [L] or logits [L, num_labels]. Words that
    got no sub-token (e.g. a lone zero-width character) get `fill` (default: "O" if it is a
    label, else the first label) -- XTREME replaced such words with <unk> and tagged those.
    """
    labels = list(labels)
    fill = fill if fill is not None else ("O" if "O" in labels else labels[0])
    num_words = features.meta["num_words"]
    out = [[fill] * n for n in num_words]
    ex_index = np.asarray(features.rows["example_index"])
    for r, e in enumerate(ex_index):
        p = np.asarray(predictions[r])
        if p.ndim == 2:
            p = p.argmax(-1)
        widx = np.asarray(features.row_tokens("word_index", r))
        for t in np.nonzero(widx >= 0)[0]:
            out[e][widx[t]] = labels[int(p[t])]
    return out
