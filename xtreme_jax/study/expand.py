"""Factors x seeds -> points: each point a resolved run config, keyed by the hash of that config.

Two points whose resolved configs are identical (say k=0 added languages in every language order)
are one run: the first keeps it, the others become its aliases and are reported (plan) and given
the same results (report).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re

import ml_collections as mlc

from xtreme_jax.study.spec import StudyError, combinations

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class Point:
    labels: dict              # factor -> level label
    seed: int
    args: dict                # recipe args
    overrides: dict           # run-config overrides (dotted paths)
    config: dict              # the resolved run config, plain JSON
    hash: str = ""
    aliases: list = dataclasses.field(default_factory=list)  # labels of identical points

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.labels.items()) + f", seed={self.seed}"


# Run-config fields added after study directories existed, at the value that does what the
# code did before the field existed. Left out of the hash at that value, so an upgrade does not
# orphan finished runs; any other value is hashed (and changes the run, as it should).
HASH_NEUTRAL = {"embedding_update": "dense", "attention_dropout": None, "attention_impl": "",
                "grad_dtype": "float32", "dropout_bits": 16}


def _without_neutral(obj):
    if isinstance(obj, dict):
        return {k: _without_neutral(v) for k, v in obj.items()
                if not (k in HASH_NEUTRAL and v == HASH_NEUTRAL[k])}
    if isinstance(obj, (list, tuple)):
        return [_without_neutral(v) for v in obj]
    return obj


def config_hash(obj) -> str:
    text = json.dumps(_without_neutral(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def recipe_path(recipe: str) -> str:
    for base in ("", REPO):
        path = os.path.join(base, recipe)
        if os.path.isfile(path):
            return path
    raise StudyError(f"config.recipe={recipe!r}: no such config file (looked in . and {REPO})")


_MODULES: dict = {}


def load_recipe(recipe: str):
    path = recipe_path(recipe)
    if path not in _MODULES:
        spec = importlib.util.spec_from_file_location(f"study_recipe_{len(_MODULES)}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[path] = module
    return _MODULES[path]


def set_path(config: mlc.ConfigDict, path: str, value):
    """config.a.b[0].c = value on a locked ConfigDict (a misspelled key fails)."""
    node, parts = config, path.split(".")
    for i, part in enumerate(parts):
        m = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", part)
        if not m:
            raise StudyError(f"override {path!r}: cannot parse {part!r}")
        name, index = m.group(1), m.group(2)
        last = i == len(parts) - 1
        if name not in node:
            raise StudyError(f"override {path}={value!r}: no field {name!r} (have {sorted(node.keys())})")
        if index is None and last:
            try:
                setattr(node, name, value)
            except (TypeError, ValueError, AttributeError) as e:
                raise StudyError(f"override {path}={value!r}: {e}") from None
            return
        node = node[name]
        if index is not None:
            if int(index) >= len(node):
                raise StudyError(f"override {path}: {name} has {len(node)} entries")
            if last:
                node[int(index)] = value
                return
            node = node[int(index)]


def resolve(recipe: str, args: dict, overrides: dict, seed: int) -> mlc.ConfigDict:
    module = load_recipe(recipe)
    arg = ",".join(f"{k}={v}" for k, v in args.items())
    try:
        config = module.get_config(arg)
    except (ValueError, KeyError) as e:
        raise StudyError(f"{recipe}:{arg}: {(str(e).splitlines() or [''])[0]}") from None
    config.lock()
    # A point is one run: a recipe's own with/without comparison (config.ablate, e.g. the demo's
    # default) is the study's job, through its factors.
    config.ablate = ""
    for path, value in overrides.items():
        set_path(config, path, value)
    config.seed = int(seed)
    return config


def apply_floors(config: mlc.ConfigDict, floors) -> mlc.ConfigDict:
    """config.floor: each "path=N" raises the point's value at path to at least N."""
    from xtreme_jax.study.spec import literal
    for f in floors:
        path, sep, n = str(f).partition("=")
        n = literal(n)
        if not sep or not isinstance(n, int):
            raise StudyError(f"config.floor entry {f!r}: expected 'path.to.field=N' with a whole number N")
        node = config
        for part in path.split(".")[:-1]:
            node = node[part]
        if node[path.split(".")[-1]] < n:
            set_path(config, path, n)
    return config


def to_plain(config: mlc.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort(sort_keys=True))


def run_config(plain: dict, where: str = "point config") -> mlc.ConfigDict:
    """A resolved run config (JSON) back as a ConfigDict built on config.base_config(): every key
    must exist in the schema (a misspelled or stale key fails), lists of task entries are rebuilt
    from their templates, JSON lists become tuples where the schema has tuples."""
    from xtreme_jax import config as C
    c = C.base_config()
    _update(c, plain, where)
    c.lock()
    return c


def _update(node: mlc.ConfigDict, plain: dict, where: str):
    from xtreme_jax import config as C
    if not isinstance(plain, dict):
        raise StudyError(f"{where}: expected an object, got {type(plain).__name__}")
    for key, value in plain.items():
        path = f"{where}.{key}" if where else key
        if key not in node:
            raise StudyError(f"{path}: no such config field (have {', '.join(sorted(node.keys()))})")
        current = node[key]
        if isinstance(current, mlc.ConfigDict):
            _update(current, value, path)
        elif key == "tasks" and isinstance(current, list):
            template = (lambda: C.eval_task("")) if where.endswith("evaluate") else (lambda: C.task_entry(""))
            entries = []
            for i, v in enumerate(value):
                e = template()
                _update(e, v, f"{path}[{i}]")
                entries.append(e)
            node[key] = entries
        else:
            if isinstance(current, tuple) and isinstance(value, list):
                value = tuple(value)
            try:
                node[key] = value
            except (TypeError, ValueError) as e:
                raise StudyError(f"{path}={value!r}: {e}") from None


def expand(study) -> tuple[list[Point], list[tuple[Point, Point]]]:
    """(unique points, [(collapsed point, the point it is identical to)])."""
    if not study.recipe:
        raise StudyError("config.recipe is empty: name the config file that builds one run")
    seeds = [int(s) for s in study.seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise StudyError(f"config.seeds={tuple(study.seeds)}: give distinct seeds")
    points, by_hash, collapsed = [], {}, []
    for labels, args, overrides in combinations(study):
        for seed in seeds:
            try:
                config = apply_floors(resolve(study.recipe, args, overrides, seed), study.get("floor", ()))
            except StudyError as e:
                raise StudyError(f"point ({', '.join(f'{k}={v}' for k, v in labels.items())}, "
                                 f"seed={seed}): {e}") from None
            p = Point(labels, seed, args, overrides, to_plain(config))
            p.hash = config_hash(p.config)
            if p.hash in by_hash:
                by_hash[p.hash].aliases.append(labels)
                collapsed.append((p, by_hash[p.hash]))
                continue
            by_hash[p.hash] = p
            points.append(p)
    return points, collapsed


def phase_names(config: dict) -> list[str]:
    return [p.strip() for p in config["phases"].split(",") if p.strip()]


def trained_languages(config: dict) -> set[str]:
    """Languages a point's task training sees (intermediate and target data; MLM is pretraining)."""
    langs = set()
    for phase in ("intermediate", "target"):
        if phase in phase_names(config):
            langs |= {t["lang"] for t in config[phase]["tasks"]}
    return langs
