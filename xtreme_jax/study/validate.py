"""Every check a point must pass before any compute (plan and run call it):

- the run's own up-front validation (xtreme_jax.config.validate: tasks, languages, batch sizes);
- data present for every (task, split, language) the point trains or evaluates on, translate-train
  included (official / local files are read once per plan; hub data cannot be checked offline, so it
  is listed as data the plan needs);
- a training set at least as large as the requested subsample (else the point silently trains on
  less than it says, the same data as the `all` point);
- every task's maximum length within the model's positions;
- no intermediate data containing the target's training data (MNLI is XNLI's training set, ANLI+
  contains MNLI: a "gain" from them is the target data seen twice);
- no task training in a language the study reserves as unseen.
"""
from __future__ import annotations

import json
import os
import types

from xtreme_jax.models.hub import HUB_CONFIGS, hub_config
from xtreme_jax.study.expand import Point, phase_names, run_config
from xtreme_jax.study.spec import StudyError

# Data sets an intermediate or target training task is built from, where that is more than itself.
CONTAINS = {"anli+": ("anli", "mnli", "snli"), "mnli_easy": ("mnli",), "mnli_hard": ("mnli",),
            "anli_r1": ("anli",), "anli_r2": ("anli",), "anli_r3": ("anli",)}


def _shape(hf: dict) -> dict:
    """The shape of an encoder the studies need, from its config.json."""
    return dict(layers=hf["num_hidden_layers"], hidden=hf["hidden_size"], ffn=hf["intermediate_size"],
                positions=hf["max_position_embeddings"], style="bert" if hf.get("model_type") == "bert" else "roberta")


# Encoders a full-scale study names, for offline checks and the cost model (models/hub.py: their
# hub config.json).
KNOWN_MODELS = {name: _shape(hf) for name, hf in HUB_CONFIGS.items()}


def model_shape(config: dict) -> dict:
    """Layers, widths and positions of a point's encoder: a known hub id, a local HF directory, or
    a size preset for random init."""
    m = config["model"]
    name = m["pretrained"]
    if name:
        hf = hub_config(name)
        if hf:
            return dict(_shape(hf), name=hf["_name_or_path"])
        cfg = os.path.join(name, "config.json")
        if os.path.isfile(cfg):
            return dict(_shape(json.load(open(cfg))), name=name)
        raise StudyError(f"model.pretrained={name!r}: not a known hub id ({sorted(KNOWN_MODELS)}) nor a "
                         "local HF directory; add its config.json to xtreme_jax/models/hub.py:HUB_CONFIGS")
    from xtreme_jax.models.encoder import preset
    try:
        p = preset(m["size"])
    except ValueError as e:
        raise StudyError(f"model.size: {e}") from None
    return dict(layers=p.num_layers, hidden=p.hidden_size, ffn=p.intermediate_size,
                positions=p.max_position_embeddings, style=p.position_style, name=m["size"])


def datasets(name: str) -> set[str]:
    return {name, *CONTAINS.get(name, ())}


class DataCheck:
    """Looks each (task, split, language, source) up once: example counts of files found, errors
    for files missing or unreadable, hub data listed (not checked offline)."""

    def __init__(self):
        self.counts, self.errors, self.hub, self.files = {}, {}, {}, {}

    def require(self, task_name: str, split: str, lang: str, source: dict) -> int | None:
        from xtreme_jax.data.errors import DataError
        from xtreme_jax.data.sources import Source
        from xtreme_jax.tasks import get_task
        key = (task_name, split, lang, source.get("type"), source.get("path"), source.get("config"))
        if key in self.counts or key in self.errors or key in self.hub or key in self.files:
            return self.counts.get(key)
        try:
            task = get_task(task_name)
            src = Source(**{k: source.get(k, "") or "" for k in ("type", "path", "config", "split")})
            if src.type in ("hub", "tfds"):
                task.check_split(split)
                task.check_language(lang, None, split)
                if src.type == "hub" and not src.path and (task.hub is None or split in task.translate_splits):
                    # CCGbank (LDC), XTREME's translations (gs://xtreme_translations): files only
                    why = "translate-train data" if split in task.translate_splits else "no hub dataset"
                    self.files[key] = f"{why}: give the files in the official layout (data=DIR)"
                    return None
                specs = task.hub(split, lang) if (src.type == "hub" and task.hub and not src.path) else []
                self.hub[key] = [f"{h.repo}[{h.config}]/{h.split}" for h in specs] or [src.describe()]
                return None
            self.counts[key] = len(task.load_examples(split, lang, source=src))
        except (DataError, OSError, ValueError, KeyError) as e:
            self.errors[key] = (str(e).splitlines() or [""])[0]
        return self.counts.get(key)

    def needed(self) -> list[str]:
        """Hub data the plan needs (one line per task/split/language)."""
        return sorted(f"{k[0]} {k[1]} {k[2]}: {', '.join(v)}" for k, v in self.hub.items())

    def needed_files(self) -> list[str]:
        """Data that only local files can provide (one line per task/split/language)."""
        return sorted(f"{k[0]} {k[1]} {k[2]}: {v}" for k, v in self.files.items())


def eval_languages(config: dict, entry: dict) -> list[str]:
    from xtreme_jax.data.sources import Source
    from xtreme_jax.tasks import get_task
    langs = [l for l in (entry.get("languages") or config["evaluate"]["languages"]).split(",") if l]
    if langs:
        return langs
    src = entry["source"]
    task = get_task(entry["name"])
    if src["type"] in ("official", "local") and src.get("path"):  # a copy may list its own (languages.txt)
        return list(task.language_list(Source(**{k: src.get(k, "") or "" for k in ("type", "path", "config", "split")})))
    return list(task.languages)


def check_point(point: Point, study, data: DataCheck, num_devices: int = 1) -> list[str]:
    """Problems of one point (empty if none)."""
    from xtreme_jax import config as config_lib
    cfg = point.config
    problems = []
    try:
        config_lib.validate(run_config(cfg), num_devices)
    except (config_lib.ConfigError, ValueError) as e:
        return [str(e)]
    phases = phase_names(cfg)
    if cfg.get("ablate"):
        return [f"config.ablate={cfg['ablate']!r}: a study point is one run (the study compares with and "
                "without itself); give the recipe one arm, e.g. configs/demo.py's arm=with"]
    try:
        shape = model_shape(cfg)
        config_lib.validate_lengths(run_config(cfg), types.SimpleNamespace(
            pad_token_id=1 if shape["style"] == "roberta" else 0, position_style=shape["style"],
            max_position_embeddings=shape["positions"]))
    except (StudyError, config_lib.ConfigError) as e:
        return [str(e)]

    for phase in (p for p in phases if p != "evaluate"):
        for i, t in enumerate(cfg[phase]["tasks"]):
            n = data.require(t["name"], t["split"], t["lang"], t["source"])
            if n is not None and t["max_examples"] and t["max_examples"] > n:
                problems.append(f"{phase}.tasks[{i}] ({t['name']} {t['split']} {t['lang']}): max_examples="
                                f"{t['max_examples']} but the data has only {n} examples: the point would train "
                                "on all of them while its label says more (another size's point, or 0 = all)")
    if "evaluate" in phases:
        for i, e in enumerate(cfg["evaluate"]["tasks"]):
            try:
                langs = eval_languages(cfg, e)
            except Exception as err:  # a missing languages.txt, unknown task: said, not raised
                problems.append(f"evaluate.tasks[{i}] ({e['name']}): {(str(err).splitlines() or [''])[0]}")
                langs = []
            for lang in langs:
                data.require(e["name"], cfg["evaluate"]["split"], lang, e["source"])

    # Intermediate data that contains the target's training data.
    if "intermediate" in phases and "target" in phases:
        target_data = set().union(*(datasets(t["name"]) for ph in ("pretarget", "target") if ph in phases
                                    for t in cfg[ph]["tasks"]))
        for i, t in enumerate(cfg["intermediate"]["tasks"]):
            shared = datasets(t["name"]) & target_data
            if shared:
                targets = sorted({t2["head"] or t2["name"] for t2 in cfg["target"]["tasks"]})
                problems.append(f"intermediate.tasks[{i}] ({t['name']}) contains {'/'.join(sorted(shared))}, the "
                                f"training data of the target {'/'.join(targets)}: its gain would be the target "
                                "data seen twice; choose another intermediate task")
    unseen = [l for l in str(study.unseen).replace("+", ",").split(",") if l]
    for phase in ("intermediate", "target"):
        if phase in phases:
            for i, t in enumerate(cfg[phase]["tasks"]):
                if t["lang"] in unseen:
                    problems.append(f"{phase}.tasks[{i}] ({t['name']}) trains on {t['lang']!r}, which the study "
                                    f"reserves as an unseen evaluation language (config.unseen)")
    return problems


def validate_points(points, study, num_devices: int = 1) -> tuple[DataCheck, list[str]]:
    """(data check, one message per problem, naming the point), data errors included."""
    data = DataCheck()
    problems = []
    for p in points:
        before = set(data.errors)
        for msg in check_point(p, study, data, num_devices):
            problems.append(f"point ({p.describe()}): {msg}")
        for key in sorted(set(data.errors) - before):
            problems.append(f"point ({p.describe()}): data {key[0]} {key[1]} {key[2]}: {data.errors[key]}")
    return data, problems
