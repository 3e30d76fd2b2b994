"""The follow-up studies built on X-STILTs, each a grid of configs/stilts.py settings.

    python configs/studies.py target_size intermediate=mnli,target=pawsx,model=base > specs.txt
    launch/sweep.sh --name NAME --workdir-base gs://BUCKET/target_size --configs specs.txt
    --config=configs/studies.py:study=target_size,point=3,target=pawsx    (one point, directly)

Studies (extra args are passed on to configs/stilts.py; a point's own settings win):
  target_size     target training examples 1k..all, with and without the intermediate task
  model_size      base vs large, with and without the intermediate task
  difficulty      each intermediate task in turn, for one target (rank tasks by their gain)
  languages       0, 1, 2, 4, 8, 14 machine-translated non-English languages mixed into
                  intermediate training
  direct          English intermediate training vs direct target-language fine-tuning on
                  translate-train data (no intermediate task)
"""
import importlib.util
import os
import sys

_spec = importlib.util.spec_from_file_location("stilts", os.path.join(os.path.dirname(__file__), "stilts.py"))
stilts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stilts)

# XNLI's translate-train languages, most to least resourced (the order in which they are added).
TRANSLATED = ("de", "fr", "es", "ru", "zh", "ar", "hi", "tr", "vi", "th", "el", "bg", "ur", "sw")


def _points(study: str, base: dict) -> list[dict]:
    inter = base.get("intermediate", "mnli")
    with_without = ({"intermediate": inter}, {"intermediate": "none"})
    if study == "target_size":
        return [dict(w, target_examples=str(n)) for n in (1000, 2000, 5000, 10000, 20000, 0)
                for w in with_without]
    if study == "model_size":
        return [dict(w, model=m) for m in ("base", "large") for w in with_without]
    if study == "difficulty":
        return [{"intermediate": t} for t in stilts.INTERMEDIATE] + [{"intermediate": "none"}]
    if study == "languages":
        return [{"translated": "+".join(TRANSLATED[:k])} if k else {} for k in (0, 1, 2, 4, 8, 14)]
    if study == "direct":
        return [{"intermediate": inter, "target_langs": "en"},
                {"intermediate": "none", "target_langs": "en"},
                {"intermediate": "none", "target_langs": "+".join(("en",) + TRANSLATED)}]
    raise ValueError(f"configs/studies.py: unknown study {study!r}; choose from {STUDIES}")


STUDIES = ("target_size", "model_size", "difficulty", "languages", "direct")


def _parse(arg: str) -> dict:
    out = {}
    for kv in filter(None, (arg or "").split(",")):
        k, sep, v = kv.partition("=")
        if not sep:
            raise ValueError(f"configs/studies.py: {kv!r} is not key=value")
        out[k] = v
    return out


def point_args(study: str, extra: dict) -> list[str]:
    """configs/stilts.py argument strings, one per point of the study."""
    return [",".join(f"{k}={v}" for k, v in {**extra, **p}.items()) for p in _points(study, extra)]


def get_config(arg=None):
    a = _parse(arg)
    study, point = a.pop("study", ""), a.pop("point", "")
    if not study or not point.isdigit():
        raise ValueError("configs/studies.py needs study=NAME,point=N (list the points with "
                         "`python configs/studies.py NAME`)")
    points = point_args(study, a)
    if int(point) >= len(points):
        raise ValueError(f"configs/studies.py: study {study!r} has points 0..{len(points) - 1}, not {point}")
    return stilts.get_config(points[int(point)])


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[1] not in STUDIES:
        sys.exit(f"usage: python configs/studies.py {{{','.join(STUDIES)}}} [stilts args]")
    for args in point_args(sys.argv[1], _parse(sys.argv[2] if len(sys.argv) == 3 else "")):
        print(f"configs/stilts.py:{args}")
