"""The study config (configs/studies/NAME.py) and how it turns into points.

A study config is an ml_collections ConfigDict:

    name, question, scale        what it is about ("tiny" or "full")
    recipe                       config file whose get_config(args) builds one run (configs/stilts.py,
                                 configs/demo.py), path relative to the repository
    fixed                        recipe args shared by every point, "k=v,k=v"
    set                          run-config overrides for every point, ("target.lr=2e-5", ...)
    factors.NAME                 the levels of one factor, either a tuple of values of the recipe
                                 arg NAME, or label -> bundle: a dict whose values are "k=v,k=v"
                                 strings (recipe args; keys with a dot are run-config overrides,
                                 e.g. model.pretrained=FacebookAI/roberta-large)
    prefix.{arg,order,count}     optional: recipe arg `arg` = the first `count` items of the
                                 `+`-list given by factor `order` (languages added in order);
                                 `order` levels are label -> "a+b+c", `count` levels are counts
    prefix.scale                 run-config overrides "path=N,..." set to N x (1 + count) unless a
                                 factor level of the point sets that path itself (e.g.
                                 intermediate steps, so that each entry keeps N steps)
    seeds                        training seeds, crossed with every factor combination
    encoder_seed                 seed of shared pretraining (MLM) phases: fixed like a released
                                 checkpoint; -1 = each seed pretrains its own encoder
    unseen                       languages that must stay out of every point's task training
    metric                       results metric per task ("accuracy"; QA "(exact_match+f1)/2")
    floor                        run-config minimums "path=N": a point's value is raised to at least
                                 N (a minimum of target steps at small n), never lowered
    analysis                     analysis kind (= the study) and its parameters, see analyses/
    power.{seed_sd,source,effect,contrast_sd,units_per_seed,estimand,alpha,power}
                                 the headline's power analysis printed by plan (power.py)
    cost.{accelerator,chips}     what the cost estimate is for

Points are factor combinations x seeds; each is resolved by calling the recipe and applying `set`
and the seed (expand.py).
"""
from __future__ import annotations

import ast
import itertools

import ml_collections as mlc

SCALES = ("tiny", "full")


class StudyError(ValueError):
    """Bad study config or point; the CLI prints it as one `error:` line."""


def study(name: str, question: str, scale: str) -> mlc.ConfigDict:
    if scale not in SCALES:
        raise StudyError(f"scale={scale!r}; choose from {SCALES}")
    return mlc.ConfigDict(dict(
        name=name, question=question, scale=scale, recipe="", fixed="", set=(),
        factors=mlc.ConfigDict(), prefix=mlc.ConfigDict(dict(arg="", order="", count="", scale="")),
        seeds=(0, 1, 2), encoder_seed=0, unseen="", metric="accuracy", floor=(),
        analysis=mlc.ConfigDict(dict(kind=name)),
        cost=mlc.ConfigDict(dict(accelerator="cpu" if scale == "tiny" else "h100", chips=1)),
        power=mlc.ConfigDict(dict(seed_sd=0.0, source="", effect=1.0, contrast_sd=1.0, units_per_seed=1,
                                  estimand="", alpha=0.05, power=0.8))))


def parse_args(arg: str | None, **defaults) -> dict:
    """`:key=value,...` of a study config file; unknown keys are refused."""
    out = dict(defaults)
    for kv in filter(None, (arg or "").split(",")):
        k, sep, v = kv.partition("=")
        if not sep or k not in out:
            raise StudyError(f"study arg {kv!r}: expected key=value with key in {sorted(out)}")
        out[k] = v
    return out


def parse_bundle(text: str, where: str) -> tuple[dict, dict]:
    """"k=v,k=v" -> (recipe args, run-config overrides); keys with a dot are overrides whose
    values are Python literals when they parse as one (numbers, tuples), strings otherwise."""
    args, overrides = {}, {}
    for kv in filter(None, (text or "").split(",")):
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise StudyError(f"{where}: {kv!r} is not key=value")
        if "." in k:
            overrides[k] = literal(v)
        else:
            args[k] = v
    return args, overrides


def literal(v: str):
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError):
        return v


def factor_levels(config) -> dict[str, list[tuple[str, dict, dict]]]:
    """factor -> [(label, recipe args, overrides)], factors in name order. The prefix `order`
    factor's dict values are plain `+`-lists, not bundles."""
    out = {}
    for name in sorted(config.factors.keys()):
        levels = config.factors[name]
        if isinstance(levels, (mlc.ConfigDict, dict)) and name == config.prefix.order:
            items = [(str(k), {name: str(v)}, {}) for k, v in levels.items()]
        elif isinstance(levels, (mlc.ConfigDict, dict)):
            items = [(str(k), *parse_bundle(v, f"config.factors.{name}.{k}")) for k, v in levels.items()]
        elif isinstance(levels, (tuple, list)):
            items = [(str(v), {name: str(v)}, {}) for v in levels]
        else:
            raise StudyError(f"config.factors.{name}={levels!r}: give a tuple of levels or a dict "
                             "label -> 'k=v,...'")
        if not items:
            raise StudyError(f"config.factors.{name} has no levels")
        if len({label for label, *_ in items}) != len(items):
            raise StudyError(f"config.factors.{name}: two levels share a label")
        out[name] = items
    return out


def combinations(config) -> list[tuple[dict, dict, dict]]:
    """Every factor combination: (labels {factor: label}, recipe args, overrides), prefix applied."""
    levels = factor_levels(config)
    fixed, fixed_over = parse_bundle(config.fixed, "config.fixed")
    for s in config.set:
        k, sep, v = str(s).partition("=")
        if not sep or "." not in k:
            raise StudyError(f"config.set entry {s!r}: expected 'path.to.field=value'")
        fixed_over[k] = literal(v)
    p = config.prefix
    if p.arg and (p.order not in levels or p.count not in levels):
        raise StudyError(f"config.prefix: factors {p.order!r} and {p.count!r} must both exist "
                         f"(have {sorted(levels)})")
    out = []
    for combo in itertools.product(*levels.values()):
        labels, args, over, by_factor = {}, dict(fixed), dict(fixed_over), set()
        for name, (label, a, o) in zip(levels, combo):
            labels[name] = label
            if p.arg and name == p.order:
                continue
            if p.arg and name == p.count:
                continue
            args.update(a)
            over.update(o)
            by_factor |= set(o)
        if p.arg:
            order = dict((lab, a[p.order]) for lab, a, _ in levels[p.order])[labels[p.order]]
            count = labels[p.count]
            if not count.isdigit():
                raise StudyError(f"config.factors.{p.count}: level {count!r} is not a count")
            items = [x for x in order.split("+") if x]
            if int(count) > len(items):
                raise StudyError(f"config.factors.{p.count}={count} exceeds the {len(items)} items of "
                                 f"order {labels[p.order]!r}")
            args[p.arg] = "+".join(items[:int(count)])
            for path, n in parse_bundle(p.scale, "config.prefix.scale")[1].items():
                if not isinstance(n, int):
                    raise StudyError(f"config.prefix.scale: {path}={n!r} is not a whole number")
                if path not in by_factor:   # a factor level that sets it wins (a fixed-total-budget arm)
                    over[path] = n * (1 + int(count))
        out.append((labels, args, over))
    return out

