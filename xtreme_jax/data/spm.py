"""Train a small sentencepiece model and save it as an XLM-R tokenizer directory (no network)."""
import io
import os
from typing import Iterable


def train_xlmr_tokenizer(texts: Iterable[str], out_dir: str, vocab_size: int = 1000):
    """Writes `out_dir/sentencepiece.bpe.model` plus the HF tokenizer files; returns the tokenizer.

    The directory then loads with `transformers.AutoTokenizer.from_pretrained(out_dir)` exactly as
    a real xlm-roberta checkpoint directory does.
    """
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    os.makedirs(out_dir, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_writer=buf, vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
        num_threads=1, minloglevel=2)
    with open(os.path.join(out_dir, "sentencepiece.bpe.model"), "wb") as f:
        f.write(buf.getvalue())
    tok = XLMRobertaTokenizer.from_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return tok
