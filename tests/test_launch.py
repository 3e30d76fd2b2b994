"""launch/ scripts: syntax, exact dry-run gcloud lines, clear errors, and that what a dry run
prints is exactly what a real run executes (against a fake gcloud). Offline; no gcloud needed."""
import os
import pathlib
import shlex
import subprocess
import tarfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
SCRIPTS = sorted(p for p in LAUNCH.iterdir() if p.suffix in (".sh", ".sbatch"))
ZONE = "us-central2-b"
CONFIG = "--config=configs/stilts.py:intermediate=mnli,target=xnli,model=large"

# Records its arguments NUL-separated, one call per line, so tests see the exact argv.
FAKE = """#!/usr/bin/env bash
{ printf '%s\\0' "$(basename "$0")" "$@"; printf '\\n'; } >> "$FAKE_LOG"
if [[ $* == *describe* ]]; then echo "${FAKE_STATE:-READY}"; fi
"""


@pytest.fixture
def env(tmp_path):
    """Environment with a fake gcloud/ssh first on PATH and none of the scripts' variables set."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("gcloud", "ssh"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    keep = ("HOME", "LANG", "LC_ALL", "USER")
    e = {k: v for k, v in os.environ.items() if k in keep}
    e.update(PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_LOG=str(tmp_path / "calls.log"),
             TMPDIR=str(tmp_path), POLL_S="0")
    return e


def sh(script, *args, env, check=True, **extra_env):
    p = subprocess.run(["bash", str(LAUNCH / script), *args], env={**env, **extra_env},
                       capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"{script} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def dry(script, *args, env, **extra_env):
    p = sh(script, "--dry-run", *args, env=env, **extra_env)
    assert not os.path.exists(env["FAKE_LOG"]), "a dry run must not call gcloud or ssh"
    return p.stdout.splitlines()


def calls(env):
    if not os.path.exists(env["FAKE_LOG"]):
        return []
    raw = pathlib.Path(env["FAKE_LOG"]).read_bytes().decode()
    return [line.split("\0") for line in raw.split("\0\n") if line]


def remote_command(line):
    """The --command=... argument of a printed gcloud ssh line."""
    (cmd,) = [a for a in shlex.split(line) if a.startswith("--command=")]
    return cmd[len("--command="):]


# --------------------------------------------------------------------------- syntax, help

@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    p = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("script", [p.name for p in SCRIPTS if p.suffix == ".sh" and p.name != "common.sh"])
def test_help(script, env):
    p = sh(script, "--help", env=env)
    assert "usage: launch/" + script in p.stdout
    assert calls(env) == []


def test_scripts_are_executable():
    for p in SCRIPTS:
        if p.name != "common.sh" and p.suffix == ".sh":
            assert os.access(p, os.X_OK), p


# --------------------------------------------------------------------------- create / delete

def test_create_dry_run(env):
    assert dry("create.sh", "--name", "tpu1", "--project", "proj", "--accelerator-type", "v4-32", env=env) == [
        f"gcloud compute tpus tpu-vm create tpu1 --zone={ZONE} --project=proj "
        "--accelerator-type=v4-32 --version=tpu-ubuntu2204-base"]


def test_create_from_env_vars_and_equals_form(env):
    out = dry("create.sh", "--version=v2-alpha-tpuv5-lite", "--spot", "--no-wait", env=env,
              TPU_NAME="t2", ZONE="us-west4-a", ACCELERATOR_TYPE="v5litepod-16")
    assert out == ["gcloud compute tpus tpu-vm create t2 --zone=us-west4-a --accelerator-type=v5litepod-16 "
                   "--version=v2-alpha-tpuv5-lite --spot --async"]
    # DRY_RUN=1 is the same as --dry-run.
    p = sh("create.sh", env=env, DRY_RUN="1", TPU_NAME="t2")
    assert p.stdout.startswith("gcloud compute tpus tpu-vm create t2 ")
    assert calls(env) == []


def test_create_queued_dry_run(env):
    assert dry("create.sh", "--name", "q1", "--queued", "--spot", "--accelerator-type", "v6e-8",
               "--version", "v2-alpha-tpuv6e", env=env) == [
        f"gcloud compute tpus queued-resources create q1 --zone={ZONE} --accelerator-type=v6e-8 "
        "--runtime-version=v2-alpha-tpuv6e --node-id=q1 --spot",
        f"gcloud compute tpus queued-resources describe q1 --zone={ZONE} '--format=value(state.state)'"]


def test_create_queued_waits_until_active(env):
    sh("create.sh", "--name", "q1", "--queued", env=env, FAKE_STATE="ACTIVE")
    got = calls(env)
    assert [c[:5] for c in got] == [["gcloud", "compute", "tpus", "queued-resources", "create"],
                                    ["gcloud", "compute", "tpus", "queued-resources", "describe"]]
    p = sh("create.sh", "--name", "q1", "--queued", env=env, check=False, FAKE_STATE="FAILED")
    assert p.returncode == 2 and "q1 is FAILED" in p.stderr


def test_delete_dry_run(env):
    assert dry("delete.sh", "--name", "tpu1", "--yes", env=env) == [
        f"gcloud compute tpus tpu-vm delete tpu1 --zone={ZONE} --quiet"]
    assert dry("delete.sh", "--name", "q1", "--queued", "--project", "p", env=env) == [
        f"gcloud compute tpus queued-resources delete q1 --zone={ZONE} --project=p --force"]


@pytest.mark.parametrize("script,args", [
    ("create.sh", ["--name", "tpu1", "--project", "proj", "--spot"]),
    ("create.sh", ["--name", "q1", "--queued"]),
    ("delete.sh", ["--name", "tpu1", "--yes"]),
    ("run.sh", ["--name", "tpu1", "--workdir", "gs://b/r", "--env", "A=1 B=two", "--",
                CONFIG, "--config.note=it's a test"]),
    ("setup.sh", ["--name", "tpu1", "--repo", "https://example.com/x.git", "--ref", "main"]),
    ("gpu_ssh.sh", ["--hosts", "u@g0 g1", "--workdir", "/nfs/run", "--", CONFIG]),
])
def test_dry_run_prints_what_runs(script, args, env):
    """A real run (fake gcloud) executes exactly the argv lists that the dry run printed."""
    printed = [shlex.split(line) for line in dry(script, *args, env=env)]
    sh(script, *args, env=env, FAKE_STATE="ACTIVE")
    assert calls(env) == printed


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("script,args,message", [
    ("create.sh", [], "missing --name (or env TPU_NAME)"),
    ("create.sh", ["--name", "t", "--zone", ""], "missing --zone (or env ZONE)"),
    ("create.sh", ["--name"], "--name needs a value"),
    ("create.sh", ["--name", "t", "--acelerator-type", "v4-8"], "unknown flag --acelerator-type"),
    ("create.sh", ["--name", "t", "--spot=1"], "--spot is a switch"),
    ("create.sh", ["--name", "t", "v4-8"], "unexpected argument 'v4-8'"),
    ("setup.sh", [], "missing --name (or env TPU_NAME)"),
    ("setup.sh", ["--name", "t", "--ref", "main"], "--ref needs --repo"),
    ("run.sh", ["--name", "t", "--", CONFIG], "missing --workdir (or env WORKDIR)"),
    ("run.sh", ["--name", "t", "--workdir", "/tmp/run", "--", CONFIG], "--workdir must be a gs:// path"),
    ("run.sh", ["--name", "t", "--workdir", "gs://b/r"], "no program arguments"),
    ("run.sh", ["--name", "t", "--workdir", "gs://b/r", "--", CONFIG, "--workdir=gs://x"],
     "give the workdir with run.sh --workdir"),
    ("run.sh", ["--name", "t", "--workdir", "gs://b/r", "--env", "oops", "--", CONFIG], "--env: 'oops' is not K=V"),
    ("run.sh", ["--name", "t", "--workdir", "gs://b/r", "--run", "a b", "--", CONFIG], "RUN='a b' may only hold"),
    ("logs.sh", ["--name", "t"], "missing --run (or env RUN)"),
    ("logs.sh", ["--name", "t", "--run", "r", "--worker", "x"], "--worker must be a number or all"),
    ("stop.sh", ["--name", "t"], "missing --run (or env RUN)"),
    ("delete.sh", [], "missing --name (or env TPU_NAME)"),
    ("sweep.sh", ["--name", "t", "--", "configs/demo.py"], "missing --workdir-base (or env WORKDIR_BASE)"),
    ("sweep.sh", ["--name", "t", "--workdir-base", "gs://b/s"], "no configs"),
    ("sweep.sh", ["--name", "t", "--workdir-base", "gs://b/s", "--configs", "/nonexistent"], "no such file"),
    ("sweep.sh", ["--name", "t", "--workdir-base", "gs://b/s", "--", "configs/demo.py", "configs/demo.py"],
     "two specs map to the same workdir gs://b/s/demo"),
    ("gpu_ssh.sh", ["--workdir", "/nfs/r", "--", CONFIG], "missing --hosts (or env HOSTS)"),
])
def test_clear_errors(script, args, message, env):
    for mode in ([], ["--dry-run"]):
        p = sh(script, *mode, *args, env=env, check=False)
        assert p.returncode == 2, (p.stdout, p.stderr)
        assert message in p.stderr, p.stderr
        assert p.stdout == ""
    assert calls(env) == []


# --------------------------------------------------------------------------- setup

def test_setup_git_dry_run(env):
    (line,) = dry("setup.sh", "--name", "tpu1", "--repo", "https://github.com/me/xtreme_jax.git",
                  "--ref", "v1.0", env=env)
    assert line.startswith(f"gcloud compute tpus tpu-vm ssh tpu1 --zone={ZONE} --worker=all '--command=")
    assert remote_command(line) == (
        "set -e; [ -d ~/xtreme_jax/.git ] || git clone --quiet https://github.com/me/xtreme_jax.git ~/xtreme_jax; "
        "cd ~/xtreme_jax && git fetch --quiet origin v1.0 && git checkout --quiet --detach FETCH_HEAD && "
        "python3 -m pip install --upgrade pip && python3 -m pip install -e '.[tpu]'")


def test_setup_git_defaults_to_local_head(env):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        pytest.skip("not a git checkout")
    (line,) = dry("setup.sh", "--name", "tpu1", "--repo", "https://example.com/x.git", env=env)
    assert f"git fetch --quiet origin {head.stdout.strip()} " in remote_command(line)


def test_setup_copy_dry_run_and_tarball(env, tmp_path):
    tarball = tmp_path / "xtreme_jax-src-tpu1.tgz"
    lines = dry("setup.sh", "--name", "tpu1", "--project", "p", env=env)
    assert lines == [
        f"tar -czf {tarball} -C {ROOT} -T {tarball}.files",
        f"gcloud compute tpus tpu-vm scp {tarball} tpu1:xtreme_jax-src.tgz --zone={ZONE} --project=p --worker=all",
        f"gcloud compute tpus tpu-vm ssh tpu1 --zone={ZONE} --project=p --worker=all '--command=set -e; "
        "rm -rf ~/xtreme_jax && mkdir -p ~/xtreme_jax && tar -xzf ~/xtreme_jax-src.tgz -C ~/xtreme_jax && "
        "cd ~/xtreme_jax && python3 -m pip install --upgrade pip && python3 -m pip install -e '\\''.[tpu]'\\'''"]
    if not (ROOT / ".git").exists():
        return
    # A real run builds the tarball from the checkout: tracked files, no .git, nothing ignored.
    sh("setup.sh", "--name", "tpu1", env=env)
    with tarfile.open(tarball) as tf:
        names = set(tf.getnames())
    assert {"setup.py", "launch/setup.sh", "xtreme_jax/__init__.py"} <= names
    assert not any(n.startswith(".git/") or "__pycache__" in n for n in names)
    assert [c[:5] for c in calls(env)] == [["gcloud", "compute", "tpus", "tpu-vm", "scp"],
                                           ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]]


# --------------------------------------------------------------------------- run / logs / stop

def test_run_dry_run_detached_then_follows_logs(env):
    lines = dry("run.sh", "--name", "tpu1", "--workdir", "gs://bucket/mnli-xnli", "--", CONFIG, env=env)
    assert lines == [
        f"gcloud compute tpus tpu-vm ssh tpu1 --zone={ZONE} --worker=all '--command=set -e; cd ~/xtreme_jax; "
        "mkdir -p ~/xtreme_jax_logs; setsid nohup python3 -m xtreme_jax.main "
        "--config=configs/stilts.py:intermediate=mnli,target=xnli,model=large --workdir=gs://bucket/mnli-xnli "
        "> ~/xtreme_jax_logs/mnli-xnli.log 2>&1 < /dev/null & echo $! > ~/xtreme_jax_logs/mnli-xnli.pid'",
        f"gcloud compute tpus tpu-vm ssh tpu1 --zone={ZONE} --worker=0 "
        "'--command=tail -n +1 -F ~/xtreme_jax_logs/mnli-xnli.log'"]


def test_run_dry_run_foreground_and_options(env):
    lines = dry("run.sh", "--name", "tpu1", "--project", "p", "--workdir", "gs://b/r", "--run", "myrun",
                "--module", "xtreme_jax.evaluate", "--foreground", "--env", "JAX_TRACEBACK_FILTERING=off",
                "--", CONFIG, "--config.note=a b", env=env)
    assert lines == [
        f"gcloud compute tpus tpu-vm ssh tpu1 --zone={ZONE} --project=p --worker=all "
        "'--command=set -eo pipefail; cd ~/xtreme_jax; mkdir -p ~/xtreme_jax_logs; "
        "env JAX_TRACEBACK_FILTERING=off python3 -m xtreme_jax.evaluate "
        "--config=configs/stilts.py:intermediate=mnli,target=xnli,model=large '\\''--config.note=a b'\\'' "
        "--workdir=gs://b/r 2>&1 | tee ~/xtreme_jax_logs/myrun.log'"]
    assert dry("run.sh", "--name", "t", "--workdir", "gs://b/r", "--no-follow", "--", CONFIG, env=env)[1:] == []


def test_logs_and_stop_dry_run(env):
    assert dry("logs.sh", "--name", "tpu1", "--run", "r1", "--worker", "all", env=env) == [
        f"gcloud compute tpus tpu-vm ssh tpu1 --zone={ZONE} --worker=all "
        "'--command=tail -n +1 -F ~/xtreme_jax_logs/r1.log | sed -u \"s/^/$(hostname): /\"'"]
    assert dry("stop.sh", "--name", "tpu1", "--run", "r1", env=env) == [
        f"gcloud compute tpus tpu-vm ssh tpu1 --zone={ZONE} --worker=all "
        "'--command=kill -TERM -- -$(cat ~/xtreme_jax_logs/r1.pid) 2>/dev/null "
        "|| echo \"r1 is not running on $(hostname)\"'"]


def _wait_for(path, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.stat().st_size:
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an exited process whose new parent has not reaped it yet is a zombie: gone for us
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def test_remote_commands_work_in_a_shell(env, tmp_path):
    """Run the remote side of run.sh and stop.sh locally: the program starts detached with the
    exact arguments, writes its log and pid, and stop.sh's SIGTERM reaches it."""
    home = tmp_path / "home"
    (home / "xtreme_jax").mkdir(parents=True)
    fake_py = tmp_path / "fake_python"
    fake_py.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$HOME/args"\n'
                       'trap \'echo got TERM; exit 0\' TERM\necho started\nsleep 30 & wait\n')
    fake_py.chmod(0o755)
    (line,) = dry("run.sh", "--name", "t", "--workdir", "gs://b/r1", "--no-follow", "--",
                  CONFIG, "--config.note=it's", env=env, PYTHON=str(fake_py))
    remote_env = {**env, "HOME": str(home)}
    subprocess.run(["bash", "-c", remote_command(line)], env=remote_env, check=True, timeout=10)
    pid = int(_wait_for(home / "xtreme_jax_logs" / "r1.pid"))
    try:
        args = _wait_for(home / "args").splitlines()
        assert args == ["-m", "xtreme_jax.main", CONFIG, "--config.note=it's", "--workdir=gs://b/r1"]
        log = home / "xtreme_jax_logs" / "r1.log"
        assert "started" in _wait_for(log)

        (stop,) = dry("stop.sh", "--name", "t", "--run", "r1", env=env)
        subprocess.run(["bash", "-c", remote_command(stop)], env=remote_env, check=True, timeout=10)
        deadline = time.time() + 10
        while time.time() < deadline and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid), "stop.sh did not end the run"
        assert "got TERM" in log.read_text()
    finally:
        if _alive(pid):
            os.killpg(pid, 9)  # the group this test started
    # Stopping a run that has ended says so instead of failing (a reaped pid: nothing left).
    done = subprocess.Popen(["true"])
    done.wait()
    (home / "xtreme_jax_logs" / "gone.pid").write_text(f"{done.pid}\n")
    (stop,) = dry("stop.sh", "--name", "t", "--run", "gone", env=env)
    p = subprocess.run(["bash", "-c", remote_command(stop)], env=remote_env, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0 and "gone is not running on" in p.stdout


# --------------------------------------------------------------------------- sweep

def test_sweep_sequential_dry_run(env, tmp_path):
    specs = tmp_path / "specs.txt"
    specs.write_text("# X-STILTs on XNLI\n"
                     "configs/stilts.py:intermediate=mnli,target=xnli,model=large\n\n"
                     "configs/stilts.py:intermediate=qqp,target=xnli,model=large --config.seed=1  # seed 1\n")
    lines = dry("sweep.sh", "--name", "tpu1", "--workdir-base", "gs://b/sweep/", "--configs", str(specs),
                "--", "--config=configs/demo.py", env=env)
    cache = "env JAX_COMPILATION_CACHE_DIR=gs://b/sweep/jax_cache"  # one compile cache for the sweep
    assert [remote_command(line) for line in lines] == [
        f"set -eo pipefail; cd ~/xtreme_jax; mkdir -p ~/xtreme_jax_logs; {cache} python3 -m xtreme_jax.main "
        "--config=configs/stilts.py:intermediate=mnli,target=xnli,model=large "
        "--workdir=gs://b/sweep/stilts-intermediate-mnli-target-xnli-model-large "
        "2>&1 | tee ~/xtreme_jax_logs/stilts-intermediate-mnli-target-xnli-model-large.log",
        f"set -eo pipefail; cd ~/xtreme_jax; mkdir -p ~/xtreme_jax_logs; {cache} python3 -m xtreme_jax.main "
        "--config=configs/stilts.py:intermediate=qqp,target=xnli,model=large --config.seed=1 "
        "--workdir=gs://b/sweep/stilts-intermediate-qqp-target-xnli-model-large-seed-1 "
        "2>&1 | tee ~/xtreme_jax_logs/stilts-intermediate-qqp-target-xnli-model-large-seed-1.log",
        f"set -eo pipefail; cd ~/xtreme_jax; mkdir -p ~/xtreme_jax_logs; {cache} python3 -m xtreme_jax.main "
        "--config=configs/demo.py --workdir=gs://b/sweep/demo 2>&1 | tee ~/xtreme_jax_logs/demo.log"]
    assert all(line.startswith(f"gcloud compute tpus tpu-vm ssh tpu1 --zone={ZONE} --worker=all ")
               for line in lines)


def test_sweep_parallel_dry_run(env):
    lines = dry("sweep.sh", "--name", "sw", "--workdir-base", "gs://b/s", "--parallel", "--queued",
                "--accelerator-type", "v5litepod-8", "--version", "v2-alpha-tpuv5-lite",
                "--repo", "https://example.com/x.git", "--ref", "main",
                "--", "configs/demo.py", "configs/demo.py:tiny", env=env)
    heads = [" ".join(shlex.split(line)[:6]) for line in lines]
    create = "gcloud compute tpus queued-resources create"
    assert heads == [f"{create} sw-0", f"{create} sw-1",
                     "gcloud compute tpus queued-resources describe sw-0",
                     "gcloud compute tpus tpu-vm ssh sw-0", "gcloud compute tpus tpu-vm ssh sw-0",
                     "gcloud compute tpus queued-resources describe sw-1",
                     "gcloud compute tpus tpu-vm ssh sw-1", "gcloud compute tpus tpu-vm ssh sw-1"]
    assert lines[0] == (f"{create} sw-0 --zone={ZONE} --accelerator-type=v5litepod-8 "
                        "--runtime-version=v2-alpha-tpuv5-lite --node-id=sw-0")
    assert "git fetch --quiet origin main" in remote_command(lines[3])
    assert remote_command(lines[7]).endswith(
        "setsid nohup env JAX_COMPILATION_CACHE_DIR=gs://b/s/jax_cache python3 -m xtreme_jax.main "
        "--config=configs/demo.py:tiny --workdir=gs://b/s/demo-tiny "
        "> ~/xtreme_jax_logs/demo-tiny.log 2>&1 < /dev/null & echo $! > ~/xtreme_jax_logs/demo-tiny.pid")


def test_sweep_goes_on_after_a_failed_run(env, tmp_path):
    failing = tmp_path / "bin" / "gcloud"
    failing.write_text(FAKE + 'if [[ $* == *seed=1* ]]; then exit 1; fi\n')
    p = sh("sweep.sh", "--name", "t", "--workdir-base", "gs://b/s", "--",
           "configs/demo.py --config.seed=1", "configs/demo.py --config.seed=2", env=env, check=False)
    assert p.returncode == 2 and "failed: demo-seed-1" in p.stderr
    assert len(calls(env)) == 2


# --------------------------------------------------------------------------- GPU

def test_gpu_ssh_dry_run(env):
    lines = dry("gpu_ssh.sh", "--hosts", "me@gpu-a gpu-b", "--workdir", "gs://b/run", "--port", "2222",
                "--env", "NCCL_SOCKET_IFNAME=eth0", "--", CONFIG, env=env)
    expected = []
    for i, host in enumerate(["me@gpu-a", "gpu-b"]):
        expected.append(
            f"ssh {host} 'set -e; cd ~/xtreme_jax; mkdir -p ~/xtreme_jax_logs; setsid nohup env "
            f"JAX_COORDINATOR_ADDRESS=gpu-a:2222 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID={i} NCCL_SOCKET_IFNAME=eth0 "
            "python3 -m xtreme_jax.main --config=configs/stilts.py:intermediate=mnli,target=xnli,model=large "
            "--workdir=gs://b/run > ~/xtreme_jax_logs/run.log 2>&1 < /dev/null & echo $! > ~/xtreme_jax_logs/run.pid'")
    assert lines == expected


def test_gpu_slurm_gives_each_process_all_its_gpus():
    text = (LAUNCH / "gpu_slurm.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=1" in text
    assert "JAX_LOCAL_DEVICE_IDS" in text and "-m xtreme_jax.main" in text
    # The GPU list is built right: 0..n-1.
    p = subprocess.run(["bash", "-c", "gpus=4; seq -s, 0 $((gpus - 1))"], capture_output=True, text=True)
    assert p.stdout.strip() == "0,1,2,3"


def test_docs_cover_the_scripts():
    doc = (ROOT / "docs" / "launch.md").read_text()
    for p in SCRIPTS:
        if p.name != "common.sh":
            assert f"launch/{p.name}" in doc, p.name
    for needle in ("jax.distributed.initialize", "--worker=all", "JAX_COORDINATOR_ADDRESS", "NCCL",
                   "queued-resources", "config.mesh"):
        assert needle in doc, needle
