"""What the training loop reports, as small objects it calls: the per-step log, TensorBoard,
progress lines or bar, sample grids, ``loss.png`` and ``progress.gif``.

The loop (:meth:`gan_anime.training.trainer.Trainer.fit`) trains, checkpoints, rolls back and
stops; everything else it writes or shows is a :class:`Hook`.  It calls each hook, in list order:

* ``begin(run)`` once, before the first step (:class:`RunInfo`: config, trainer, steps per epoch);
* ``step_end(event)`` after every step (:class:`StepEnd`).  ``event.logs`` holds floats: the
  step's statistics (``d_loss``, ``g_loss``, ``d_real``, ``d_fake``, whatever the step returns),
  ``lr_g``, ``lr_d`` and ``images_per_s``.  A hook may add keys; hooks after it see them;
* ``checkpoint(path)`` after each checkpoint is written (mid-epoch, at epoch ends, when stopping);
* ``epoch_end(event)`` after an epoch's checkpoint (:class:`EpochEnd`);
* ``end(result)`` once, also when training fails (``result`` is then None).

Adding a hook, e.g. FID every N steps (the key appears in losses.csv, TensorBoard, the
progress line and a panel of loss.png without further changes)::

    class FidEvery(Hook):
        def __init__(self, every: int):
            self.every = every

        def begin(self, run):
            self.trainer = run.trainer

        def step_end(self, event):
            if event.step % self.every == 0:
                self.trainer.refresh_ema_statistics()   # G_ema's own batch-norm statistics, as save() does
                event.logs["fid"] = compute_fid(self.trainer.G_ema or self.trainer.G)

    gan_anime.train(cfg, hooks=[FidEvery(1000)])

Hooks given to ``train``/``fit`` run after the sample grid and before the built-in writers,
on the chief worker only.  To make one always on, add it to :func:`default_hooks`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import time
from typing import Any, Dict, FrozenSet, List, Optional, Sequence

import numpy as np
from absl import logging

from gan_anime.animation import write_progress_gif
from gan_anime.plots import LABELS, plot_losses
from gan_anime.training.checkpoint import CsvLog

PROGRESS_MODES = ("auto", "bar", "lines")
#: Left out of the progress line (they are in losses.csv, TensorBoard and loss.png): the line stays short.
NOT_IN_PROGRESS = ("lr_g", "lr_d", "images_per_s", "d_grad_norm", "g_grad_norm")


@dataclasses.dataclass
class RunInfo:
    cfg: Any                 # gan_anime.Config of the run
    trainer: Any             # gan_anime.training.trainer.Trainer: G, D, G_ema, counters, sample_grid ...
    steps_per_epoch: int
    start_step: int          # global step the loop started from (0, or the restored step)

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * self.steps_per_epoch


@dataclasses.dataclass
class StepEnd:
    step: int                # global steps done, counting this one
    epoch: int               # 0-based epoch this step belongs to
    step_in_epoch: int       # steps done in this epoch, counting this one (1..steps_per_epoch)
    logs: Dict[str, float]   # key -> value; hooks may add keys
    log_step: bool           # every cfg.log_every steps and at an epoch's last step
    step_keys: FrozenSet[str] = frozenset()   # the keys the loop put in (not added by hooks)

    @property
    def extras(self) -> Dict[str, float]:
        """What hooks added this step (e.g. an occasional ``fid``)."""
        return {k: v for k, v in self.logs.items() if k not in self.step_keys}


@dataclasses.dataclass
class EpochEnd:
    epoch: int               # epochs completed (1-based, as in samples/epoch_NNNN.png)
    step: int
    checkpoint: Optional[str]
    outputs: Dict[str, str] = dataclasses.field(default_factory=dict)   # e.g. "grid" -> PNG path


class Hook:
    """Base class: override the calls you need (see the module docstring)."""

    def begin(self, run: RunInfo) -> None:
        pass

    def step_end(self, event: StepEnd) -> None:
        pass

    def checkpoint(self, path: str) -> None:
        pass

    def epoch_end(self, event: EpochEnd) -> None:
        pass

    def rollback(self, step: int) -> None:
        """The run went back to its checkpoint at ``step`` (non-finite values): forget later steps."""

    def end(self, result) -> None:
        pass


class HookList(Hook):
    """Calls each hook in order."""

    def __init__(self, hooks: Sequence[Hook]):
        self.hooks = list(hooks)

    def begin(self, run):
        for h in self.hooks:
            h.begin(run)

    def step_end(self, event):
        for h in self.hooks:
            h.step_end(event)

    def checkpoint(self, path):
        for h in self.hooks:
            h.checkpoint(path)

    def epoch_end(self, event):
        for h in self.hooks:
            h.epoch_end(event)

    def rollback(self, step):
        for h in self.hooks:
            h.rollback(step)

    def end(self, result):
        for h in self.hooks:
            h.end(result)


# ------------------------------------------------------------------------------------------ built-in
class SamplesHook(Hook):
    """samples/epoch_NNNN.png from the fixed noise after every epoch (+ cfg.generate_per_epoch singles)."""

    def begin(self, run):
        self.run = run

    def epoch_end(self, event):
        cfg, trainer = self.run.cfg, self.run.trainer
        path = os.path.join(cfg.run_dir, "samples", f"epoch_{event.epoch:04d}.png")
        event.outputs["grid"] = trainer.sample_grid(path)
        if cfg.generate_per_epoch:
            trainer.sample_singles(os.path.join(cfg.run_dir, "samples", f"epoch_{event.epoch:04d}"),
                                   cfg.generate_per_epoch, cfg.seed + event.epoch)


class CsvLogHook(Hook):
    """Every step's logs as a row of logs/losses.csv, flushed at checkpoints (see :class:`CsvLog`)."""

    def begin(self, run):
        self.log = CsvLog(os.path.join(run.cfg.run_dir, "logs", "losses.csv"), run.start_step)

    def step_end(self, event):
        self.log.add({"step": event.step, "epoch": event.epoch,
                      **{k: f"{v:.6g}" for k, v in event.logs.items()}})

    def checkpoint(self, path):
        self.log.flush()

    def rollback(self, step):
        self.log.rows = [r for r in self.log.rows if r["step"] <= step]


class TensorBoardHook(Hook):
    """Scalars (every log step; keys added by hooks whenever they appear) and the epoch grid, in logs/.

    Scalars are held until the next checkpoint, as the CSV rows are: events past the last checkpoint
    never reach the file, so a resumed or rolled-back run does not write a step twice.
    """

    def begin(self, run):
        import tensorflow as tf
        self.tf = tf
        self.writer = None
        if importlib.util.find_spec("tensorboard") is None:   # tf.summary.scalar/image live in it
            logging.warning("tensorboard is not installed: no TensorBoard summaries (pip install tensorboard)")
            return
        self.writer = tf.summary.create_file_writer(os.path.join(run.cfg.run_dir, "logs"))
        self.pending: List[tuple] = []   # (step, {name: value}) since the last checkpoint

    def step_end(self, event):
        values = event.logs if event.log_step else event.extras
        if self.writer is not None and values:
            self.pending.append((event.step, dict(values)))

    def checkpoint(self, path):
        if self.writer is None:
            return
        for step, values in self.pending:
            with self.writer.as_default(step=step):
                for k, v in values.items():
                    self.tf.summary.scalar(k, v)
        self.pending = []
        self.writer.flush()   # TensorBoard sees the run as it goes, and a crash loses little

    def rollback(self, step):
        self.pending = [(s, v) for s, v in self.pending if s <= step]

    def epoch_end(self, event):
        grid = event.outputs.get("grid")
        if self.writer is None or not grid:
            return
        from PIL import Image
        with Image.open(grid) as im:
            pixels = np.asarray(im.convert("RGB"))[None]
        with self.writer.as_default(step=event.step):
            self.tf.summary.image("samples", pixels)

    def end(self, result):
        if self.writer is not None:
            self.writer.close()


#: The pictures redrawn as a run goes (loss.png, progress.gif) take at most about this share of its time,
#: and are first drawn this many seconds into a training call (and at its end, however short).
DRAWING_SHARE = 0.05
FIRST_DRAWING_AFTER_S = 10.0


class Throttled:
    """``draw()`` called when asked, unless the last drawing was recent: after one that took t seconds the
    next waits t * (1 / ``share`` - 1) seconds, so drawing takes at most about ``share`` of the time.
    Asked in between, it only notes that the picture is behind; ``catch_up()`` draws then (a run's end).
    Nothing is drawn in the first ``first_after`` seconds, so a run of a few seconds draws once, at its end."""

    def __init__(self, draw, share: float = DRAWING_SHARE, first_after: float = FIRST_DRAWING_AFTER_S):
        self.draw, self.share = draw, share
        self.next_at, self.behind = time.monotonic() + first_after, False

    def __call__(self) -> None:
        if time.monotonic() < self.next_at:
            self.behind = True
            return
        self._draw_now()

    def _draw_now(self) -> None:
        start = time.monotonic()
        self.draw()
        self.behind = False
        self.next_at = start + (time.monotonic() - start) / self.share

    def catch_up(self, result) -> None:
        """Draw if the picture is behind.  ``result`` None (training failed): a failure to draw is logged,
        not raised, so it cannot hide the error that stopped training."""
        if not self.behind:
            return
        try:
            self._draw_now()
        except Exception as error:   # noqa: BLE001 -- only while another error is on its way out
            if result is not None:
                raise
            logging.warning("could not redraw after the failure: %s", error)


class LossPlotHook(Hook):
    """loss.png in the run directory, redrawn from losses.csv at checkpoints (:class:`Throttled`: each
    checkpoint of a run whose checkpoints are seconds apart, at most ~5% of its time otherwise) and at the end."""

    def begin(self, run):
        self.run_dir = run.cfg.run_dir
        self.enabled = importlib.util.find_spec("matplotlib") is not None
        if not self.enabled:
            logging.warning("matplotlib is not installed: no loss.png (pip install matplotlib)")
        self.draw = Throttled(lambda: plot_losses(self.run_dir))

    def checkpoint(self, path):
        if self.enabled:
            self.draw()

    def end(self, result):
        if self.enabled:
            self.draw.catch_up(result)


class ProgressGifHook(Hook):
    """progress.gif in the run directory: every epoch's grid in order, rebuilt after epochs (:class:`Throttled`,
    as loss.png) and at the end."""

    def begin(self, run):
        self.run_dir = run.cfg.run_dir
        self.draw = Throttled(lambda: write_progress_gif(self.run_dir))

    def epoch_end(self, event):
        if event.outputs.get("grid"):
            self.draw()

    def end(self, result):
        self.draw.catch_up(result)


def _fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _shown(logs: Dict[str, float], sep: str = " ") -> str:
    """'d_loss 0.693  g_loss 0.71  D(x) 0.5 ...': every key but the learning rates and the rate."""
    return "  ".join(f"{LABELS.get(k, k)}{sep}{v:.3g}" for k, v in logs.items() if k not in NOT_IN_PROGRESS)


class ProgressLinesHook(Hook):
    """An absl INFO line every ``cfg.log_every`` steps: the step's logs, images/s and the run's ETA."""

    def begin(self, run):
        self.run = run
        self.window_t, self.window_step = time.time(), run.start_step

    def _rate_and_eta(self, step: int):
        """Images/s since the last log step, and the seconds the run has left at that rate."""
        batch, now = self.run.cfg.batch_size * self.run.cfg.n_critic, time.time()   # images per step
        rate = (step - self.window_step) * batch / max(now - self.window_t, 1e-9)
        self.window_t, self.window_step = now, step
        return rate, (self.run.total_steps - step) * batch / max(rate, 1e-9)

    def step_end(self, event):
        if not event.log_step:
            return
        cfg = self.run.cfg
        rate, eta = self._rate_and_eta(event.step)
        logging.info("epoch %d/%d step %d/%d  %s  %.0f img/s  ETA %s", event.epoch + 1, cfg.epochs,
                     event.step_in_epoch, self.run.steps_per_epoch, _shown(event.logs), rate, _fmt_time(eta))

    def epoch_end(self, event):
        logging.info("epoch %d done: checkpoint %s", event.epoch, event.checkpoint)

    def rollback(self, step):
        self.window_t, self.window_step = time.time(), step


class ProgressBarHook(ProgressLinesHook):
    """A tqdm bar per epoch on stderr (images, images/s, the epoch's ETA; the logs and the run's ETA)."""

    def begin(self, run):
        super().begin(run)
        self.bar = None

    def step_end(self, event):
        from tqdm import tqdm
        cfg = self.run.cfg
        if self.bar is None:
            # Counted in images (unit_scale), so tqdm's own rate is images/s.
            self.bar = tqdm(total=self.run.steps_per_epoch, initial=event.step_in_epoch - 1, unit="img",
                            unit_scale=cfg.batch_size * cfg.n_critic, desc=f"epoch {event.epoch + 1}/{cfg.epochs}",
                            file=sys.stderr, dynamic_ncols=True, leave=True)
        if event.log_step:
            _, eta = self._rate_and_eta(event.step)
            self.bar.set_postfix_str(f"{_shown(event.logs, '=')}  run ETA {_fmt_time(eta)}", refresh=False)
        self.bar.update(1)
        if event.step_in_epoch == self.run.steps_per_epoch:
            self._close()

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def rollback(self, step):
        super().rollback(step)
        self._close()   # the next step opens a bar at the restored position

    def end(self, result):
        self._close()


def _terminal_columns() -> int:
    """Width of the terminal on stderr; 0 when stderr is no terminal, or one without a size (a bare
    pseudo-terminal, where tqdm would draw an empty bar)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 0
    except (AttributeError, ValueError, OSError):   # replaced streams (notebooks, pytest) have no fileno
        return 0


def progress_hook(mode: str = "auto") -> Hook:
    """"bar": :class:`ProgressBarHook`; "lines": :class:`ProgressLinesHook`; "auto": a bar when
    stderr is a terminal (and tqdm is installed), else lines (CI, log files, pytest)."""
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress must be one of {', '.join(PROGRESS_MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "bar" if _terminal_columns() > 0 and importlib.util.find_spec("tqdm") is not None else "lines"
    return ProgressBarHook() if mode == "bar" else ProgressLinesHook()


def default_hooks(extra: Sequence[Hook] = (), progress: str = "auto") -> List[Hook]:
    """The chief's hooks, in calling order.  ``extra`` come after the grid (so an epoch-end hook
    can use ``event.outputs["grid"]``) and before the writers (so keys they add get written)."""
    return [SamplesHook(), *extra, CsvLogHook(), TensorBoardHook(), LossPlotHook(), ProgressGifHook(),
            progress_hook(progress)]
