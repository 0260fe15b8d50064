"""The GAN trainer: one ``tf.function`` train step run by ``strategy.run`` under ``strategy.scope()``.

The same code trains on one CPU, several GPUs (MirroredStrategy) or several
machines (MultiWorkerMirroredStrategy): per-replica losses are averaged over the
*global* batch and the optimizers sum gradients across replicas.  With several workers
the chief's run, restored state and any worker's stop request reach every worker
(:mod:`gan_anime.training.multiworker`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from gan_anime.config import EMA_WARMUP, Config, validate
from gan_anime.data import ImageSet
from gan_anime.data.pipeline import DataTensors, make_dataset, steps_per_epoch
from gan_anime.hardware import resolve_precision
from gan_anime.images import make_grid, save_png
from gan_anime.inference import generator_inputs, generator_tensors, run_generator
from gan_anime.models import build_models
from gan_anime.schedules import Scaled, build_schedule
from gan_anime.training import multiworker, recovery
from gan_anime.training.checkpoint import Counters, StopSignal, make_manager
from gan_anime.training.hooks import PROGRESS_MODES, EpochEnd, Hook, HookList, RunInfo, StepEnd, default_hooks
from gan_anime.training.recovery import Diverged, NonFiniteLossError
from gan_anime.training.step import TrainStep
from gan_anime.training.strategy import is_chief, make_strategy
from gan_anime.variants import get_variant


#: Noise samples used to set the averaged generator's batch-norm statistics.
STANDING_STATS_BATCH = 256


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    step: int
    epoch: int
    status: str                     # "finished" | "interrupted" | "max_steps" | "max_minutes"
    checkpoint: Optional[str]
    last: Dict[str, float]
    seconds: float
    images_per_s: float
    signal: Optional[str] = None    # "SIGINT" or "SIGTERM" when status is "interrupted"
    epochs: int = 0                 # the run's total epochs (cfg.epochs of the training, on every worker)


def update_average(average, weights, decay: float, step, warmup: float = EMA_WARMUP) -> None:
    """One update of a moving average of ``weights`` (variables, in the same order):
    average <- d * average + (1 - d) * weights, d = min(decay, (1 + s) / (warmup + s)), s = ``step``, the
    updates before this one (the warm-up of :data:`gan_anime.config.EMA_WARMUP`)."""
    s = tf.cast(step, tf.float32)
    d = tf.minimum(decay, (1.0 + s) / (warmup + s))
    for e, w in zip(average, weights):
        e.assign(d * e + (1.0 - d) * w)


class Trainer:
    """Builds models, optimizers, EMA generator and checkpoint for ``cfg`` under a strategy.

    ``cfg`` must already be completed from the data (see :func:`gan_anime.data.load_data`).
    """

    def __init__(self, cfg: Config, strategy: Optional[tf.distribute.Strategy] = None):
        self.cfg = validate(cfg)
        self.variant = get_variant(cfg.gan)
        self.strategy = strategy or make_strategy(cfg.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        if cfg.batch_size % self.replicas:
            raise ValueError(f"batch size {cfg.batch_size} must be divisible by the {self.replicas} replicas")
        self.local_batch = cfg.batch_size // self.replicas
        self.chief = is_chief(self.strategy)
        self.workers = multiworker.worker_count(self.strategy)
        keras.utils.set_random_seed(cfg.seed)  # reproducible initial weights
        with self.strategy.scope():
            self.G, self.D = build_models(cfg)
            self.G_ema = build_models(cfg)[0] if cfg.ema_decay > 0 else None
            self._build_variables()
            # Both schedules times lr_scale, which a rollback from non-finite values lowers (recovery.py).
            self.lr_scale = tf.Variable(float(cfg.lr_scale), trainable=False, dtype=tf.float32, name="lr_scale")
            # LeCam's anchors (D's mean logits on real images and on fakes, and their update count), mirrored.
            self.lecam_anchors = (tf.Variable([0.0, 0.0, 0.0], trainable=False, dtype=tf.float32, name="lecam_anchors")
                                  if cfg.lecam > 0 else None)
            # Per training step, for the log (D's optimizer counts n_critic updates per step, so it gets
            # its own wrapped copy below; G's optimizer uses this one).
            self._schedules = (Scaled(build_schedule(cfg.g_schedule, "generator schedule"), self.lr_scale),
                               Scaled(build_schedule(cfg.d_schedule, "discriminator schedule"), self.lr_scale))
            self.g_opt = keras.optimizers.Adam(self._schedules[0], beta_1=cfg.beta1, beta_2=cfg.beta2)
            # n_critic D updates per step: D's schedule still counts steps (see gan_anime.variants).
            self.d_opt = keras.optimizers.Adam(Scaled(build_schedule(cfg.d_schedule, "discriminator schedule",
                                                                     updates_per_step=cfg.n_critic), self.lr_scale),
                                               beta_1=cfg.beta1, beta_2=cfg.beta2)
            # The optimizers as written to checkpoints: float16 wraps them in loss scaling (below).
            optimizers = dict(g_optimizer=self.g_opt, d_optimizer=self.d_opt)
            if resolve_precision(cfg.precision) == "float16":
                self.g_opt, self.d_opt = (keras.optimizers.LossScaleOptimizer(o) for o in (self.g_opt, self.d_opt))
            # Built here, with their variable lists, so their slots are mirrored like the weights.
            self.g_opt.build(self.G.trainable_variables)
            self.d_opt.build(self.D.trainable_variables)
        # Host-side counters (not mirrored): read every step by the Python loop.
        self.counters = Counters()
        objects = dict(generator=self.G, discriminator=self.D, **optimizers,
                       step=self.counters.step, epoch=self.counters.epoch,
                       step_in_epoch=self.counters.step_in_epoch)
        if self.G_ema is not None:
            objects["generator_ema"] = self.G_ema
        if self.lecam_anchors is not None:
            objects["lecam_anchors"] = self.lecam_anchors
        # float16: loss scaling's state too.  The Adam slots are stored under the same names in every precision, so
        # --load may change the precision (see _checkpoint_for).
        if isinstance(self.g_opt, keras.optimizers.LossScaleOptimizer):
            objects["loss_scale"] = tf.train.Checkpoint(**{
                f"{net}_{name}": getattr(opt, attr).value for net, opt in (("g", self.g_opt), ("d", self.d_opt))
                for name, attr in (("scale", "dynamic_scale"), ("good_steps", "step_counter"))})
        self._checkpoint_objects = objects
        self.checkpoint = tf.train.Checkpoint(**objects)
        ckpt_dir = os.path.join(cfg.run_dir, "checkpoints")
        if not self.chief:
            # Every worker takes part in a save (TensorFlow's multi-worker pattern); the others write their
            # identical copies somewhere harmless and never read them: they restore from the chief (restore).
            ckpt_dir = os.path.join(cfg.run_dir, f".worker_{self.strategy.cluster_resolver.task_id}")
        self.manager = make_manager(self.checkpoint, ckpt_dir, cfg.keep_checkpoints)
        # Several workers: each one's reasons to stop travel inside the step, so all stop at the same step.
        self.stop_request = multiworker.StopRequest() if self.workers > 1 else None
        # One compiled step per set of penalties in force (lazy R1 applies on every r1_every-th step).
        self.train_step = TrainStep(cfg, self.variant, self.G, self.D, self.g_opt, self.d_opt, self.strategy,
                                    self._after_step,
                                    stop_request=self.stop_request.variable if self.stop_request else None,
                                    epochs_done=self.counters.epoch, lecam_anchors=self.lecam_anchors)

    # ------------------------------------------------------------------ building
    def _build_variables(self) -> None:
        # Keras 3 creates variables on first call; doing it inside the scope makes them mirrored.
        z, labels = generator_tensors(self.cfg, self.local_batch, 0)
        images = self.G(z, labels, training=False)
        self.D(images, labels, training=False)
        if self.G_ema is not None:
            self.G_ema(z, labels, training=False)
            for e, w in zip(self.G_ema.weights, self.G.weights):
                e.assign(w)

    # ------------------------------------------------------------------ the step
    def _after_step(self) -> None:
        """Inside the compiled step, after the replicas' updates: EMA, then the step counters."""
        self._update_ema()
        self.counters.step.assign_add(1)
        self.counters.step_in_epoch.assign_add(1)

    def steps_per_epoch(self, num_images: int) -> int:
        """Training steps in one pass over ``num_images`` (each takes ``n_critic`` batches)."""
        return steps_per_epoch(num_images, self.cfg.batch_size, self.cfg.n_critic)

    def _update_ema(self) -> None:
        if self.G_ema is not None:
            update_average(self.G_ema.trainable_weights, self.G.trainable_weights, self.cfg.ema_decay,
                           self.counters.step)

    # ------------------------------------------------------------------ state
    def restore(self) -> Optional[str]:
        """Restore the newest good checkpoint of the run, if any (a damaged or non-finite newest one is
        reported and the one before it used); returns its path.

        With several workers only the chief reads its checkpoints; every worker then gets the chief's
        state (:meth:`sync_from_chief`) and its answer, so the others need no checkpoint of their own.
        """
        if self.workers == 1:
            return self._restore_newest()
        path = multiworker.run_together(self.strategy, lambda: self._restore_newest() if self.chief else None,
                                        "restore the run's checkpoint")
        restored = multiworker.from_chief(self.strategy, [tf.constant([int(path is not None)], tf.int64)])[0]
        if not int(restored[0]):
            return None
        self.sync_from_chief()
        return path or os.path.join(self.cfg.run_dir, "checkpoints", f"ckpt-{int(self.counters.step)}")

    def sync_from_chief(self) -> None:
        """Several workers: every checkpointed variable (G, D, EMA G, both optimizers, LeCam's anchors), the step
        counters and ``lr_scale`` take the chief's values on every worker."""
        nets = [self.G, self.D] + ([self.G_ema] if self.G_ema is not None else [])
        c = self.counters
        multiworker.broadcast_variables(self.strategy, [v for n in nets for v in n.variables]
                                        + list(self.g_opt.variables) + list(self.d_opt.variables)
                                        + [c.step, c.epoch, c.step_in_epoch, self.lr_scale] + self._extra_state())

    def _restore_newest(self) -> Optional[str]:
        candidates = recovery.checkpoint_candidates(self.manager.directory)
        if not candidates:
            return None
        path = recovery.restore_newest_good(self._checkpoint_for, candidates, self.checkpoint_variables())
        if path is None:
            raise ValueError(f"none of the checkpoints in {self.manager.directory} can be read back whole "
                             f"({', '.join(os.path.basename(c) for c in candidates)}); start the run again")
        logging.info("restored %s (%s)", path, self.counters.as_dict())
        return path

    def _checkpoint_for(self, path: str) -> tf.train.Checkpoint:
        """The checkpoint object that reads ``path``.  State the run keeps but ``path`` lacks starts afresh: a
        float16 run resumed from a checkpoint written in another precision starts loss scaling from the initial
        scale, and a run that turns the LeCam regulariser on starts its anchors from its first step."""
        saved = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
        missing = [k for k in ("loss_scale", "lecam_anchors") if k in self._checkpoint_objects and k not in saved]
        if not missing:
            return self.checkpoint
        for name in missing:
            logging.info("%s holds no %s (written %s): it starts afresh", path, name.replace("_", " "),
                         "in another precision" if name == "loss_scale" else "without LeCam")
        return tf.train.Checkpoint(**{k: v for k, v in self._checkpoint_objects.items() if k not in missing})

    def checkpoint_variables(self):
        """The float variables a checkpoint holds (networks, EMA, optimizer slots, LeCam's anchors)."""
        nets = [self.G, self.D] + ([self.G_ema] if self.G_ema is not None else [])
        return ([v for n in nets for v in n.weights] + list(self.g_opt.variables) + list(self.d_opt.variables)
                + self._extra_state())

    def _extra_state(self):
        """Training state beside the networks and optimizers: LeCam's anchors, when the run has them."""
        return [self.lecam_anchors] if self.lecam_anchors is not None else []

    def checkpoint_bytes(self) -> int:
        """About the size of one checkpoint on disk."""
        return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in self.checkpoint_variables())

    def save(self) -> str:
        """Write a checkpoint at the current step; raises :class:`Diverged` instead if a weight is not finite
        (a checkpoint on disk never holds one)."""
        self.refresh_ema_statistics()
        if not recovery.all_finite(self.checkpoint_variables()):
            raise Diverged(int(self.counters.step), "weights")
        return self.manager.save(checkpoint_number=int(self.counters.step))

    def refresh_ema_statistics(self) -> None:
        """Give the averaged generator batch-norm statistics of its own ("standing statistics", BigGAN).

        The live generator's moving averages describe the live weights; used with the
        averaged weights they wash the images out.  One training-mode pass with
        momentum 0 over a fixed noise batch sets them from the averaged weights, so
        they are a deterministic function of those weights.
        """
        if self.G_ema is None:
            return
        norms = [l for l in self.G_ema._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
        noise, labels = generator_tensors(self.cfg, STANDING_STATS_BATCH, self.cfg.seed + 1)
        momenta = [n.momentum for n in norms]
        try:
            for n in norms:
                n.momentum = 0.0
            self.G_ema(noise, labels, training=True)
        finally:
            for n, m in zip(norms, momenta):
                n.momentum = m

    def learning_rates(self):
        return _current_lr(self.g_opt), _current_lr(self.d_opt)

    def learning_rates_at(self, step: int):
        """(generator, discriminator) learning rates after ``step`` steps, from the schedules (the same
        values :meth:`learning_rates` reads from the optimizers then, without waiting for them)."""
        return tuple(_value_at(lr, step) for lr in self._schedules)

    def sample_grid(self, path: str) -> str:
        """A grid from the fixed sample noise (seeded by the run seed), so epochs are comparable.
        Call after :meth:`save` (which refreshes the averaged generator's statistics)."""
        noise, labels = generator_inputs(self.cfg, self.cfg.samples_per_grid, self.cfg.seed)
        images = run_generator(self.G_ema or self.G, noise, labels)
        return save_png(make_grid(images), path)

    def sample_singles(self, out_dir: str, count: int, seed: int) -> None:
        noise, labels = generator_inputs(self.cfg, count, seed)
        for i, img in enumerate(run_generator(self.G_ema or self.G, noise, labels)):
            save_png(img, os.path.join(out_dir, f"{i:03d}.png"))

    # ------------------------------------------------------------------ the loop
    def fit(self, data: ImageSet, stop: Optional[StopSignal] = None, hooks: Sequence[Hook] = (),
            progress: str = "auto") -> TrainResult:
        """Train until ``cfg.epochs`` (or ``cfg.max_steps``, ``cfg.max_minutes`` of this call, or a stop
        signal), checkpointing as configured.

        Everything reported besides checkpoints (the per-step log, TensorBoard, progress, sample
        grids, loss.png, progress.gif) is done by hooks on the chief (:mod:`gan_anime.training.hooks`);
        ``hooks`` are extra ones, called after the sample grid and before the built-in writers.
        progress: "auto" (a bar when stderr is a terminal, else log lines), "bar" or "lines".

        A non-finite loss, gradient or weight rolls the run back to its latest checkpoint with lower
        learning rates and a new data stream (:mod:`gan_anime.training.recovery`) and training goes on;
        after ``cfg.max_rollbacks`` rollbacks in this call it raises :class:`NonFiniteLossError`.
        """
        if progress not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {', '.join(PROGRESS_MODES)}, got {progress!r}")
        spe = self.steps_per_epoch(len(data))
        # Other workers train and checkpoint in lockstep with the chief but report nothing.
        hook = HookList(default_hooks(hooks, progress) if self.chief else [])
        start_time, start_step = time.time(), int(self.counters.step)
        if self.stop_request is not None:
            self.stop_request.reset()
        rollbacks, result = 0, None
        hook.begin(RunInfo(self.cfg, self, spe, start_step))
        try:
            while True:
                try:
                    result = self._train_epochs(data, spe, stop, hook, start_time, start_step)
                    return result
                except Diverged as error:
                    rollbacks += 1
                    restored = self._roll_back(error, hook)
                    if rollbacks > self.cfg.max_rollbacks:
                        raise NonFiniteLossError(recovery.give_up_message(self.cfg, error, rollbacks,
                                                                          restored)) from None
        finally:
            hook.end(result)   # also on errors: close the TensorBoard writer and the progress bar

    def _train_epochs(self, data: ImageSet, spe: int, stop: Optional[StopSignal], hook: Hook,
                      start_time: float, start_step: int) -> TrainResult:
        """The loop from the restored position to the run's end; raises :class:`Diverged`."""
        cfg, c, request = self.cfg, self.counters, self.stop_request
        last: Dict[str, float] = {}
        status, rate, saved = "finished", 0.0, None
        signal: Optional[str] = None

        def checkpoint():
            path = self.save()
            hook.checkpoint(path)
            return path

        batches = self._batches(data, start=int(c.epoch) * spe + int(c.step_in_epoch), end=cfg.epochs * spe)
        step = int(c.step)   # the host's count: reading c.step would wait for the step that updates it
        while int(c.epoch) < cfg.epochs:
            epoch, in_epoch = int(c.epoch), int(c.step_in_epoch)
            pending = []    # (step, step in epoch, the step's statistics as tensors), not read back yet
            while in_epoch < spe:
                in_epoch += 1
                if request is not None:   # several workers: this one's reasons to stop go into the step
                    request.update(stop.requested if stop is not None else None, bool(
                        cfg.max_minutes and time.time() - start_time >= 60.0 * cfg.max_minutes))
                pending.append((step + 1, in_epoch, self.train_step(step)(next(batches))))
                step += 1
                if not self._read_back_now(step, in_epoch, spe, len(pending)):
                    continue
                last, rate, asked = self._read_back(pending, epoch, spe, hook, start_time, start_step)
                pending = []
                if cfg.max_steps and step >= cfg.max_steps:
                    status = "max_steps"
                elif request is not None:   # several workers: what any of them asked, the same on every worker
                    if asked:
                        status, signal = asked
                elif cfg.max_minutes and time.time() - start_time >= 60.0 * cfg.max_minutes:
                    status = "max_minutes"
                elif stop is not None and stop.requested:
                    status = "interrupted"
                if status != "finished":
                    break
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and in_epoch < spe:
                    saved = checkpoint()
            if in_epoch == spe:   # the epoch is complete (also when a stop fell on its last step)
                c.epoch.assign_add(1)
                c.step_in_epoch.assign(0)
            saved = checkpoint()
            if in_epoch == spe:
                hook.epoch_end(EpochEnd(int(c.epoch), int(c.step), saved))
            if status != "finished":
                break
        if status == "interrupted" and request is None:
            signal = stop.requested
        return TrainResult(cfg.run_dir, int(c.step), int(c.epoch), status,
                           saved or self.manager.latest_checkpoint, last, time.time() - start_time, rate,
                           signal if status == "interrupted" else None, cfg.epochs)

    def _read_back_now(self, step: int, in_epoch: int, spe: int, pending: int) -> bool:
        """Whether the loop reads the statistics back after global step ``step``: every
        ``cfg.readback_every`` steps, and always where it may stop or checkpoint (an epoch's end,
        ``max_steps``, ``checkpoint_every``), so nothing is saved before its steps were checked."""
        cfg = self.cfg
        return (pending >= cfg.readback_every or in_epoch == spe or bool(cfg.max_steps and step >= cfg.max_steps)
                or bool(cfg.checkpoint_every and step % cfg.checkpoint_every == 0))

    def _read_back(self, pending, epoch: int, spe: int, hook: Hook, start_time: float, start_step: int):
        """The statistics of the ``pending`` steps as floats, each checked and reported to the hooks in
        order.  A non-finite value (a loss or a gradient norm) raises :class:`Diverged` naming the step;
        every checkpoint was written before it.
        Returns (the last step's logs, images/s so far, (status, signal) when a worker asked to stop (with
        several workers) or None)."""
        cfg = self.cfg
        elapsed = max(time.time() - start_time, 1e-9)
        asked = None
        for step, in_epoch, tensors in pending:
            stats = {k: float(v) for k, v in tensors.items() if k != multiworker.STOP_KEY}
            if multiworker.STOP_KEY in tensors:   # each worker's requests only grow: the last step has them all
                asked = multiworker.stop_reason(tensors[multiworker.STOP_KEY].numpy())
            if not all(math.isfinite(v) for v in stats.values()):
                raise Diverged(step, stats)
            lr_g, lr_d = self.learning_rates_at(step)
            rate = (step - start_step) * cfg.batch_size * cfg.n_critic / elapsed
            last = {**stats, "lr_g": lr_g, "lr_d": lr_d, "images_per_s": rate}
            hook.step_end(StepEnd(step, epoch, in_epoch, last, step_keys=frozenset(last),
                                  log_step=step % cfg.log_every == 0 or in_epoch == spe))
        return last, rate, asked

    def _batches(self, data: ImageSet, start: int, end: int):
        """One iterator over the run's steps [start, end), across epochs (see gan_anime.data.pipeline).

        On one device it is a plain tf.data iterator: on a 2-core CPU the distributed iterator
        cost ~15% per step, and ending or destroying it blocked the loop for 8-45 s at random
        (a tf.data thread it joins), which one iterator per epoch paid about every other epoch.
        """
        cfg = self.cfg
        tensors = DataTensors.from_images(data)

        def dataset_fn(ctx: Optional[tf.distribute.InputContext]):
            return make_dataset(tensors, seed=recovery.data_seed(cfg), start_step=start, end_step=max(start, end),
                                global_batch=cfg.batch_size, noise_dim=cfg.noise_dim, augment=cfg.augment,
                                num_replicas=self.replicas, input_context=ctx, batches_per_step=cfg.n_critic)

        if isinstance(self.strategy, tf.distribute.OneDeviceStrategy):
            return iter(dataset_fn(None))
        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def _roll_back(self, error: Diverged, hook: Hook) -> Optional[str]:
        """Back to the newest good checkpoint with lower learning rates and the next data stream; the
        event goes to the log, ``config.json`` and ``logs/rollbacks.csv``.  Returns the checkpoint."""
        self.cfg = recovery.after_rollback(self.cfg)
        path = self.restore()
        self.lr_scale.assign(self.cfg.lr_scale)   # after the restore: a checkpoint does not hold it
        restored_step = int(self.counters.step)
        logging.warning("non-finite values at step %d (%s): rolled back to %s (step %d); learning rates now "
                        "x%.3g of the schedule, data stream %d", error.step, recovery.describe(error.what), path,
                        restored_step, self.cfg.lr_scale, self.cfg.stream)
        if self.chief:
            recovery.record_rollback(self.cfg, error, restored_step, path)
        hook.rollback(restored_step)
        return path


def _value_at(lr, step: int) -> float:
    """A learning rate (a float or a Keras schedule) at ``step``."""
    return float(keras.ops.convert_to_numpy(lr(step))) if callable(lr) else float(lr)


def _current_lr(optimizer) -> float:
    """The rate the optimizer applies now (its schedule at its own iteration count)."""
    value = optimizer.learning_rate
    value = getattr(value, "value", value)  # keras.Variable -> backend (possibly mirrored) variable
    return float(tf.convert_to_tensor(value).numpy())
