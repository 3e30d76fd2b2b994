"""Zero-shot gain from English intermediate training in the demo world, over several seeds.

    python tools/demo_gain.py --workdir runs/demo_gain --seeds 0,1,2,3,4

For each seed: one MLM phase (`configs/demo.py`, phases=mlm), copied into two fresh run
directories, then `arm=without` (mlm -> target -> evaluate) and `arm=with` (mlm -> intermediate
-> target -> evaluate), each through `python -m xtreme_jax.main`. Both arms of a seed thus start
from the very same encoder. Then, per language: test accuracy without and with, and the gain,
as mean +- std over seeds with a 95% bootstrap CI over seeds (numpy, fixed seed); the same for the
mean gain over the languages that share English's function words (`SHARED_FUNCTION_WORDS`), over
those that share nothing but names and digits, and for each intermediate task's English dev
accuracy. Writes DIR/gain.json and DIR/gain.md and prints the table. Re-running resumes: finished
phases are reused.

Options: --config_args (extra configs/demo.py args for both arms, e.g. `size=mini`), --override
(extra --config.x=y flags for both arms, repeatable), --launcher (a command prefix for every run,
e.g. `flock /tmp/heavy.lock` or `nice`).
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from xtreme_jax.data.demo_world import LANGS, SHARED_FUNCTION_WORDS  # noqa: E402

RELATED = [l for l in LANGS[1:] if l in SHARED_FUNCTION_WORDS]
UNRELATED = [l for l in LANGS[1:] if l not in SHARED_FUNCTION_WORDS]


def bootstrap_ci(values, n=10000, seed=0):
    """95% percentile bootstrap CI of the mean, resampling seeds with replacement."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def stats(values):
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "ci95": bootstrap_ci(v), "n": len(v), "values": [float(x) for x in v]}


def run(cmd, log_path, launcher):
    full = shlex.split(launcher) + cmd if launcher else cmd
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(shlex.quote(c) for c in full) + "\n")
        log.flush()
        p = subprocess.run(full, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                           env=dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", "")))
    if p.returncode:
        sys.exit(f"error: run failed (exit {p.returncode}); see {log_path}")


def main_cmd(args, arm, seed, workdir, extra=()):
    cfg_args = ",".join(filter(None, [f"arm={arm}", args.config_args]))
    return [sys.executable, "-m", "xtreme_jax.main", f"--config={args.config}:{cfg_args}",
            f"--workdir={workdir}", f"--config.seed={seed}",
            f"--config.data.cache_dir={os.path.join(args.workdir, 'cache')}", *args.override, *extra]


def inter_dev(run_dir):
    """Each intermediate task's English dev accuracy at the last validation."""
    path = os.path.join(run_dir, "intermediate", "metrics", "train.jsonl")
    last = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if "dev/score" in rec:
                last = rec
    return {k.split("/")[1]: v * 100 for k, v in last.items() if k.endswith("/accuracy") and "." not in k.split("/")[1]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--config", default="configs/demo.py")
    ap.add_argument("--config_args", default="")
    ap.add_argument("--override", action="append", default=[])
    ap.add_argument("--launcher", default="")
    args = ap.parse_args(argv)
    args.workdir = os.path.abspath(args.workdir)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    os.makedirs(args.workdir, exist_ok=True)
    log_path = os.path.join(args.workdir, "runs.log")
    scores = {arm: {l: [] for l in LANGS} for arm in ("without", "with")}
    dev = {}
    for seed in seeds:
        base = os.path.join(args.workdir, f"seed{seed}")
        run(main_cmd(args, "with", seed, os.path.join(base, "mlm_only"), ["--config.phases=mlm"]),
            log_path, args.launcher)
        for arm in ("without", "with"):
            wd = os.path.join(base, arm)
            if not os.path.isdir(os.path.join(wd, "mlm")):
                shutil.copytree(os.path.join(base, "mlm_only", "mlm"), os.path.join(wd, "mlm"))
            run(main_cmd(args, arm, seed, wd), log_path, args.launcher)
            res = json.load(open(os.path.join(wd, "evaluate", "results", "results.json")))["results"]
            for l in LANGS:
                scores[arm][l].append(res["demo_nli"][l]["accuracy"])
        for task, acc in inter_dev(os.path.join(base, "with")).items():
            dev.setdefault(task, []).append(acc)
        print(f"seed {seed}: " + "  ".join(f"{l} {scores['without'][l][-1]:.1f}->{scores['with'][l][-1]:.1f}"
                                           for l in LANGS), flush=True)

    table = {}
    for l in LANGS:
        w0, w1 = np.array(scores["without"][l]), np.array(scores["with"][l])
        table[l] = {"without": stats(w0), "with": stats(w1), "gain": stats(w1 - w0)}
    for name, group in (("related_avg", RELATED), ("unrelated_avg", UNRELATED), ("non_english_avg", LANGS[1:])):
        w0 = np.mean([scores["without"][l] for l in group], axis=0)
        w1 = np.mean([scores["with"][l] for l in group], axis=0)
        table[name] = {"without": stats(w0), "with": stats(w1), "gain": stats(w1 - w0), "languages": group}
    out = {"seeds": seeds, "config": args.config, "config_args": args.config_args, "override": args.override,
           "test_accuracy": table, "intermediate_dev_accuracy": {t: stats(v) for t, v in dev.items()}}
    with open(os.path.join(args.workdir, "gain.json"), "w") as f:
        json.dump(out, f, indent=2)
    md = render(out)
    with open(os.path.join(args.workdir, "gain.md"), "w") as f:
        f.write(md)
    print(md)


def render(out):
    f = lambda s: f"{s['mean']:.1f} ± {s['std']:.1f}"  # noqa: E731
    lines = [f"demo_nli test accuracy (%), {len(out['seeds'])} seeds (mean ± std over seeds; "
             "gain CI: 95% bootstrap over seeds)", "",
             "| language | without | with | gain | gain 95% CI |", "|---|---|---|---|---|"]
    for l, r in out["test_accuracy"].items():
        name = l if l in LANGS else f"{l} ({' '.join(r['languages'])})"
        lo, hi = r["gain"]["ci95"]
        lines.append(f"| {name} | {f(r['without'])} | {f(r['with'])} | {r['gain']['mean']:+.1f} ± "
                     f"{r['gain']['std']:.1f} | [{lo:+.1f}, {hi:+.1f}] |")
    lines += ["", "intermediate tasks, English dev accuracy (%) at the end of the intermediate phase: " +
              ", ".join(f"{t} {f(s)}" for t, s in out["intermediate_dev_accuracy"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
