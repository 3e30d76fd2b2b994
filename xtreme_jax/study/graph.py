"""The run graph: every point split into stages that other points can share.

A point's phases run as a chain of separate runs (nodes), each starting from the finished phase
of its parent through `config.init_from`:

    mlm node           phases=mlm               one per distinct (encoder corpus/settings, encoder seed)
    intermediate node  phases=intermediate      one per distinct (encoder, intermediate config, seed)
    target node        phases=[pretarget,]target,evaluate   one per point

A node's config holds only what that stage uses (the other phase sections are the schema
defaults), so two points that differ only in their target (size, languages, method) produce the
same intermediate node, which is trained once and branched into both. Nodes are keyed by the
hash of their config; a child refers to its parent as "@<hash>/<phase>" inside the hash, so the
hash does not depend on where the study directory lives, and becomes the parent's directory
(ROOT/runs/<hash>/<phase>) only when the node is written out to run.
"""
from __future__ import annotations

import dataclasses

from xtreme_jax.study.expand import Point, config_hash, phase_names

STAGES = (("mlm", ("mlm",)), ("intermediate", ("intermediate",)))
PHASE_SECTIONS = ("mlm", "intermediate", "pretarget", "target", "evaluate")


@dataclasses.dataclass
class Node:
    hash: str
    stage: str                 # mlm | intermediate | target | point (no sharing)
    config: dict               # run config; init_from = "@<parent hash>/<phase>" for a parent
    parent: str | None = None
    points: list = dataclasses.field(default_factory=list)   # indices of the points using it

    @property
    def phases(self) -> list[str]:
        return phase_names(self.config)


@dataclasses.dataclass
class Graph:
    nodes: dict                # hash -> Node, parents before children
    leaf: list                 # point index -> hash of its last node
    collapsed: list            # (point index, index of the identical point kept)
    sharing: bool              # False when the config schema has no init_from (one run per point)

    def chain(self, i: int) -> list[Node]:
        out, h = [], self.leaf[i]
        while h:
            out.append(self.nodes[h])
            h = self.nodes[h].parent
        return out[::-1]

    def children(self, h: str) -> list[str]:
        return [n.hash for n in self.nodes.values() if n.parent == h]


def _defaults() -> dict:
    from xtreme_jax import config as C
    from xtreme_jax.study.expand import to_plain
    return to_plain(C.base_config())


def split(config: dict, encoder_seed: int, defaults: dict | None = None) -> list[tuple[str, dict]]:
    """[(stage, node config)] of one point's resolved run config, parents first."""
    defaults = defaults or _defaults()
    phases = phase_names(config)
    shared = {k: v for k, v in config.items() if k not in PHASE_SECTIONS and k not in ("phases", "init_from")}
    out, rest, init = [], list(phases), config.get("init_from", "")
    for stage, names in STAGES:
        if rest and rest[0] in names and len(rest) > 1:
            out.append((stage, [rest.pop(0)]))
    out.append(("target", rest))
    nodes, parent_ref = [], init
    for stage, names in out:
        node = {k: v for k, v in defaults.items()}
        node.update(shared)
        for name in names:
            node[name] = config[name]
        node["phases"] = ",".join(names)
        node["init_from"] = parent_ref
        if stage == "mlm" and encoder_seed >= 0:
            node["seed"] = int(encoder_seed)  # pretraining: one encoder for every seed, as a released checkpoint
        h = config_hash(node)
        nodes.append((stage, node))
        parent_ref = f"@{h}/{names[-1]}"
    return nodes


def build(points: list[Point], encoder_seed: int = -1, fuse: bool = True) -> Graph:
    """The graph of every point's stages, identical stages shared. fuse: a stage that only one
    other stage starts from (and that runs with the same seed) runs in that stage's process, as
    one run of both phases: nothing to share, one process start less."""
    defaults = _defaults()
    sharing = "init_from" in defaults
    chains = [split(p.config, encoder_seed, defaults) if sharing else [("point", p.config)] for p in points]
    if sharing and fuse:
        children = {}
        for parts in chains:
            for (_, a), (_, b) in zip(parts, parts[1:]):
                children.setdefault(config_hash(a), set()).add(config_hash(b))
        chains = [_fuse(parts, children) for parts in chains]
    nodes, leaf, collapsed, first = {}, [], [], {}
    for i, parts in enumerate(chains):
        parent = None
        for stage, cfg in parts:
            h = config_hash(cfg)
            if h not in nodes:
                nodes[h] = Node(h, stage, cfg, parent)
            nodes[h].points.append(i)
            parent = h
        if parent in first:
            collapsed.append((i, first[parent]))
        first.setdefault(parent, i)
        leaf.append(parent)
    return Graph(nodes, leaf, collapsed, sharing)


def _fuse(parts, children) -> list[tuple[str, dict]]:
    out, held = [], None
    for k, (stage, cfg) in enumerate(parts):
        cfg = dict(cfg)
        if held is not None:       # the held stage's phases run first, in this run
            for name in phase_names(held[1]):
                cfg[name] = held[1][name]
            cfg["phases"] = ",".join(phase_names(held[1]) + phase_names(cfg))
            cfg["init_from"] = held[1]["init_from"]
            stage, held = f"{held[0]}+{stage}", None
        if out:                    # start from the (possibly fused) stage emitted before
            prev = out[-1][1]
            cfg["init_from"] = f"@{config_hash(prev)}/{phase_names(prev)[-1]}"
        only = children.get(config_hash(parts[k][1]), set())
        if k + 1 < len(parts) and len(only) == 1 and parts[k + 1][1]["seed"] == cfg["seed"]:
            held = (stage, cfg)
        else:
            out.append((stage, cfg))
    return out


def materialize(node: Node, root: str) -> dict:
    """The node's config as it runs: its parent reference turned into the parent's phase dir, and
    (local studies) one tokenized-feature cache for all runs, ROOT/cache, so that each data set
    is tokenized once per study (the cache is keyed by content and safe to share; where it lives
    is not part of the experiment, so not of the hash)."""
    cfg = dict(node.config)
    ref = cfg.get("init_from", "")
    if ref.startswith("@"):
        h, phase = ref[1:].split("/", 1)
        cfg["init_from"] = node_dir(root, h) + "/" + phase
    if "://" not in root and not cfg["data"].get("cache_dir"):
        cfg["data"] = dict(cfg["data"], cache_dir=f"{root.rstrip('/')}/cache")
    return cfg


def node_dir(root: str, h: str) -> str:
    return f"{root.rstrip('/')}/runs/{h}"
