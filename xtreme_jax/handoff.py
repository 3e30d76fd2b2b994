"""The weight hand-off: the one way weights pass from a phase to the next and into evaluation.

A Handoff holds the encoder params and the trained heads passed on, each head with its
(kind, num_labels). It comes from a phase just trained (`Handoff.from_model`) or from a finished
phase directory, of this run or another one (`Handoff.load`: RUN/<phase>/results/summary.json +
RUN/<phase>/final/, restored onto the mesh without building an optimizer). `apply` puts it into
a freshly created model; without a hand-off, `init_weights` takes the pretrained checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Mapping

import jax
from etils import epath
from flax import nnx

from xtreme_jax.checkpoint import place, restore_model
from xtreme_jax.config import ConfigError
from xtreme_jax.files import is_remote, upload_dir
from xtreme_jax.models import hf as hf_lib
from xtreme_jax.train_step import create_model
from xtreme_jax.workdir import PhaseDir


@dataclasses.dataclass(frozen=True)
class Handoff:
    phase: str                    # the phase that trained these weights (its directory name)
    encoder: nnx.State            # encoder params, sharded on the run's mesh
    heads: Mapping[str, nnx.State]            # heads handed on: {name: params}
    kinds: Mapping[str, tuple]    # (kind, num_labels) of every head the phase trained
    directory: str = ""           # the phase directory it was loaded from ("" if just trained)

    @classmethod
    def from_model(cls, phase: str, model_state, heads: dict, keep_heads) -> "Handoff":
        """From a trained TaskModel state; `keep_heads`: the head names handed on."""
        return cls(phase, model_state["encoder"], {h: model_state["heads"][h] for h in keep_heads},
                   {h: tuple(v) for h, v in heads.items()})

    @classmethod
    def load(cls, phase_dir: str, model_cfg, mesh, *, keep_heads: bool | None = None) -> "Handoff":
        """The final params of a finished phase (this run's or another run's). `keep_heads`:
        hand the heads on too; None = as that phase did (its summary's `handoff_heads`)."""
        summary = read_summary(phase_dir)
        heads = {h: tuple(v) for h, v in summary["heads"].items()}
        kept = summary.get("handoff_heads", sorted(heads)) if keep_heads is None else (
            sorted(heads) if keep_heads else [])
        _, abstract = create_model(model_cfg, heads, mesh, abstract_only=True)
        model = restore_model(PhaseDir(phase_dir).final, abstract)
        return cls(epath.Path(phase_dir).name, model["encoder"],
                   {h: model["heads"][h] for h in kept}, heads, directory=phase_dir)

    def apply(self, model_state, heads: dict, *, require_heads: bool = False) -> None:
        """Puts the encoder, and each handed-on head whose (kind, num_labels) matches, into
        `model_state` (an nnx.State of a TaskModel with `heads`) in place. `require_heads`
        (evaluation): every head must come from the hand-off."""
        nnx.replace_by_pure_dict(model_state["encoder"], nnx.to_pure_dict(self.encoder))
        for h, spec in heads.items():
            prev = self.heads.get(h)
            if prev is not None and self.kinds.get(h) == tuple(spec):
                nnx.replace_by_pure_dict(model_state["heads"][h], nnx.to_pure_dict(prev))
            elif require_heads:
                raise ConfigError(
                    f"no trained head for evaluate task {h!r}: the {self.phase} phase handed on "
                    f"{sorted(self.heads) or 'no heads'}; add a target phase for {h!r}")


def init_weights(model_state, heads: dict, context, handoff: Handoff | None, *,
                 require_heads: bool = False) -> None:
    """The weights a phase starts from, in place: the hand-off if there is one, else the
    pretrained checkpoint's (context.hf_path, heads included where it has them), else the
    random initialisation stays."""
    if handoff is not None:
        handoff.apply(model_state, heads, require_heads=require_heads)
    elif context.hf_path:
        # A model without heads (only retrieval tasks: the encoder's embeddings are scored) has
        # no "heads" entry in its state at all.
        expected = nnx.to_pure_dict(model_state).get("heads", {})
        loaded = hf_lib.load_checkpoint(context.hf_path, context.model_cfg, context.hf_type,
                                        {h: k for h, (k, _) in heads.items()}, expected)
        place(model_state["encoder"], loaded["encoder"])
        for h, params in loaded["heads"].items():
            place(model_state["heads"][h], params)


def read_summary(phase_dir: str) -> dict:
    """results/summary.json of a finished phase; a ConfigError naming the path when the phase
    did not finish there (checked before any compute)."""
    pdir = PhaseDir(phase_dir)
    if not pdir.intact():
        raise ConfigError(f"{phase_dir} is not a finished phase of a run: expected {pdir.summary_file} and "
                          f"{pdir.final}/ (a phase writes them when it finishes)")
    return json.loads(pdir.summary_file.read_bytes())


def export_hf(context, out_dir: str, model_state, heads: dict):
    """An HF checkpoint directory (weights, config, tokenizer) of a trained model; process 0."""
    if jax.process_index() != 0:
        return
    if is_remote(out_dir):  # hf_lib writes a local folder: build it here, then upload it
        with tempfile.TemporaryDirectory() as tmp:
            export_hf(context, os.path.join(tmp, "hf"), model_state, heads)
            epath.Path(out_dir).rmtree(missing_ok=True)
            upload_dir(os.path.join(tmp, "hf"), out_dir)
        return
    pure = jax.device_get(nnx.to_pure_dict(model_state))
    # An HF checkpoint holds one task head: the first trained head that is not the MLM
    # pretraining head (kind switch kept here: only the export needs this rule).
    head, kind = next(((h, k) for h, (k, _) in heads.items() if k != "mlm"), (None, None))
    hf_lib.export_hf(out_dir, context.model_cfg, pure["encoder"],
                     model_type=context.hf_type or "xlm-roberta", head_kind=kind,
                     head_params=pure["heads"][head] if head else None,
                     num_labels=heads[head][1] if head else 2,
                     tokenizer_dir=context.config.model.tokenizer or context.hf_path)
