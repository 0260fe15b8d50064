"""What a run shows and leaves besides checkpoints: the open-ended per-step log, TensorBoard events,
loss.png, progress.gif, the progress bar or lines, and interpolation videos."""

import csv
import logging
import os

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import gan_anime
from conftest import TINY, cli_error
from conftest import tiny_config as tiny
from gan_anime.cli import flags as cli_flags
from gan_anime.plots import panels, plot_losses, read_series
from gan_anime.training.checkpoint import CsvLog
from gan_anime.training import hooks as hooks_module
from gan_anime.training.hooks import Hook, ProgressBarHook, ProgressLinesHook, Throttled, progress_hook

SCALARS = {"d_loss", "g_loss", "d_real", "d_fake", "lr_g", "lr_d", "images_per_s"}


def _csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def _events(log_dir):
    """{tag: (plugin name, [steps])} of every TensorBoard event file in ``log_dir``."""
    found = {}
    for name in os.listdir(log_dir):
        if ".tfevents." not in name:
            continue
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                plugin, steps = found.setdefault(value.tag, (value.metadata.plugin_data.plugin_name, []))
                steps.append(event.step)
    return found


# ------------------------------------------------------------------------------ the per-step log
def test_csv_log_widens_its_header_and_drops_rows_past_a_resume(tmp_path):
    path = str(tmp_path / "logs" / "losses.csv")
    log = CsvLog(path, 0)
    for step in (1, 2):
        log.add({"step": step, "epoch": 0, "d_loss": 0.5})
    log.flush()
    log.add({"step": 3, "epoch": 0, "d_loss": 0.4, "fid": 80.0})   # a key no earlier row had
    log.flush()
    log.add({"step": 4, "epoch": 0, "d_loss": 0.3})
    log.flush()
    fields, rows = _csv(path)
    assert fields == ["step", "epoch", "d_loss", "fid"]
    assert [r["fid"] for r in rows] == ["", "", "80.0", ""]
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert not [n for n in os.listdir(tmp_path / "logs") if ".tmp" in n]   # the rewrite left no temporary
    CsvLog(path, 2)                                                       # resumed at step 2
    fields, rows = _csv(path)
    assert fields == ["step", "epoch", "d_loss", "fid"] and [r["step"] for r in rows] == ["1", "2"]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f"{i:02d}.png")
    return str(d)





class AddKey(Hook):
    """Reports ``key`` = step / 10 from step ``start`` on, as an auxiliary loss or FID would."""

    def __init__(self, key, start):
        self.key, self.start = key, start

    def step_end(self, event):
        if event.step >= self.start:
            event.logs[self.key] = event.step / 10


def test_a_hook_adds_a_key_mid_run_and_a_resume_drops_rows(tmp_path, image_dir):
    run = tmp_path / "r"
    # 40 images, batch 8: 5 steps per epoch.  Checkpoints at 2, 4, 5 (epoch end) and 6 (the stop).
    cfg = tiny(run, image_dir, epochs=2, max_steps=6, checkpoint_every=2, log_every=100)
    gan_anime.train(cfg, hooks=[AddKey("aux", 3)])
    fields, rows = _csv(run / "logs" / "losses.csv")
    assert fields[:2] == ["step", "epoch"] and SCALARS < set(fields) and fields[-1] == "aux"
    assert [r["step"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [r["aux"] for r in rows] == ["", "", "0.3", "0.4", "0.5", "0.6"]
    events = _events(run / "logs")
    assert events["aux"] == ("scalars", [3, 4, 5, 6])      # added keys are written whenever they appear
    assert events["d_loss"] == ("scalars", [5])              # step keys every log_every steps and at epoch end
    assert ("aux", ("aux",), True) in panels(list(read_series(str(run / "logs" / "losses.csv"))))

    # Resume from the checkpoint at step 4, as after losing the later ones: rows 5 and 6 are dropped
    # and written again by the resumed run, which reports one more key.
    ckpt_dir = str(run / "checkpoints")
    tf.compat.v1.train.update_checkpoint_state(ckpt_dir, os.path.join(ckpt_dir, "ckpt-4"))
    gan_anime.train(cfg.replace(max_steps=8), resume=True, hooks=[AddKey("aux", 3), AddKey("aux2", 7)])
    fields, rows = _csv(run / "logs" / "losses.csv")
    assert fields[-2:] == ["aux", "aux2"]
    assert [r["step"] for r in rows] == [str(s) for s in range(1, 9)]
    assert [r["aux"] for r in rows] == ["", "", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8"]
    assert [r["aux2"] for r in rows] == [""] * 6 + ["0.7", "0.8"]
    assert Image.open(run / "loss.png").size[0] > 0


# ------------------------------------------------------------------------------ progress
def test_progress_bar_on_a_terminal_lines_otherwise(tmp_path, image_dir, capsys, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="absl")
    gan_anime.train(tiny(tmp_path / "bar", image_dir, epochs=1), progress="bar")
    err = capsys.readouterr().err
    assert "epoch 1/1:" in err and "100%|" in err and "img/s" in err and "d_loss=" in err and "D(x)=" in err
    assert "step 5/5" not in caplog.text and "epoch 1 done" in caplog.text
    caplog.clear()
    gan_anime.train(tiny(tmp_path / "lines", image_dir, epochs=1), progress="lines")
    assert "%|" not in capsys.readouterr().err
    lines = [m for m in caplog.messages if m.startswith("epoch 1/1 step")]
    assert len(lines) == 5 and "d_loss" in lines[-1] and "D(G(z))" in lines[-1] and "img/s  ETA" in lines[-1]

    assert type(progress_hook("auto")) is ProgressLinesHook            # pytest's stderr is no terminal
    monkeypatch.setattr("gan_anime.training.hooks._terminal_columns", lambda: 80)
    assert type(progress_hook("auto")) is ProgressBarHook
    with pytest.raises(ValueError, match="progress must be one of"):
        progress_hook("fancy")


# ------------------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def cli_run(run_cmd, tmp_path_factory):
    """A tiny conditional run on the built-in faces by the command line: 2 epochs of 8 steps."""
    cwd = tmp_path_factory.mktemp("report")
    result = run_cmd(["ENTRY", "--train", *TINY, "--epochs", "2", "--name", "run"], cwd)   # runs/run
    assert result.returncode == 0, result.stderr
    return cwd, os.path.join(cwd, "runs", "run")


def test_run_dir_has_loss_plot_and_progress_gif(cli_run):
    _, run_dir = cli_run
    assert Image.open(os.path.join(run_dir, "loss.png")).format == "PNG"
    gif = iio.imread(os.path.join(run_dir, "progress.gif"), index=None)
    grid = np.asarray(Image.open(os.path.join(run_dir, "samples", "epoch_0002.png")).convert("RGB"))
    assert gif.shape[0] == 2 and gif.shape[1:3] == grid.shape[:2]   # one frame per epoch, the grid's size
    assert not [n for n in os.listdir(run_dir) if ".tmp" in n]


def test_tensorboard_has_scalars_and_the_sample_grid(cli_run):
    _, run_dir = cli_run
    events = _events(os.path.join(run_dir, "logs"))
    for tag in SCALARS:
        assert events[tag] == ("scalars", list(range(1, 17))), tag   # --log-every 1
    assert events["samples"] == ("images", [8, 16])                   # after each epoch


def test_interpolation_writes_mp4_and_gif(cli_run, run_cmd):
    cwd, run_dir = cli_run
    result = run_cmd(["ENTRY", "--inference", "--interpolate", "3", "--frames", "2", "--seed", "4"], cwd)
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("interpolated seeds 4..6 (5 frames): "))
    mp4, gif = (os.path.join(cwd, p) for p in line.split(": ", 1)[1].split())
    out = os.path.join(run_dir, "generated", "0001-seed4")
    assert (mp4, gif) == (os.path.join(out, "interpolation.mp4"), os.path.join(out, "interpolation.gif"))
    video = iio.imread(mp4, index=None, plugin="FFMPEG")
    assert video.shape == (5, 256, 256, 3)              # 16 px faces enlarged 16x, one frame per step
    assert iio.imread(gif, index=None).shape == (5, 256, 256, 3)


@pytest.mark.parametrize("argv, expected", [
    (["--inference", "--interpolate", "1"], "--interpolate: expected at least 2 seeds to walk through, got 1"),
    (["--inference", "--interpolate", "3", "--frames", "0"],
     "--frames: expected a positive number of frames between two seeds, got 0"),
    (["--inference", "--frames", "5"], "--frames: needs --interpolate K"),
    (["--inference", "--interpolate", "3", "--inference-count", "4"], "--inference-count: not used with --interpolate"),
    (["--train", "--interpolate", "3"], "--interpolate: not used by --train"),
    (["--inference", "--interpolate", "x"], "--interpolate: expected an integer, got 'x'"),
])
def test_wrong_interpolation_flags_exit_2_with_one_line(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli_error(argv, capsys)
    assert code == 2
    assert err.startswith(f"gan-anime: error: {expected}"), err
    assert err.count("\n") == 1


def test_frames_default_is_the_documented_one():
    from gan_anime.inference import INTERPOLATION_FRAMES
    assert f"default {INTERPOLATION_FRAMES}" in cli_flags.FLAGS["frames"].help


def test_plot_losses_from_a_notebook(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    rows = ["step,epoch,d_loss,g_loss,d_real,d_fake,lr_g,lr_d,images_per_s,fid"]
    rows += [f"{s},0,{1 + np.sin(s / 5):.4f},{2 - np.cos(s / 7):.4f},0.6,0.3,2e-4,2e-4,400,"
             + (f"{100 - s / 10}" if s % 50 == 0 else "") for s in range(1, 301)]
    (logs / "losses.csv").write_text("\n".join(rows) + "\n")
    series = read_series(str(logs / "losses.csv"))
    assert len(series["fid"][0]) == 6 and "images_per_s" not in series
    assert [t for t, _, _ in panels(list(series))] == ["losses", "discriminator outputs D(x), D(G(z))",
                                                        "learning rates", "fid"]
    path = plot_losses(str(tmp_path), out=str(tmp_path / "plot.png"))
    assert path == str(tmp_path / "plot.png") and Image.open(path).format == "PNG"
    with pytest.raises(FileNotFoundError, match="train the run first"):
        plot_losses(str(tmp_path / "nothing"))


def test_progress_gif_keeps_at_most_max_frames_with_first_and_last(tmp_path):
    from gan_anime.animation import MAX_PROGRESS_FRAMES, write_progress_gif
    n = MAX_PROGRESS_FRAMES + 50
    (tmp_path / "samples").mkdir()
    for e in range(1, n + 1):
        Image.fromarray(np.full((8, 8, 3), e, np.uint8)).save(tmp_path / "samples" / f"epoch_{e:04d}.png")
    frames = iio.imread(write_progress_gif(str(tmp_path)), index=None)
    assert len(frames) == MAX_PROGRESS_FRAMES
    assert frames[0][0, 0, 0] == 1 and frames[-1][0, 0, 0] == n


def test_atomic_write_leaves_nothing_behind_when_the_writer_fails(tmp_path):
    from gan_anime.files import atomic_write
    target = tmp_path / "out.npy"

    def broken(tmp):
        open(tmp, "w").write("half")
        raise OSError("disk full")
    with pytest.raises(OSError):
        atomic_write(str(target), broken)
    assert list(tmp_path.iterdir()) == []
    atomic_write(str(target), lambda tmp: np.save(tmp, np.arange(3)))
    assert np.load(target).tolist() == [0, 1, 2] and [p.name for p in tmp_path.iterdir()] == ["out.npy"]


def test_pictures_are_redrawn_at_most_a_share_of_the_time_and_caught_up_at_the_end(monkeypatch, caplog):
    clock = [100.0]
    monkeypatch.setattr(hooks_module.time, "monotonic", lambda: clock[0])
    drawn = []

    def draw():   # a drawing that takes 2 s
        drawn.append(clock[0])
        clock[0] += 2.0

    pictures = Throttled(draw, share=0.1, first_after=10.0)
    pictures()                       # t = 100: within the first 10 s, so only noted
    assert drawn == [] and pictures.behind
    clock[0] = 110.0
    pictures()                       # drawn 110-112; the next waits until 110 + 2 / 0.1 = 130
    assert drawn == [110.0] and not pictures.behind
    clock[0] = 129.0
    pictures()
    assert drawn == [110.0] and pictures.behind
    clock[0] = 130.0
    pictures()
    assert drawn == [110.0, 130.0]
    pictures.catch_up(result="done")   # up to date: nothing to draw
    assert drawn == [110.0, 130.0]
    pictures()                         # t = 132: too soon, behind
    pictures.catch_up(result="done")   # the end of the run draws however recent the last drawing was
    assert drawn == [110.0, 130.0, 132.0]

    def broken():
        raise OSError("disk full")

    failing = Throttled(broken, first_after=10.0)
    failing()                                        # behind: the first 10 s
    with caplog.at_level(logging.WARNING):
        failing.catch_up(result=None)                # training failed: the drawing's error is only logged
    assert "disk full" in caplog.text
    failing = Throttled(broken, first_after=10.0)
    failing()
    with pytest.raises(OSError, match="disk full"):
        failing.catch_up(result="done")              # training finished: the error is the caller's
