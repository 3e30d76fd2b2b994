"""Train a sentencepiece model and save it as an XLM-R tokenizer directory (no network).

    python -m xtreme_jax.data.spm --input a.txt,b.txt --vocab_size 8000 \
        --character_coverage 0.9995 --out DIR

Multilingual text: `character_coverage` is the share of characters (by count) the vocabulary
must cover; the rest become <unk>. 1.0 keeps every character (right for small alphabets, wasteful
with Chinese or Japanese: thousands of rare characters each take a piece); sentencepiece
recommends 0.9995 for languages with rich character sets. The directory loads with
`transformers.AutoTokenizer.from_pretrained(DIR)` exactly as a real xlm-roberta checkpoint
directory does, and is what `config.model.tokenizer` takes (a random-init model's vocabulary
then follows its size: config.model.vocab_size=0).
"""
import argparse
import io
import os
import sys
from typing import Iterable


def train_xlmr_tokenizer(texts: Iterable[str] | None, out_dir: str, vocab_size: int = 1000, *,
                         files=(), character_coverage: float = 1.0, max_sentences: int = 0,
                         model_type: str = "unigram"):
    """Writes `out_dir/sentencepiece.bpe.model` plus the HF tokenizer files; returns the tokenizer.

    Text comes from `texts` (an iterable of lines) and/or `files` (UTF-8, one sentence per line).
    `max_sentences` > 0 trains on a random sample of that many lines (sentencepiece's
    input_sentence_size), for corpora too big to hold in memory.
    """
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    os.makedirs(out_dir, exist_ok=True)
    buf = io.BytesIO()
    opts = dict(model_writer=buf, vocab_size=vocab_size, model_type=model_type,
                character_coverage=character_coverage, hard_vocab_limit=False, num_threads=1,
                minloglevel=2)
    if max_sentences:
        opts.update(input_sentence_size=max_sentences, shuffle_input_sentence=True)
    if files:
        opts["input"] = ",".join(files)
        if texts is not None:  # both: the lines go in a temporary file next to the others
            extra = os.path.join(out_dir, ".extra-lines.txt")
            with open(extra, "w", encoding="utf-8") as f:
                f.writelines(line.rstrip("\n") + "\n" for line in texts)
            opts["input"] += "," + extra
    else:
        opts["sentence_iterator"] = iter(list(texts or []))
    spm.SentencePieceTrainer.train(**opts)
    if os.path.exists(os.path.join(out_dir, ".extra-lines.txt")):
        os.remove(os.path.join(out_dir, ".extra-lines.txt"))
    with open(os.path.join(out_dir, "sentencepiece.bpe.model"), "wb") as f:
        f.write(buf.getvalue())
    tok = XLMRobertaTokenizer.from_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return tok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xtreme_jax.data.spm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="comma-separated UTF-8 text files, one sentence per line")
    parser.add_argument("--out", required=True, help="tokenizer directory to write")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--character_coverage", type=float, default=0.9995,
                        help="share of characters covered (default 0.9995, for rich character sets)")
    parser.add_argument("--max_sentences", type=int, default=0, help="sample this many lines (0 = all)")
    parser.add_argument("--model_type", default="unigram", choices=["unigram", "bpe"])
    args = parser.parse_args(argv)
    files = [f for f in args.input.split(",") if f]
    problems = [f"{f}: no such file" for f in files if not os.path.isfile(f)]
    if not 0 < args.character_coverage <= 1:
        problems.append(f"--character_coverage={args.character_coverage} must lie in (0, 1]")
    if args.vocab_size < 8:
        problems.append(f"--vocab_size={args.vocab_size} is too small (sentencepiece needs room for "
                        "its special pieces and the characters)")
    for f in files:
        if os.path.isfile(f):
            problems += _check_utf8(f)
    if not files:
        problems.append("--input names no file")
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    try:
        tok = train_xlmr_tokenizer(None, args.out, args.vocab_size, files=files,
                                   character_coverage=args.character_coverage,
                                   max_sentences=args.max_sentences, model_type=args.model_type)
    except RuntimeError as e:  # sentencepiece's own checks, e.g. more required characters than vocab
        print(f"error: sentencepiece refused: {str(e).split('] ')[-1]}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: a tokenizer of {len(tok)} tokens (config.model.tokenizer={args.out})")
    return 0


def _check_utf8(path) -> list:
    """sentencepiece skips undecodable lines without saying which: name the first one."""
    with open(path, "rb") as f:
        for i, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return [f"{path}:{i}: not valid UTF-8 (byte 0x{line[e.start]:02x} at column {e.start + 1}); "
                        "re-save the file as UTF-8"]
    return []


if __name__ == "__main__":
    sys.exit(main())
