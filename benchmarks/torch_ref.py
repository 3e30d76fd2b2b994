"""The PyTorch side of the benchmarks: HF transformers' XLM-R of the same config, trained the
jiant / XTREME-scripts way, and PyTorch's fp32 GEMM (the CPU peak as PyTorch sees it)."""
from __future__ import annotations

import math
import time

import numpy as np


def make_torch_matmul(n: int, threads: int, min_seconds: float = 1.0):
    """The same fp32 n^3 product through PyTorch (MKL / oneDNN), FLOP/s: the CPU's GEMM as the
    PyTorch path sees it."""
    import torch
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    a @ b
    t = time.perf_counter()
    a @ b
    reps = max(1, math.ceil(min_seconds / max(time.perf_counter() - t, 1e-6)))

    def run():
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        return reps * 2 * n ** 3 / (time.perf_counter() - t)
    run.flops_per_call = reps * 2 * n ** 3
    return run


def hf_config(cfg, **kw):
    """transformers.XLMRobertaConfig of the same shape as our EncoderConfig (dropouts, labels, the
    attention implementation and anything else in `kw`): the PyTorch side of every benchmark."""
    import transformers
    base = dict(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
                max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=cfg.type_vocab_size,
                layer_norm_eps=cfg.layer_norm_eps, pad_token_id=cfg.pad_token_id,
                hidden_dropout_prob=cfg.hidden_dropout, attention_probs_dropout_prob=cfg.attention_dropout,
                attn_implementation="sdpa")
    return transformers.XLMRobertaConfig(**{**base, **kw})


class TorchTrainer:
    """HF transformers' PyTorch XLMRobertaForSequenceClassification (or ...ForTokenClassification
    for tagging) + AdamW (no decay on bias / LayerNorm) + global-norm clipping + linear schedule:
    the jiant / XTREME-scripts path."""

    def __init__(self, cfg, num_labels: int, batch: dict | None, threads: int, attn: str = "sdpa",
                 lr=1e-5, kind: str = "classification", fused: bool = True, sparse_embedding: bool = False):
        import torch
        import transformers
        torch.manual_seed(0)
        torch.set_num_threads(threads)
        self.torch = torch
        hf = hf_config(cfg, num_labels=num_labels, attn_implementation=attn)
        model_cls = (transformers.XLMRobertaForTokenClassification if kind == "tagging"
                     else transformers.XLMRobertaForSequenceClassification)
        self.model = model_cls(hf).train()
        # sparse_embedding: PyTorch's own lazy embedding update, the contender of our
        # embedding_update=rows: a sparse word-embedding gradient and SparseAdam for it (no weight
        # decay there: SparseAdam has none), fused AdamW for the rest.
        word = self.model.roberta.embeddings.word_embeddings
        word.sparse = sparse_embedding
        self.sparse = [word.weight] if sparse_embedding else []
        self.sparse_opt = torch.optim.SparseAdam(self.sparse, lr=lr, eps=1e-8) if sparse_embedding else None
        named = [(n, p) for n, p in self.model.named_parameters() if not any(p is q for q in self.sparse)]
        decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
        no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
        groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
        # PyTorch at its best: the fused AdamW kernel (CPU support since torch 2.4), else foreach.
        self.adamw = "default (foreach)"
        try:
            self.opt = torch.optim.AdamW(groups, lr=lr, eps=1e-8, fused=fused or None)
            self.adamw = "fused" if fused else self.adamw
        except (RuntimeError, TypeError, ValueError) as e:
            self.opt = torch.optim.AdamW(groups, lr=lr, eps=1e-8)
            self.adamw = f"default (fused unavailable: {e})"
        total, warm = 10 ** 6, 10 ** 5
        lam = lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm)))  # noqa: E731
        self.scheds = [torch.optim.lr_scheduler.LambdaLR(o, lam) for o in (self.opt, self.sparse_opt) if o]
        self.batch = self.put(batch) if batch is not None else None
        self.attn = attn
        self.threads = threads

    def put(self, batch: dict) -> dict:
        return {k: self.torch.as_tensor(np.asarray(v, np.int64)) for k, v in batch.items()
                if k in ("input_ids", "attention_mask", "labels")}

    def step(self, batch=None):
        out = self.model(**(batch if batch is not None else self.batch))
        out.loss.backward()
        if self.sparse:   # clip_grad_norm_ cannot take a sparse gradient: the same rule by hand
            torch = self.torch
            dense = [p.grad for p in self.model.parameters() if p.grad is not None and not p.grad.is_sparse]
            g = self.sparse[0].grad = self.sparse[0].grad.coalesce()
            norm = torch.sqrt(torch.stack([n ** 2 for n in torch._foreach_norm(dense)]).sum()
                              + g._values().pow(2).sum())
            scale = torch.clamp(1.0 / (norm + 1e-6), max=1.0)
            torch._foreach_mul_(dense + [g._values()], scale)
            self.sparse_opt.step()
        else:
            self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        for s in self.scheds:
            s.step()
        for o in (self.opt, self.sparse_opt):
            if o:
                o.zero_grad(set_to_none=True)
        return out.loss

    def timed(self, k: int, batch=None) -> float:
        t = time.perf_counter()
        for _ in range(k):
            loss = self.step(batch)
        float(loss.detach())
        return (time.perf_counter() - t) / k
