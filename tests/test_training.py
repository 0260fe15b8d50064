"""Training: one step changes both networks, resume is exact, stops save (NaN: test_recovery.py)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import gan_anime
from conftest import tiny_config as tiny
from gan_anime.config import Config
from gan_anime.data.folder import ImageSet
from gan_anime.training.run import prepare_run
from gan_anime.training.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))





def test_one_step_changes_both_networks(tmp_path):
    rng = np.random.default_rng(0)
    data = ImageSet(images=rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8))
    trainer = Trainer(Config(image_size=16, g_width=4, d_width=4, noise_dim=8, batch_size=8, max_steps=1,
                             conditional=False, run_dir=str(tmp_path)))
    g0 = [w.numpy().copy() for w in trainer.G.trainable_weights]
    d0 = [w.numpy().copy() for w in trainer.D.trainable_weights]
    result = trainer.fit(data)
    assert result.step == 1 and result.status == "max_steps"
    assert all(np.isfinite(v) for v in result.last.values())
    for before, net in ((g0, trainer.G), (d0, trainer.D)):
        changed = [not np.allclose(a, w.numpy()) for a, w in zip(before, net.trainable_weights)]
        assert all(changed), f"{net.name}: {changed.count(False)} weight tensors did not change"


def test_r1_penalty_changes_only_the_discriminator_update(tmp_path):
    """Step 0 is an R1 step: with the penalty D's update differs, G's (from the same D) does not."""
    rng = np.random.default_rng(0)
    data = ImageSet(images=rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8))
    after = {}
    for gamma in (0.0, 100.0):
        trainer = Trainer(Config(image_size=16, g_width=4, d_width=4, noise_dim=8, batch_size=8, max_steps=1,
                                 conditional=False, d_norm="none", r1_gamma=gamma,
                                 run_dir=str(tmp_path / str(gamma))))
        result = trainer.fit(data)
        assert all(np.isfinite(v) for v in result.last.values())
        after[gamma] = ([w.numpy() for w in trainer.G.trainable_weights],
                        [w.numpy() for w in trainer.D.trainable_weights])
    (g0, d0), (g1, d1) = after[0.0], after[100.0]
    for a, b in zip(g0, g1):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(d0, d1))


def _checkpoint_values(run_dir):
    path = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in k and not k.startswith("save_counter")}


def test_resume_is_exact(tmp_path, image_dir):
    # 40 images / batch 8 = 5 steps per epoch; 4 + 4 steps crosses an epoch boundary mid-way.
    whole = gan_anime.train(tiny(tmp_path / "whole", image_dir, max_steps=8))
    assert whole.step == 8
    half = gan_anime.train(tiny(tmp_path / "half", image_dir, max_steps=4))
    assert half.step == 4 and half.status == "max_steps"
    resumed = gan_anime.train(tiny(tmp_path / "half", image_dir, max_steps=8), resume=True)
    assert resumed.step == 8
    a, b = _checkpoint_values(str(tmp_path / "whole")), _checkpoint_values(str(tmp_path / "half"))
    assert a.keys() == b.keys()
    # Every weight of every network is in the checkpoint (layers held in lists once were not).  All differing
    # values are reported at once (which networks, how many values, how far apart), not only the first key's.
    differ = {k: f"{int((a[k] != b[k]).sum())}/{a[k].size} values, max |diff| {np.abs(a[k] - b[k].astype(np.float64)).max():.3g}"
              for k in a if not np.array_equal(a[k], b[k])}
    assert not differ, "\n".join(f"{k}: {v}" for k, v in sorted(differ.items()))
    # The CSV log holds each step exactly once.
    steps = [int(r["step"]) for r in gan_anime.training.checkpoint.read_csv_log(
        str(tmp_path / "half" / "logs" / "losses.csv"))]
    assert steps == list(range(1, 9))


def test_restore_brings_back_every_variable(tmp_path, image_dir):
    data, cfg = prepare_run(tiny(tmp_path / "r", image_dir, max_steps=3))
    trained = Trainer(cfg)
    trained.fit(data)
    fresh = Trainer(cfg.replace(seed=99))          # different initial weights
    assert fresh.restore()
    pairs = [(trained.G, fresh.G), (trained.D, fresh.D), (trained.G_ema, fresh.G_ema)]
    for a, b in pairs:
        assert len(a.weights) == len(b.weights) > 0
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)
    for oa, ob in ((trained.g_opt, fresh.g_opt), (trained.d_opt, fresh.d_opt)):
        for va, vb in zip(oa.variables, ob.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=va.path)
    assert fresh.counters.as_dict() == trained.counters.as_dict() == {"step": 3, "epoch": 0, "step_in_epoch": 3}


def test_fresh_run_refuses_existing_checkpoints(tmp_path, image_dir):
    gan_anime.train(tiny(tmp_path / "r", image_dir, max_steps=1))
    with pytest.raises(ValueError, match="--load"):
        gan_anime.train(tiny(tmp_path / "r", image_dir, max_steps=2))


def test_resume_refuses_architecture_change(tmp_path, image_dir):
    gan_anime.train(tiny(tmp_path / "r", image_dir, max_steps=1))
    with pytest.raises(ValueError, match="g_width"):
        prepare_run(tiny(tmp_path / "r", image_dir, g_width=8), resume=True)


def test_epoch_end_writes_samples(tmp_path, image_dir):
    result = gan_anime.train(tiny(tmp_path / "r", image_dir, epochs=1, generate_per_epoch=2))
    assert result.status == "finished" and result.epoch == 1
    assert os.path.isfile(tmp_path / "r" / "samples" / "epoch_0001.png")
    assert sorted(os.listdir(tmp_path / "r" / "samples" / "epoch_0001")) == ["000.png", "001.png"]


def _csv_rows(run_dir):
    import csv
    with open(os.path.join(run_dir, "logs", "losses.csv"), newline="") as f:
        return [{k: v for k, v in row.items() if k != "images_per_s"} for row in csv.DictReader(f)]


def test_reading_back_every_k_steps_trains_and_logs_the_same(tmp_path, image_dir):
    """readback_every only changes when the loop reads: the same weights, and a row for every step."""
    runs = {}
    for k in (1, 3):
        cfg = tiny(tmp_path / f"k{k}", image_dir, epochs=2, readback_every=k, checkpoint_every=4)
        result = gan_anime.train(cfg)
        assert result.step == 10 and result.status == "finished"
        run = gan_anime.load(cfg.run_dir)
        runs[k] = (run.generate(4, seed=1), _csv_rows(cfg.run_dir))
    np.testing.assert_array_equal(runs[1][0], runs[3][0])
    assert [int(r["step"]) for r in runs[3][1]] == list(range(1, 11))
    assert runs[1][1] == runs[3][1]


SIGNAL_SCRIPT = """
import sys, gan_anime
from absl import logging
logging.set_verbosity(logging.INFO)
cfg = gan_anime.Config(data_dir=sys.argv[1], run_dir=sys.argv[2], cache_dir=sys.argv[2] + "_cache", image_size=16,
                       g_width=4, d_width=4, noise_dim=8, batch_size=8, epochs=1000, checkpoint_every=0,
                       samples_per_grid=4, log_every=1)
r = gan_anime.train(cfg, resume=len(sys.argv) > 3)
print("STATUS", r.status, r.step, r.signal, flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_step_saves_and_resumes(tmp_path, image_dir, sig):
    run = str(tmp_path / "r")
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-c", SIGNAL_SCRIPT, image_dir, run], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    log = []
    deadline = time.time() + 120
    for line in proc.stdout:
        log.append(line)
        if "step 3/5" in line or time.time() > deadline:
            break
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    text = "".join(log) + out
    assert proc.returncode == 0, text[-3000:]
    assert "STATUS interrupted" in text
    assert text.split("STATUS interrupted")[1].split()[1] == sig.name
    stopped = int(text.split("STATUS interrupted")[1].split()[0])
    assert stopped >= 3
    assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints")).endswith(f"ckpt-{stopped}")
    again = gan_anime.train(gan_anime.Config.load(os.path.join(run, "config.json")).replace(max_steps=stopped + 2),
                            resume=True)
    assert again.step == stopped + 2


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_epochs_do_not_keep_copies_of_the_images(tmp_path):
    # Each epoch's dataset once captured its own tf.constant of the images and kept it alive:
    # memory grew by the image array every epoch (~120 MB for the 10k built-in 64 px faces).
    n = 80000                                                   # 16 px: 61 MB of uint8 images
    rng = np.random.default_rng(0)
    data = ImageSet(images=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8))
    cfg = Config(image_size=16, g_width=4, d_width=4, noise_dim=8, batch_size=n // 8, epochs=10,
                 conditional=False, run_dir=str(tmp_path / "r"), checkpoint_every=0, samples_per_grid=4,
                 log_every=100, ema_decay=0.0)
    trainer = Trainer(cfg)
    rss, grid = {}, trainer.sample_grid

    def grid_and_measure(path):
        rss[len(rss) + 1] = _rss_mb()
        return grid(path)

    trainer.sample_grid = grid_and_measure
    trainer.fit(data)
    leak_per_epoch = data.images.nbytes / 2 ** 20
    # Epoch 1 warms up (tracing, allocator).  The largest single-epoch rise is left out too: in a
    # pytest-xdist worker that ran other test files first, the allocator once took 93 MB in one epoch
    # with no leak (156 MB over 8 epochs in all, 10 MB an epoch otherwise).
    rises = sorted(rss[e + 1] - rss[e] for e in range(2, cfg.epochs))
    growth = sum(rises[:-1])
    # Measured: 21-46 MB with one shared copy (fresh process); 281 MB when each epoch kept its own; with a
    # copy of the images kept at each epoch's end, 254 and 210 MB in pytest (2026-12-03).  Seven epochs
    # (4 rises kept, 1.5 epochs' worth allowed) missed that copy once in four pytest runs: keep ten.
    assert growth < 2 * leak_per_epoch, f"memory grew {growth:.0f} MB over 7 of 8 epochs: {rss}"


def test_max_minutes_stops_with_a_checkpoint(tmp_path, image_dir):
    """A wall-clock budget: the run stops after the step that crosses it, saved, with its own status."""
    result = gan_anime.train(tiny(tmp_path / "r", image_dir, epochs=500, max_minutes=0.05))   # 3 s
    assert result.status == "max_minutes", result.status
    assert 1 <= result.step < 500 * 5
    assert 3.0 <= result.seconds < 60.0, result.seconds
    assert tf.train.latest_checkpoint(str(tmp_path / "r" / "checkpoints")).endswith(f"ckpt-{result.step}")
