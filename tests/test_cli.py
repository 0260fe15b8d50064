"""The command line (python -m gan_anime): routines end to end, schedules reaching the optimizers,
and every wrong invocation exiting 2 with one line that names the flag."""

import csv
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from conftest import TINY, cli_error, expand, printed_path, read_config
from gan_anime.cli import flags as cli_flags
from gan_anime.cli import main as cli_main


def _rows(run_dir):
    with open(os.path.join(run_dir, "logs", "losses.csv"), newline="") as f:
        return list(csv.DictReader(f))


_config, _printed = read_config, printed_path


# Stacked exponential decay (generator set, then discriminator set), checked per step in the CSV log.
G_EXP, D_EXP = (0.001, 4, 0.5), (0.002, 8, 0.25)


@pytest.fixture(scope="module")
def trained(run_cmd, tmp_path_factory):
    """One tiny run on the built-in faces: 1 epoch of 8 steps (checkpoints at 4 and 8), then generate 4 faces."""
    cwd = tmp_path_factory.mktemp("cli")
    result = run_cmd(["ENTRY", "--train", *TINY, "--epochs", "1", "--generate-after", "4", "--checkpoint-every", "4",
                      "--exponential-decay", *G_EXP, *D_EXP], cwd)
    assert result.returncode == 0, result.stderr
    run_dir = os.path.join(cwd, _printed(result.stdout, "run directory:"))
    return cwd, run_dir, result


def test_train_writes_run_samples_and_generated_faces(trained):
    cwd, run_dir, result = trained
    assert os.path.relpath(run_dir, cwd).startswith(os.path.join("runs", "faces-"))
    assert os.path.isfile(os.path.join(run_dir, "samples", "epoch_0001.png"))
    out = os.path.join(cwd, _printed(result.stdout, "generated 4 faces:"))
    assert out == os.path.join(run_dir, "generated", "0001-seed0")
    assert sorted(os.listdir(out)) == ["0000.png", "0001.png", "0002.png", "0003.png", "grid.png"]
    assert Image.open(os.path.join(out, "0000.png")).size == (16, 16)
    assert "epoch 1/1" in result.stderr   # progress lines are shown (absl INFO)
    assert "Sharding callback" not in result.stderr   # TensorFlow's own INFO line after each checkpoint
    cfg = _config(run_dir)
    assert (cfg["image_size"], cfg["g_width"], cfg["d_width"], cfg["faces_count"]) == (16, 8, 8, 64)
    assert cfg["conditional"] is True     # the built-in faces carry hair and eye tags


def test_log_filter_keeps_own_info_and_everyones_warnings():
    import logging

    def record(path, level):
        return logging.LogRecord("absl", level, path, 1, "message", None, None)

    own = os.path.join(os.path.dirname(cli_main.__file__), "..", "training", "trainer.py")
    other = os.path.join(os.path.dirname(logging.__file__), "checkpoint", "functional_saver.py")
    assert cli_main._own_info_only(record(own, logging.INFO))
    assert not cli_main._own_info_only(record(other, logging.INFO))
    assert cli_main._own_info_only(record(other, logging.WARNING))
    assert cli_main._own_info_only(record(other, logging.ERROR))


def test_stacked_exponential_decay_reaches_both_optimizers(trained):
    _, run_dir, _ = trained
    cfg = _config(run_dir)
    assert cfg["g_schedule"]["kind"] == cfg["d_schedule"]["kind"] == "exponential"
    rows = _rows(run_dir)
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    for r in rows:
        step = int(r["step"])
        for (lr, steps, base), key in ((G_EXP, "lr_g"), (D_EXP, "lr_d")):
            assert float(r[key]) == pytest.approx(lr * base ** (step / steps), rel=1e-4)


def test_inference_makes_a_new_folder_per_call(trained, run_cmd):
    cwd, run_dir, _ = trained
    first = run_cmd(["ENTRY", "--inference", "--inference-count", "3", "--seed", "5"], cwd)
    second = run_cmd(["ENTRY", "--inference", "--inference-count", "3", "--seed", "5", "--hair", "blonde",
                      "--eye", "blue", "--run-dir", run_dir], cwd)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a = os.path.join(cwd, _printed(first.stdout, "generated 3 faces:"))
    b = _printed(second.stdout, "generated 3 faces:")
    assert (os.path.basename(a), os.path.basename(b)) == ("0002-seed5", "0003-seed5")
    assert len(os.listdir(a)) == len(os.listdir(b)) == 4
    assert Image.open(os.path.join(a, "grid.png")).size[0] > 16
    tame = run_cmd(["ENTRY", "--inference", "--inference-count", "3", "--seed", "5", "--truncation", "1.5"], cwd)
    assert tame.returncode == 0, tame.stderr
    c = os.path.join(cwd, _printed(tame.stdout, "generated 3 faces:"))
    assert os.path.basename(c) == "0004-seed5-trunc1.5"
    faces = [np.asarray(Image.open(os.path.join(d, "0000.png"))) for d in (a, c)]
    assert not np.array_equal(*faces)


def test_checkpoint_flag_picks_a_kept_checkpoint(trained, run_cmd):
    cwd, run_dir, _ = trained

    def faces(*checkpoint):
        r = run_cmd(["ENTRY", "--inference", "--inference-count", "2", "--seed", "9", *checkpoint,
                     "--run-dir", run_dir], cwd)
        assert r.returncode == 0, r.stderr
        out = os.path.join(cwd, _printed(r.stdout, "generated 2 faces:"))
        return np.stack([np.asarray(Image.open(os.path.join(out, n))) for n in ("0000.png", "0001.png")])

    at4, at8 = faces("--checkpoint", "4"), faces("--checkpoint", "8")
    assert not np.array_equal(at4, at8)                              # another checkpoint, other faces
    assert np.array_equal(at4, faces("--checkpoint", os.path.join(run_dir, "checkpoints", "ckpt-4.index")))
    assert np.array_equal(at4, faces("--checkpoint", "ckpt-4"))     # relative to the run's checkpoints/
    missing = run_cmd(["ENTRY", "--inference", "--checkpoint", "999", "--run-dir", run_dir], cwd)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert missing.stderr.startswith("gan-anime: error: --checkpoint: checkpoint 999 not found (expected a step "
                                     "number or a checkpoint path; "), missing.stderr
    assert "keeps steps 0, 4, 8" in missing.stderr   # ckpt-0: the initial weights, saved before step 1
    from gan_anime.inference import find_checkpoint
    assert find_checkpoint(run_dir, 8) == os.path.join(run_dir, "checkpoints", "ckpt-8")
    with pytest.raises(FileNotFoundError, match="checkpoint nowhere/ckpt-1 not found"):
        find_checkpoint(run_dir, "nowhere/ckpt-1")


def test_load_trains_more_epochs_with_new_settings(trained, run_cmd):
    cwd, run_dir, _ = trained
    done = run_cmd(["ENTRY", "--load"], cwd)   # the latest run has finished its epochs
    assert done.returncode == 2
    assert done.stderr.strip().startswith("gan-anime: error: --epochs:") and "pass --epochs N" in done.stderr
    result = run_cmd(["ENTRY", "--load", "--epochs", "1", "--generate-per-epoch", "2", "--no-augment"], cwd)
    assert result.returncode == 0, result.stderr
    cfg = _config(run_dir)
    assert (cfg["epochs"], cfg["generate_per_epoch"], cfg["augment"]) == (2, 2, False)
    assert [int(r["step"]) for r in _rows(run_dir)] == list(range(1, 17))   # resumed at step 9
    assert len(os.listdir(os.path.join(run_dir, "samples", "epoch_0002"))) == 2
    # The decay continued where it stopped: the optimizers' step counters were restored.
    last = _rows(run_dir)[-1]
    assert float(last["lr_g"]) == pytest.approx(G_EXP[0] * G_EXP[2] ** (16 / G_EXP[1]), rel=1e-4)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_saves_says_how_to_resume_and_load_continues(run_cmd, cli_env, tmp_path, sig, code):
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(expand(["ENTRY", "--train", *TINY, "--epochs", "500", "--run-dir", "r"]),
                                cwd=tmp_path, env=cli_env, stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.time() + 120
        while "epoch 1/500 step 2/8" not in err_path.read_text() and time.time() < deadline:
            assert proc.poll() is None, err_path.read_text()
            time.sleep(0.2)
        proc.send_signal(sig)
        stdout, _ = proc.communicate(timeout=120)
    stderr = err_path.read_text()
    assert proc.returncode == code, stderr
    assert "interrupted" in stdout and "--load --run-dir r" in stderr and "Traceback" not in stderr
    stopped = int(stdout.split("interrupted: ")[1].split("step ")[1].split(",")[0])
    assert stopped >= 2
    assert tf_latest(tmp_path / "r").endswith(f"ckpt-{stopped}")
    again = run_cmd(["ENTRY", "--load", "--run-dir", "r", "--max-steps", str(stopped + 2)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert [int(r["step"]) for r in _rows(str(tmp_path / "r"))] == list(range(1, stopped + 3))


def tf_latest(run_dir):
    import tensorflow as tf
    return tf.train.latest_checkpoint(str(run_dir / "checkpoints"))


def test_media_writes_summary_and_training_sheet(run_cmd, tmp_path):
    result = run_cmd(["ENTRY", "--media", "--media-dir", tmp_path / "media"], tmp_path)
    assert result.returncode == 0, result.stderr
    summary = (tmp_path / "media" / "model_summary.txt").read_text()
    assert "generator" in summary and "discriminator" in summary and "Trainable parameters" in summary
    assert Image.open(tmp_path / "media" / "images.png").size == (8 * 66 + 2, 8 * 66 + 2)


# ------------------------------------------------------------------------------ wrong invocations
# (argv, start of the one stderr line).  Each runs the real command line: exit 2, one line, no traceback.
WRONG = [
    ([], "gan-anime: error: missing routine: give exactly one of --train, --load, --inference"),
    (["--train", "--flagfile=/nonexistent/flags.txt"], "gan-anime: error: --flagfile: cannot read it (No such file"),
    (["--train", "--inference"], "gan-anime: error: --inference: give exactly one routine"),
    (["--train", "--learning-rate", "1e-4", "--exponential-decay", "0.1", "100", "0.9"],
     "gan-anime: error: --exponential-decay: cannot be combined with --learning-rate"),
    (["--train", "--exponential-decay", "0.1", "100"],
     "gan-anime: error: --exponential-decay: expected 3 numbers <initial_lr> <decay_steps> <base>"),
    (["--train", "--constant-decay", "1", "--constant-decay-boundaries", "100", "200",
      "--constant-decay-values", "1e-3", "5e-4"],
     "gan-anime: error: --constant-decay-values: 2 boundaries need 3 values"),
    (["--inference", "--inference-count", "-3"],
     "gan-anime: error: --inference-count: expected a positive integer, got -3"),
    (["--load"], "gan-anime: error: --load: no run found under runs/"),
    (["--train", "--data-dir", "no/such/folder"],
     "gan-anime: error: --data-dir: no/such/folder does not exist (expected a folder of images)"),
    # Found after TensorFlow is imported (its import-time lines must not show either):
    (["--load", "--run-dir", "."], "gan-anime: error: no config.json at ./config.json: is this a gan_anime run"),
]

#: Usage errors the command line finds before it imports TensorFlow (~5 s): (argv, start of the message).
BEFORE_TENSORFLOW = [
    (["--load"], "--load: no run found under runs/"),
    (["--train", "--data-dir", "no/such/folder"], "--data-dir: no/such/folder does not exist"),
    (["--train", "--fid-every", "4", "--fid-weights", "missing.pt"], "--fid-weights: missing.pt does not exist"),
    (["--inference", "--run-dir", "nope"], "--run-dir: run directory nope does not exist"),
    (["--inference", "--truncation", "0"], "--truncation: expected a positive number"),
    (["--export", "--name", "nope"], "--name: run directory runs/nope does not exist"),
    (["--serve", "--run-dir", "nope"], "--run-dir: run directory nope does not exist"),
    (["--evaluate", "--compare", "a", "b"], "--compare: a is not a folder"),
    (["--evaluate", "--fid-weights", "missing.pt"], "--fid-weights: missing.pt does not exist"),
    (["--evaluate"], "--evaluate: no run found under runs/"),
]


def test_usage_errors_answer_before_tensorflow_is_imported(cli_env, tmp_path):
    fake = tmp_path / "fake" / "tensorflow"           # a tensorflow that fails when imported
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('tensorflow was imported')\n")
    env = {**cli_env, "PYTHONPATH": str(fake.parent) + os.pathsep + cli_env["PYTHONPATH"]}
    control = subprocess.run(expand(["ENTRY", "--media", "--media-dir", "m"]), cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert control.returncode != 0 and "tensorflow was imported" in control.stderr, control.stderr[-500:]
    for argv, expected in BEFORE_TENSORFLOW:
        r = subprocess.run(expand(["ENTRY", *argv]), cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and r.stderr.startswith(f"gan-anime: error: {expected}"), (argv, r.stderr[-500:])


def test_wrong_invocations_exit_2_with_one_line(cli_env, tmp_path):
    env = {k: v for k, v in cli_env.items() if k != "TF_CPP_MIN_LOG_LEVEL"}   # as a user runs it
    procs = []
    for i, (argv, _) in enumerate(WRONG):   # two at a time
        cwd = tmp_path / str(i)
        cwd.mkdir()
        procs.append(subprocess.Popen(expand(["ENTRY", *argv]), cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
        if len(procs) >= 2:
            procs[-2].wait()
    for proc, (argv, expected) in zip(procs, WRONG):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (argv, err)
        assert err.splitlines() == [err.strip()] and err.startswith(expected), (argv, err)
        assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("argv, expected", [
    (["--train", "--exponential-decay", "0.1", "100", "0.9", "--polynomial-decay", "0.1", "100", "0", "1"],
     "--polynomial-decay: cannot be combined with --exponential-decay (give one schedule)"),
    (["--train", "--exponential-decay", "-0.1", "100", "0.9"],
     "--exponential-decay: initial_lr must be a positive number, got -0.1"),
    (["--train", "--exponential-decay", "0.1", "100.5", "0.9"],
     "--exponential-decay: decay_steps must be a positive whole number of steps, got 100.5"),
    (["--train", "--polynomial-decay", "0.1", "abc", "0", "1"], "--polynomial-decay: expected numbers, got 'abc'"),
    (["--train", "--polynomial-decay=0.1,100,x,1"], "--polynomial-decay: expected numbers, got 'x'"),
    (["--train", "--polynomial-decay", "0.1", "100", "0", "1", "5"], "--polynomial-decay: expected 4 numbers"),
    (["--train", "--learning-rate", "1e-4", "2e-4", "3e-4"], "--learning-rate: expected one learning rate"),
    (["--train", "--learning-rate", "0"], "--learning-rate: learning rate must be a positive number, got 0"),
    (["--train", "--constant-decay", "2", "--constant-decay-boundaries", "10",
      "--constant-decay-values", "1e-3", "5e-4"], "--constant-decay-boundaries: expected two lists"),
    (["--train", "--constant-decay", "2", "--constant-decay-boundaries", "10", ":", "20", "30",
      "--constant-decay-values", "1e-3", "5e-4", ":", "1e-3", "5e-4"],
     "--constant-decay-values: 2 discriminator boundaries need 3 values"),
    (["--train", "--constant-decay", "1", "--constant-decay-boundaries", "20", "10",
      "--constant-decay-values", "1", "2", "3"], "--constant-decay-boundaries: boundaries must be ascending"),
    (["--train", "--constant-decay", "1", "--constant-decay-values", "1", "2"],
     "--constant-decay-boundaries: required with --constant-decay 1"),
    (["--train", "--constant-decay-boundaries", "10"], "--constant-decay-boundaries: needs --constant-decay 1"),
    (["--train", "--constant-decay", "3"], "--constant-decay: expected one of 1|2"),
    (["--train", "--epochs", "0"], "--epochs: expected a positive integer, got 0"),
    (["--train", "--batch-size", "many"], "--batch-size: expected an integer, got 'many'"),
    (["--train", "--image-size", "48"], "--image-size: expected one of 16, 32, 64, 128, got 48"),
    (["--train", "--r1-gamma", "-1"], "--r1-gamma: expected a non-negative number, got -1.0"),
    (["--train", "--ema-decay", "1"], "--ema-decay: ema_decay must be in [0, 1), got 1.0"),
    (["--load", "--ema-decay", "0.99"], "--ema-decay: cannot be changed by --load"),
    (["--train", "--d-norm", "layer"], "--d-norm: expected one of none|batch"),
    (["--train", "--strategy", "tpu"], "--strategy: expected one of auto|default|mirrored|multiworker"),
    (["--train", "--no-augment=1"], "--no-augment: takes no value"),
    (["--train", "--bogus"], "--bogus: unknown flag"),
    (["--train", "stray"], "unexpected argument 'stray'"),
    (["--train", "--tags", "t.csv"], "--tags: needs --data-dir"),
    (["--train", "--run-dir", "a", "--name", "b"], "--name: give --run-dir or --name, not both"),
    (["--load", "--image-size", "32"], "--image-size: cannot change the architecture of a saved run"),
    (["--load", "--g-depth", "2"], "--g-depth: cannot change the architecture of a saved run"),
    (["--load", "--upsample", "blur"], "--upsample: cannot change the architecture of a saved run"),
    (["--train", "--upsample", "bilinear"], "--upsample: expected one of transpose|blur|nearest"),
    (["--train", "--g-depth", "0"], "--g-depth: expected a positive integer, got 0"),
    (["--load", "--d-depth", "2"], "--d-depth: cannot change the architecture of a saved run"),
    (["--load", "--g-residual"], "--g-residual: cannot change the architecture of a saved run"),
    (["--train", "--g-residual", "--g-depth", "1"], "--g-residual: g_residual needs g_depth >= 2"),
    (["--train", "--g-cbn", "--data-dir", "."], "--g-cbn: needs hair/eye tags: give --tags FILE with --data-dir"),
    (["--load", "--g-cbn"], "--g-cbn: cannot change the architecture of a saved run"),
    (["--train", "--g-sle", "--image-size", "16"], "--g-sle: g_sle needs image_size >= 32"),
    (["--load", "--g-sle"], "--g-sle: cannot change the architecture of a saved run"),
    (["--load", "--attention", "16"], "--attention: cannot change the architecture of a saved run"),
    (["--train", "--attention", "12"], "--attention: attention must be 0 (off) or a feature resolution"),
    (["--train", "--d-depth", "0"], "--d-depth: expected a positive integer, got 0"),
    (["--load", "--batch-size", "4"], "--batch-size: cannot be changed by --load"),
    (["--inference", "--epochs", "3"], "--epochs: not used by --inference"),
    (["--train", "--checkpoint", "3"], "--checkpoint: not used by --train"),
    (["--evaluate", "--compare", "a", "b", "--checkpoint", "3"],
     "--compare: compares two folders; --run-dir, --name, --num-samples, --checkpoint and --truncation are for a run"),
    (["--inference", "--truncation", "0"], "--truncation: expected a positive number (the largest |z| kept, e.g. 1.5), "
                                           "got 0.0"),
    (["--inference", "--truncation", "nan"], "--truncation: expected a positive number"),
    (["--train", "--truncation", "1"], "--truncation: not used by --train"),
    (["--load", "--truncation", "1"], "--truncation: cannot be changed by --load"),
    (["--inference", "--run-dir", "no/such/run"], "--run-dir: run directory no/such/run does not exist"),
    (["--inference", "--train", "--load"], "--load: give exactly one routine of --train, --load, --inference, "
                                         "--media, --evaluate, --benchmark, --export, --serve; got --train and "
                                         "--load and --inference"),
    (["--serve", "--format", "tflite"], "--format: not used by --serve"),
    (["--export", "--host", "0.0.0.0"], "--host: not used by --export"),
    (["--benchmark", "--epochs", "3"], "--epochs: not used by --benchmark"),
    (["--benchmark", "--steps", "0"], "--steps: expected a positive integer, got 0"),
    (["--benchmark", "--gan", "wgan-gp", "--r1-gamma", "1"], "--gan: gan 'wgan-gp' has no R1 penalty"),
    (["--benchmark", "--precision", "float8"], "--precision: expected one of auto|float32|bfloat16"),
    (["--train", "--steps", "5"], "--steps: not used by --train"),
])
def test_wrong_invocation_messages(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli_error(argv, capsys)
    assert code == 2
    assert err.startswith(f"gan-anime: error: {expected}"), err
    assert err.count("\n") == 1


# ------------------------------------------------------------------------------ schedules -> optimizers
def _expected_lr(kind, p, step):
    if kind == "constant":
        return p[0]
    if kind == "exponential":
        lr, steps, base = p
        return lr * base ** (step / steps)
    if kind == "polynomial":
        lr, steps, end, power = p
        return (lr - end) * (1 - min(step, steps) / steps) ** power + end
    bounds, values = p
    return values[sum(step > b for b in bounds)]


SCHEDULES = [   # flags, (generator kind, params), (discriminator kind, params)
    ([], ("constant", (2e-4,)), ("constant", (2e-4,))),
    (["--learning-rate", "3e-4"], ("constant", (3e-4,)), ("constant", (3e-4,))),
    (["--learning-rate", "1e-4,4e-4"], ("constant", (1e-4,)), ("constant", (4e-4,))),
    (["--exponential-decay", "0.001", "10", "0.5"],
     ("exponential", (0.001, 10, 0.5)), ("exponential", (0.001, 10, 0.5))),
    (["--exponential-decay", "0.001", "10", "0.5", "0.002", "20", "0.25"],
     ("exponential", (0.001, 10, 0.5)), ("exponential", (0.002, 20, 0.25))),
    (["--polynomial-decay", "0.001", "20", "0.0001", "2"],
     ("polynomial", (0.001, 20, 0.0001, 2)), ("polynomial", (0.001, 20, 0.0001, 2))),
    (["--polynomial-decay=0.001,20,0.0001,2,0.003,40,0,1"],
     ("polynomial", (0.001, 20, 0.0001, 2)), ("polynomial", (0.003, 40, 0.0, 1))),
    (["--constant-decay", "1", "--constant-decay-boundaries", "3", "30",
      "--constant-decay-values", "1e-3", "5e-4", "1e-4"],
     ("piecewise", ((3, 30), (1e-3, 5e-4, 1e-4))), ("piecewise", ((3, 30), (1e-3, 5e-4, 1e-4)))),
    (["--constant-decay", "2", "--constant-decay-boundaries", "3", "30", ":", "10",
      "--constant-decay-values", "1e-3", "5e-4", "1e-4", ":", "2e-3", "1e-3"],
     ("piecewise", ((3, 30), (1e-3, 5e-4, 1e-4))), ("piecewise", ((10,), (2e-3, 1e-3)))),
    (["--constant-decay=2", "--constant-decay-boundaries=3,30:10", "--constant-decay-values=1e-3,5e-4,1e-4:2e-3,1e-3"],
     ("piecewise", ((3, 30), (1e-3, 5e-4, 1e-4))), ("piecewise", ((10,), (2e-3, 1e-3)))),
]


@pytest.mark.parametrize("argv, g, d", SCHEDULES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_schedule_flags_reach_the_optimizers(argv, g, d, tmp_path):
    from gan_anime.training.trainer import Trainer
    cli_flags.parse(["gan-anime", "--train", *TINY, "--run-dir", str(tmp_path / "run"), *argv])
    cfg = cli_main.train_config()
    assert (cfg.g_schedule.kind, cfg.d_schedule.kind) == (g[0], d[0])
    trainer = Trainer(cfg.replace(conditional=False))
    for step in (0, 1, 3, 4, 10, 25, 31, 100):
        for opt, (kind, params) in ((trainer.g_opt, g), (trainer.d_opt, d)):
            opt.iterations.assign(step)
            assert float(opt.learning_rate) == pytest.approx(_expected_lr(kind, params, step), rel=1e-5), \
                (step, kind)


@pytest.mark.parametrize("argv, decay", [([], 0.9999), (["--ema-decay", "0.999"], 0.999),
                                         (["--ema-decay=0"], 0.0)])
def test_ema_decay_flag_reaches_the_trainer(argv, decay, tmp_path):
    from gan_anime.training.trainer import Trainer
    cli_flags.parse(["gan-anime", "--train", *TINY, "--run-dir", str(tmp_path / "run"), *argv])
    cfg = cli_main.train_config()
    assert cfg.ema_decay == decay
    assert (Trainer(cfg.replace(conditional=False)).G_ema is None) == (decay == 0)


# ------------------------------------------------------------------------------ flag syntax
def test_multi_value_flags_are_gathered_before_absl_parses():
    pre = cli_flags.preprocess
    assert pre(["p", "--exponential-decay", "0.1", "100", "0.9", "--train"]) == \
        ["p", "--exponential_decay=0.1,100,0.9", "--train"]
    # A negative number is a value (then refused as negative), not a flag.
    assert pre(["p", "--learning-rate", "-0.1"]) == ["p", "--learning_rate=-0.1"]
    assert pre(["p", "--constant-decay-values", "1", "2", ":", "3"]) == ["p", "--constant_decay_values=1,2:3"]
    assert pre(["p", "--no-augment", "--batch-size", "8"]) == ["p", "--noaugment", "--batch_size", "8"]


def test_help_documents_every_flag_and_the_schedule_syntax():
    text = cli_flags.help_text()
    for name in cli_flags.our_flag_names():
        assert cli_flags.dashed(name) in text
    assert "--constant-decay 2 --constant-decay-boundaries G1 G2 : D1" in text


def test_help_exits_0(run_cmd, tmp_path):
    result = run_cmd(["ENTRY", "--help"], tmp_path)
    assert result.returncode == 0 and "--exponential-decay" in result.stdout


def test_latest_run_is_the_last_started(tmp_path):
    for name, mtime in (("a", 100), ("b", 300), ("c", 200)):
        os.makedirs(tmp_path / name)
        (tmp_path / name / "config.json").write_text("{}")
        os.utime(tmp_path / name / "config.json", (mtime, mtime))
    assert cli_main.latest_run(str(tmp_path)) == str(tmp_path / "b")
    assert cli_main.latest_run(str(tmp_path / "none")) is None


def test_generated_folders_are_never_reused(tmp_path):
    first = cli_main.next_output_dir(str(tmp_path), 7)
    os.makedirs(tmp_path / "generated" / "0005-seed1")
    second = cli_main.next_output_dir(str(tmp_path), 7)
    assert (os.path.basename(first), os.path.basename(second)) == ("0001-seed7", "0006-seed7")


def test_missing_tensorflow_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setattr(cli_main, "tensorflow_installed", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        cli_main.run(["gan-anime", "--train"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"gan-anime: error: {cli_main.TF_MISSING}\n"
