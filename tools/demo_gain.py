"""Zero-shot gain from English intermediate training in the demo world, over several seeds.

    python tools/demo_gain.py --workdir runs/demo_gain --seeds 0,1,2,3,4

For each seed, the README's main command with `--config.seed=SEED`,

    python -m xtreme_jax.main --config=configs/demo.py --workdir=DIR/seedSEED --config.seed=SEED

which (arm=both, config.ablate="intermediate", xtreme_jax/ablation.py) trains the MLM phase once
(DIR/seedSEED/shared), then the target task with and without the English intermediate phase from
that same encoder (with/, without/), and evaluates both zero-shot in every language. Then, per
language: test accuracy without and with, and the gain, as mean ± std over seeds with a 95%
bootstrap CI over seeds (numpy, fixed seed); the same for the mean over the languages that share
English's function words (`SHARED_FUNCTION_WORDS`, the "related" languages), over those that share
nothing but names and digits ("unrelated"), and over all eight; each intermediate task's English dev
accuracy at the end of its phase; the cross-lingual gap (English minus the related mean) per arm and
its reduction; and each seed's wall time, CPU time (user + system of the run and
its children) and load average. Writes DIR/gain.json and DIR/gain.md and prints the table.
Re-running resumes: finished phases (and their recorded times) are reused.

Options: --config_args (configs/demo.py args, e.g. `size=mini`), --override (extra --config.x=y
flags, repeatable), --launcher (a command prefix for every run, e.g. `nice`).
"""
import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from xtreme_jax.data.demo_world import LANGS, SHARED_FUNCTION_WORDS  # noqa: E402

RELATED = [l for l in LANGS[1:] if l in SHARED_FUNCTION_WORDS]
UNRELATED = [l for l in LANGS[1:] if l not in SHARED_FUNCTION_WORDS]
GROUPS = (("related", RELATED), ("unrelated", UNRELATED), ("all non-English", LANGS[1:]))
ARMS = ("without", "with")


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


def seed_command(args, seed):
    config = f"{args.config}:{args.config_args}" if args.config_args else args.config
    return [sys.executable, "-m", "xtreme_jax.main", f"--config={config}",
            f"--workdir={os.path.join(args.workdir, f'seed{seed}')}", f"--config.seed={seed}", *args.override]


def run(cmd, log_path, launcher):
    """Runs cmd (output to log_path); returns its wall time, CPU time and the load averages around it."""
    full = shlex.split(launcher) + cmd if launcher else cmd
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(shlex.quote(c) for c in full) + "\n")
        log.flush()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
        load0, t0 = os.getloadavg(), time.time()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run(full, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"error: run failed (exit {p.returncode}); see {log_path}")
    return {"wall_s": time.time() - t0, "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "load_before": list(load0), "load_after": list(os.getloadavg())}


def inter_dev(run_dir):
    """Each intermediate task's English dev accuracy (%) at the last validation of the phase."""
    last = {}
    with open(os.path.join(run_dir, "intermediate", "metrics", "train.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if "dev/score" in rec:
                last = rec
    return {k.split("/")[1]: v * 100 for k, v in last.items()
            if k.endswith("/accuracy") and "." not in k.split("/")[1]}


def measure(args):
    seeds = [int(s) for s in args.seeds.split(",") if s]
    os.makedirs(args.workdir, exist_ok=True)
    log_path = os.path.join(args.workdir, "runs.log")
    scores = {arm: {l: [] for l in LANGS} for arm in ARMS}
    dev, timing = {}, {}
    for seed in seeds:
        wd = os.path.join(args.workdir, f"seed{seed}")
        timing_path = os.path.join(wd, "timing.json")
        done = os.path.exists(timing_path)
        t = run(seed_command(args, seed), log_path, args.launcher)
        if done:  # resumed: keep the time of the run that did the work
            with open(timing_path) as f:
                t = json.load(f)
        else:
            with open(timing_path, "w") as f:
                json.dump(t, f)
        timing[seed] = t
        for arm in ARMS:
            with open(os.path.join(wd, arm, "evaluate", "results", "results.json")) as f:
                res = json.load(f)["results"]["demo_nli"]
            for l in LANGS:
                scores[arm][l].append(res[l]["accuracy"])
        for task, acc in inter_dev(os.path.join(wd, "with")).items():
            dev.setdefault(task, []).append(acc)
        print(f"seed {seed} ({t['wall_s']:.0f} s): " + "  ".join(
            f"{l} {scores['without'][l][-1]:.1f}->{scores['with'][l][-1]:.1f}" for l in LANGS), flush=True)
    table = {}
    for l in LANGS:
        w0, w1 = np.array(scores["without"][l]), np.array(scores["with"][l])
        table[l] = {"without": stats(w0), "with": stats(w1), "gain": stats(w1 - w0)}
    for name, group in GROUPS:
        w0, w1 = (np.mean([scores[arm][l] for l in group], axis=0) for arm in ARMS)
        table[name] = {"without": stats(w0), "with": stats(w1), "gain": stats(w1 - w0), "languages": group}
    # English minus the related mean, per arm: the cross-lingual gap. Its reduction (= related gain -
    # English gain) is the part of the zero-shot gain that better English alone does not explain.
    gap = {arm: np.array(scores[arm]["en"]) - np.mean([scores[arm][l] for l in RELATED], axis=0) for arm in ARMS}
    transfer_gap = {"without": stats(gap["without"]), "with": stats(gap["with"]),
                    "reduction": stats(gap["without"] - gap["with"])}
    return {"seeds": seeds, "command": " ".join(shlex.quote(c) for c in seed_command(args, "SEED")),
            "transfer_gap": transfer_gap, "test_accuracy": table,
            "intermediate_dev_accuracy": {t: stats(v) for t, v in dev.items()}, "timing": timing}


def render(out):
    f = lambda s: f"{s['mean']:.1f} ± {s['std']:.1f}"  # noqa: E731
    lines = [f"demo_nli test accuracy (%), {len(out['seeds'])} seeds {out['seeds']}: mean ± std over seeds; "
             "gain CI: 95% bootstrap over seeds", "",
             "| language | without | with | gain | gain 95% CI |", "|---|---|---|---|---|"]
    for l, r in out["test_accuracy"].items():
        name = l if l in LANGS else f"**{l}** ({' '.join(r['languages'])})"
        lo, hi = r["gain"]["ci95"]
        lines.append(f"| {name} | {f(r['without'])} | {f(r['with'])} | {r['gain']['mean']:+.1f} ± "
                     f"{r['gain']['std']:.1f} | [{lo:+.1f}, {hi:+.1f}] |")
    per_seed = ", ".join(f"{v:+.1f}" for v in out["test_accuracy"]["related"]["gain"]["values"])
    en = ", ".join(f"{v:.1f}" for v in out["test_accuracy"]["en"]["without"]["values"])
    times = list(out["timing"].values())
    g = out["transfer_gap"]
    lo, hi = g["reduction"]["ci95"]
    lines += ["", f"Cross-lingual gap (English minus the related mean): without {f(g['without'])}, with "
              f"{f(g['with'])}; reduction {g['reduction']['mean']:+.1f} ± {g['reduction']['std']:.1f} "
              f"[{lo:+.1f}, {hi:+.1f}] (related gain minus English gain)."]
    lines += ["", f"Related-language gain per seed: {per_seed}. English without intermediate training, per "
              f"seed: {en}.", "",
              "Intermediate tasks, English dev accuracy (%) at the end of the intermediate phase: " +
              ", ".join(f"{t} {f(s)}" for t, s in out["intermediate_dev_accuracy"].items()), "",
              f"Per seed (one run of the command): wall {stats([t['wall_s'] for t in times])['mean']:.0f} s "
              f"(min {min(t['wall_s'] for t in times):.0f}, max {max(t['wall_s'] for t in times):.0f}), CPU "
              f"{stats([t['cpu_s'] for t in times])['mean']:.0f} s; 1-min load average "
              f"{min(min(t['load_before'][0], t['load_after'][0]) for t in times):.2f}-"
              f"{max(max(t['load_before'][0], t['load_after'][0]) for t in times):.2f} (before/after each run).",
              "", f"Command per seed: `{out['command']}`", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--config", default="configs/demo.py")
    ap.add_argument("--config_args", default="", help="configs/demo.py args (arm=both is the default)")
    ap.add_argument("--override", action="append", default=[], help="--config.x=y, repeatable")
    ap.add_argument("--launcher", default="", help="command prefix for every run")
    args = ap.parse_args(argv)
    args.workdir = os.path.abspath(args.workdir)
    out = measure(args)
    with open(os.path.join(args.workdir, "gain.json"), "w") as f:
        json.dump(out, f, indent=2)
    md = render(out)
    with open(os.path.join(args.workdir, "gain.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
