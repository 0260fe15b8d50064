"""Nothing lost: NaN rollback that recovers, checkpoints checked on load, preflight, epoch counting."""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import gan_anime
from conftest import tiny_config as tiny
from gan_anime.losses import LOSSES, nonsaturating
from gan_anime.training.hooks import Hook
from gan_anime.training.recovery import Diverged
from gan_anime.training.recovery import NonFiniteLossError
from gan_anime.training.run import prepare_run
from gan_anime.training.trainer import Trainer


def checkpoint_tensors(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k, dtype in reader.get_variable_to_dtype_map().items() if dtype.is_floating}


def assert_every_checkpoint_finite(run_dir):
    ckpts = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoints")).all_model_checkpoint_paths
    assert ckpts
    for path in ckpts:
        for name, value in checkpoint_tensors(path).items():
            assert np.all(np.isfinite(value)), f"{path} holds non-finite {name}"


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Poison(Hook):
    """Makes D's loss NaN inside the compiled step from the step after ``arm_after`` on (a NaN gradient, not
    a NaN read after the step); a rollback disarms it unless ``persistent``."""

    def __init__(self, arm_after: int, persistent: bool = False):
        self.scale = tf.Variable(1.0)
        self.arm_after, self.persistent, self.rollbacks = arm_after, persistent, []

    def loss(self, real_logits, fake_logits, label_smoothing=0.0):
        d, g = nonsaturating(real_logits, fake_logits, label_smoothing)
        return d * self.scale, g

    def step_end(self, event):
        if event.step == self.arm_after and (self.persistent or not self.rollbacks):
            self.scale.assign(float("nan"))

    def rollback(self, step):
        self.rollbacks.append(step)
        if not self.persistent:
            self.scale.assign(1.0)


def test_nan_gradient_inside_the_step_rolls_back_lowers_lr_and_finishes(tmp_path, image_dir, monkeypatch):
    poison = Poison(arm_after=4)
    monkeypatch.setitem(LOSSES, "nonsaturating", poison.loss)
    cfg = tiny(tmp_path / "r", image_dir, epochs=2, checkpoint_every=3)
    result = gan_anime.train(cfg, hooks=[poison])
    assert result.status == "finished" and result.step == 10
    assert poison.rollbacks == [3]                                   # step 5 diverged, ckpt-3 restored
    events = read_rows(tmp_path / "r" / "logs" / "rollbacks.csv")
    assert [(e["detected_at_step"], e["restored_step"], e["checkpoint"], e["stream"]) for e in events] == \
        [("5", "3", "ckpt-3", "1")]
    assert "d_grad_norm=nan" in events[0]["what"]
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["lr_scale"], saved["stream"], saved["rollbacks"]) == (0.5, 1, 1)
    rows = read_rows(tmp_path / "r" / "logs" / "losses.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 11))     # the diverged steps 4-5 were dropped
    lr = {int(r["step"]): float(r["lr_g"]) for r in rows}
    assert lr[3] == pytest.approx(2e-4) and lr[4] == lr[10] == pytest.approx(1e-4)
    assert all(np.isfinite(float(r["d_grad_norm"])) and float(r["d_grad_norm"]) > 0 for r in rows)
    assert_every_checkpoint_finite(cfg.run_dir)


def test_resume_after_a_rollback_keeps_the_lower_rate_and_the_new_stream(tmp_path, image_dir, monkeypatch):
    poison = Poison(arm_after=2)
    monkeypatch.setitem(LOSSES, "nonsaturating", poison.loss)
    cfg = tiny(tmp_path / "r", image_dir, epochs=1, checkpoint_every=2)
    gan_anime.train(cfg, hooks=[poison])
    data, resumed = prepare_run(gan_anime.Config.load(str(tmp_path / "r" / "config.json")).replace(epochs=2),
                                resume=True)
    trainer = Trainer(resumed)
    trainer.restore()
    assert trainer.learning_rates() == pytest.approx((1e-4, 1e-4))
    assert trainer.cfg.stream == 1
    # A new stream gives other batches and noise than the run's first one at the same step.
    first, moved = (next(Trainer(c)._batches(data, 5, 10)) for c in (resumed.replace(stream=0), resumed))
    assert not np.array_equal(first["noise"].numpy(), moved["noise"].numpy())


def test_repeated_divergence_stops_after_max_rollbacks_with_the_run_intact(tmp_path, image_dir, monkeypatch):
    poison = Poison(arm_after=3, persistent=True)
    monkeypatch.setitem(LOSSES, "nonsaturating", poison.loss)
    cfg = tiny(tmp_path / "r", image_dir, epochs=2, checkpoint_every=3, max_rollbacks=2)
    with pytest.raises(NonFiniteLossError, match=r"non-finite 3 times .*--max-rollbacks 2.*ckpt-3 .*x0.125.*--load"):
        gan_anime.train(cfg, hooks=[poison])
    assert poison.rollbacks == [3, 3, 3]
    assert tf.train.latest_checkpoint(str(tmp_path / "r" / "checkpoints")).endswith("ckpt-3")
    assert len(read_rows(tmp_path / "r" / "logs" / "rollbacks.csv")) == 3
    assert_every_checkpoint_finite(cfg.run_dir)
    # The losses log stops at the last good checkpoint.
    assert [int(r["step"]) for r in read_rows(tmp_path / "r" / "logs" / "losses.csv")] == [1, 2, 3]


def test_a_checkpoint_is_never_written_with_non_finite_weights(tmp_path, image_dir):
    data, cfg = prepare_run(tiny(tmp_path / "r", image_dir, max_steps=2))
    trainer = Trainer(cfg)
    trainer.fit(data)
    before = list(trainer.manager.checkpoints)
    w = trainer.D.trainable_weights[0]
    w.assign(w * np.inf)
    with pytest.raises(Diverged, match="weights"):
        trainer.save()
    assert list(trainer.manager.checkpoints) == before


def test_nan_weights_set_from_outside_are_caught_and_rolled_back(tmp_path, image_dir):
    """Weights poisoned between two fit calls: the first step's statistics catch it; the run goes back to
    ckpt-2 and finishes with finite weights."""
    data, cfg = prepare_run(tiny(tmp_path / "r", image_dir, max_steps=2, readback_every=4))
    trainer = Trainer(cfg)
    trainer.fit(data)
    trainer.G.trainable_weights[0].assign(trainer.G.trainable_weights[0] * np.nan)
    trainer.cfg = trainer.cfg.replace(max_steps=9)
    result = trainer.fit(data)
    assert result.step == 9
    assert read_rows(tmp_path / "r" / "logs" / "rollbacks.csv")[0]["restored_step"] == "2"
    assert_every_checkpoint_finite(cfg.run_dir)


# ------------------------------------------------------------------------------- damaged checkpoints
def _damage(prefix):
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)


def test_a_damaged_newest_checkpoint_is_reported_and_the_one_before_used(tmp_path, image_dir, caplog):
    cfg = tiny(tmp_path / "r", image_dir, max_steps=4, checkpoint_every=2)
    gan_anime.train(cfg)
    ckpt_dir = str(tmp_path / "r" / "checkpoints")
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-4")
    _damage(os.path.join(ckpt_dir, "ckpt-4"))
    again = gan_anime.train(cfg.replace(max_steps=6), resume=True)
    assert again.step == 6
    warnings = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warnings) == 1 and "ckpt-4" in warnings[0] and "\n" not in warnings[0]
    rows = read_rows(tmp_path / "r" / "logs" / "losses.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]


def test_no_readable_checkpoint_is_one_clear_error(tmp_path, image_dir):
    cfg = tiny(tmp_path / "r", image_dir, max_steps=2, keep_checkpoints=1)
    gan_anime.train(cfg)
    _damage(str(tmp_path / "r" / "checkpoints" / "ckpt-2"))
    with pytest.raises(ValueError, match="none of the checkpoints .* can be read back whole"):
        gan_anime.train(cfg.replace(max_steps=3), resume=True)


def test_a_fresh_run_saves_its_initial_weights_first(tmp_path, image_dir):
    """A run killed before its first checkpoint can still resume (and a NaN in the first steps has a
    checkpoint to go back to)."""
    cfg = tiny(tmp_path / "r", image_dir, max_steps=1)
    gan_anime.train(cfg)
    names = os.listdir(tmp_path / "r" / "checkpoints")
    assert any(n.startswith("ckpt-0.") for n in names) and any(n.startswith("ckpt-1.") for n in names)


# ------------------------------------------------------------------------------- preflight, epochs
def test_preflight_batch_larger_than_the_data(tmp_path, image_dir):
    with pytest.raises(ValueError, match=r"one step needs 64 images .* dataset's 40"):
        gan_anime.train(tiny(tmp_path / "r", image_dir, batch_size=64))
    assert not os.path.isdir(tmp_path / "r" / "checkpoints")


def test_preflight_unwritable_run_directory(tmp_path, image_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=r"run directory .*a_file/r is not writable"):
        gan_anime.train(tiny(blocker / "r", image_dir, cache_dir=str(tmp_path / "cache")))


def test_preflight_needs_room_for_the_checkpoints(tmp_path, image_dir, monkeypatch):
    import shutil
    from collections import namedtuple
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9 - 1000, 1000))
    with pytest.raises(ValueError, match=r"has 0 MiB free but the run's checkpoints need about"):
        gan_anime.train(tiny(tmp_path / "r", image_dir))


def test_a_stop_on_an_epochs_last_step_counts_that_epoch(tmp_path, image_dir):
    """max_steps 5 ends exactly on epoch 1's last step: the checkpoint says 1 epoch done, so --load
    --epochs 2 (2 more) trains 10 more steps, not 5."""
    cfg = tiny(tmp_path / "r", image_dir, epochs=3, max_steps=5)
    first = gan_anime.train(cfg)
    assert (first.step, first.epoch) == (5, 1)
    assert os.path.isfile(tmp_path / "r" / "samples" / "epoch_0001.png")
    again = gan_anime.train(cfg.replace(epochs=3, max_steps=0), resume=True)
    assert (again.step, again.epoch) == (15, 3)


# ------------------------------------------------------------------------------- the command line
def test_cli_blow_up_stops_cleanly_and_load_with_a_lower_scale_finishes(run_cmd, image_dir, tmp_path):
    run = tmp_path / "r"
    common = ["--run-dir", run, "--log-every", "1"]
    first = run_cmd(["ENTRY", "--train", "--data-dir", image_dir, "--image-size", "16", "--width", "4",
                     "--noise-vector", "8", "--batch-size", "8", "--epochs", "2", "--learning-rate", "1e30",
                     "--max-rollbacks", "2", *common], tmp_path)
    assert first.returncode == 1, first.stderr[-2000:]
    error = first.stderr.strip().splitlines()[-1]
    assert error.startswith("gan-anime: error: values became non-finite 3 times") and "--load" in error
    assert "Traceback" not in first.stderr
    assert len(read_rows(run / "logs" / "rollbacks.csv")) == 3
    assert_every_checkpoint_finite(str(run))
    # --learning-rate is refused by --load with a pointer to --lr-scale, which is accepted.
    refused = run_cmd(["ENTRY", "--load", "--learning-rate", "1e-4", *common], tmp_path)
    assert refused.returncode == 2 and "--lr-scale" in refused.stderr
    again = run_cmd(["ENTRY", "--load", "--lr-scale", "1e-34", *common], tmp_path)   # 1e30 x 1e-34 = 1e-4
    assert again.returncode == 0, again.stderr[-2000:]
    rows = read_rows(run / "logs" / "losses.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 11))
    assert float(rows[-1]["lr_g"]) == pytest.approx(1e-4)
    assert json.loads((run / "config.json").read_text())["lr_scale"] == pytest.approx(1e-34)


def test_generating_from_a_run_with_a_damaged_newest_checkpoint_uses_the_one_before(tmp_path, image_dir, run_cmd):
    cfg = tiny(tmp_path / "r", image_dir, max_steps=4, checkpoint_every=2)
    gan_anime.train(cfg)
    _damage(str(tmp_path / "r" / "checkpoints" / "ckpt-4"))
    assert gan_anime.load(cfg.run_dir).checkpoint.endswith("ckpt-2")
    with pytest.raises(ValueError, match="ckpt-4 cannot be read back"):
        gan_anime.load(cfg.run_dir, 4)
    # The command line's --load finds the epoch count the same way, then trains on from ckpt-2.
    again = run_cmd(["ENTRY", "--load", "--run-dir", cfg.run_dir, "--max-steps", "5"], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "step 5" in again.stdout


class Crash(Hook):
    """Raises in the middle of a run, after some steps were logged but before their checkpoint."""

    def __init__(self, at_step):
        self.at_step = at_step

    def step_end(self, event):
        if event.step == self.at_step:
            raise RuntimeError("crash for the test")


def tensorboard_steps(run_dir, tag="d_loss"):
    from tensorflow.core.util import event_pb2
    steps = []
    for name in sorted(os.listdir(os.path.join(run_dir, "logs"))):
        if not name.startswith("events.out.tfevents"):
            continue
        for record in tf.data.TFRecordDataset(os.path.join(run_dir, "logs", name)):
            event = event_pb2.Event.FromString(record.numpy())
            steps += [event.step for v in event.summary.value if v.tag == tag]
    return sorted(steps)


def test_tensorboard_gets_each_step_once_across_a_crash_and_resume(tmp_path, image_dir):
    pytest.importorskip("tensorboard")
    cfg = tiny(tmp_path / "r", image_dir, max_steps=5, checkpoint_every=2)
    with pytest.raises(RuntimeError, match="crash for the test"):
        gan_anime.train(cfg, hooks=[Crash(at_step=4)])      # steps 3-4 ran after ckpt-2
    assert tensorboard_steps(cfg.run_dir) == [1, 2]
    gan_anime.train(cfg, resume=True)
    assert tensorboard_steps(cfg.run_dir) == [1, 2, 3, 4, 5]
