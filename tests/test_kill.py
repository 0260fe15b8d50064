"""SIGKILL at random moments, including inside a checkpoint write, and --load after each: the run ends at
exactly the requested step with the same losses and weights as a run that was never killed."""

import csv
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, STEPS_PER_EPOCH = 30, 5     # 40 images, batch 8
TOTAL = EPOCHS * STEPS_PER_EPOCH

# Trains (or with "resume" continues) a tiny run, printing "STEP n" as each step is read back and
# "RESTORED path" for the checkpoint a resume started from.  KILL_IN_WRITE=k,mode makes the process
# SIGKILL itself inside its k-th checkpoint write: "torn" after half the data file is on disk and
# before the checkpoint is recorded, "unrecorded" after the whole checkpoint is on disk but before
# the manager records it as the latest.
SCRIPT = r"""
import os, signal, sys
import tensorflow as tf
import gan_anime
from gan_anime.training.hooks import Hook
from gan_anime.training import trainer as trainer_module

kill = os.environ.get("KILL_IN_WRITE")
if kill:
    nth, mode = kill.split(",")
    original, calls = tf.train.Checkpoint._write, []

    def write(self, prefix, options=None, **kw):
        calls.append(prefix)
        if len(calls) < int(nth):
            return original(self, prefix, options=options, **kw)
        options = tf.train.CheckpointOptions()        # no callbacks: the manager never records it
        path = original(self, prefix, options=options, **kw)
        if mode == "torn":
            data = path + ".data-00000-of-00001"
            with open(data, "r+b") as f:
                f.truncate(os.path.getsize(data) // 2)
        print("KILLING IN WRITE", path, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    tf.train.Checkpoint._write = write

restore = trainer_module.Trainer.restore
def printing_restore(self):
    path = restore(self)
    print("RESTORED", path, flush=True)
    return path
trainer_module.Trainer.restore = printing_restore

class Steps(Hook):
    def step_end(self, event):
        print("STEP", event.step, flush=True)

cfg = gan_anime.Config(data_dir=sys.argv[1], run_dir=sys.argv[2], cache_dir=sys.argv[2] + "_cache", image_size=16,
                       g_width=4, d_width=4, noise_dim=8, batch_size=8, epochs=%(epochs)d, checkpoint_every=3,
                       keep_checkpoints=2, samples_per_grid=4, log_every=1, deterministic=True)
r = gan_anime.train(cfg, resume=sys.argv[3] == "resume", hooks=[Steps()], progress="lines")
print("STATUS", r.status, r.step, flush=True)
""" % {"epochs": EPOCHS}


def start(image_dir, run_dir, resume, kill_in_write=None):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("KILL_IN_WRITE", None)
    if kill_in_write:
        env["KILL_IN_WRITE"] = kill_in_write
    return subprocess.Popen([sys.executable, "-c", SCRIPT, image_dir, run_dir, "resume" if resume else "fresh"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def latest_step(run_dir):
    path = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else None


def rows(run_dir):
    with open(os.path.join(run_dir, "logs", "losses.csv"), newline="") as f:
        return [{k: v for k, v in r.items() if k != "images_per_s"} for r in csv.DictReader(f)]


def weights(run_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")))
    return {k: reader.get_tensor(k) for k, d in reader.get_variable_to_dtype_map().items() if d.is_floating}


def test_sigkill_five_times_then_load_ends_like_a_run_never_killed(tmp_path, image_dir):
    reference = str(tmp_path / "reference")
    proc = start(image_dir, reference, resume=False)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and f"STATUS finished {TOTAL}" in out, out[-2000:]

    run = str(tmp_path / "killed")
    rng = random.Random(13)
    # Two kills inside a checkpoint write (one leaving a torn data file), three at random steps.
    plan = ["step", ("2", "torn"), "step", ("1", "unrecorded"), "step"]
    log, resumed_from, stopped_at = [], [], []
    for i, how in enumerate(plan):
        before = latest_step(run) if i else None
        proc = start(image_dir, run, resume=i > 0, kill_in_write=",".join(how) if how != "step" else None)
        target = (before or 0) + rng.randint(2, 2 * STEPS_PER_EPOCH + 2)
        last = None
        for line in proc.stdout:
            log.append(line)
            if line.startswith("RESTORED"):
                resumed_from.append(line.split()[1])
            if line.startswith("STEP"):
                last = int(line.split()[1])
                if how == "step" and last >= target:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, f"cycle {i}: not killed ({proc.returncode}): {''.join(log[-20:])}"
        assert last is not None and last < TOTAL, f"cycle {i} reached the end before its kill"
        stopped_at.append(last)
        if how != "step":
            assert any(l.startswith("KILLING IN WRITE") for l in log[-5:]), log[-5:]
            killed_prefix = next(l for l in reversed(log) if l.startswith("KILLING")).split()[-1]
            # The checkpoint the kill interrupted is on disk but not the one --load will use.
            assert os.path.isfile(killed_prefix + ".index")
            assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints")) != killed_prefix
    # Every resume started from a checkpoint that was recorded whole, never from an interrupted write.
    assert len(resumed_from) == len(plan) - 1
    assert all(p.rsplit("-", 1)[1].isdigit() for p in resumed_from)

    proc = start(image_dir, run, resume=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and f"STATUS finished {TOTAL}" in out, out[-2000:]

    # Each step logged exactly once, with the same losses as the run that was never killed (no jump).
    assert [int(r["step"]) for r in rows(run)] == list(range(1, TOTAL + 1))
    assert rows(run) == rows(reference)
    a, b = weights(reference), weights(run)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    print("kills at steps", stopped_at, "resumed from", [os.path.basename(p) for p in resumed_from])
