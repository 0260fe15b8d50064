"""Running a training call: check the config and data against the run directory, preflight, build the
:class:`~gan_anime.training.trainer.Trainer`, restore or write ``ckpt-0``, and train under a stop signal.

Several workers (MultiWorkerMirroredStrategy) agree on all of it first
(:mod:`gan_anime.training.multiworker`).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import tensorflow as tf
from absl import logging

from gan_anime.config import Config, validate
from gan_anime.data import ImageSet, load_data
from gan_anime.hardware import resolve_precision
from gan_anime.training import multiworker, recovery
from gan_anime.training.checkpoint import StopSignal
from gan_anime.training.hooks import Hook
from gan_anime.training.strategy import is_chief, make_strategy
from gan_anime.training.trainer import Trainer, TrainResult


def prepare_run(cfg: Config, resume: bool = False):
    """Load data, complete and check the config against the run directory.

    Fresh runs refuse a directory that already holds checkpoints (resume it
    instead); resumed runs refuse changes to the architecture.
    Returns (data, cfg).
    """
    validate(cfg)
    cfg_path = os.path.join(cfg.run_dir, "config.json")
    ckpt_dir = os.path.join(cfg.run_dir, "checkpoints")
    if resume:
        saved = Config.load(cfg_path)
        diff = saved.architecture_diff(cfg.replace(**{k: getattr(saved, k) for k in
                                                       ("conditional", "num_hair", "num_eye")}))
        if diff:
            name, (old, new) = next(iter(diff.items()))
            raise ValueError(f"cannot change {name} of a saved run ({old} -> {new}); "
                             f"start a new run with another --run-dir instead")
    elif tf.train.latest_checkpoint(ckpt_dir):
        raise ValueError(f"run directory {cfg.run_dir} already has checkpoints; continue it with --load "
                         f"or choose another --run-dir")
    data, cfg = load_data(cfg)
    return data, cfg


def preflight(trainer: Trainer, data: ImageSet) -> None:
    """Before a long run writes anything (:func:`prepare_run` checked the data and the config): a step's
    batch fits the data, and the run directory is writable with room for the checkpoints it keeps.
    Each problem is one ``ValueError`` line."""
    cfg = trainer.cfg
    trainer.steps_per_epoch(len(data))
    if trainer.chief:
        # keep_checkpoints plus the one being written, with a margin for the logs and samples.
        recovery.check_disk(cfg.run_dir, int(trainer.checkpoint_bytes() * (cfg.keep_checkpoints + 1) * 1.2))


def train(cfg: Config, resume: bool = False, strategy: Optional[tf.distribute.Strategy] = None,
          data: Optional[ImageSet] = None, hooks: Sequence[Hook] = (), progress: str = "auto") -> TrainResult:
    """Train (or, with ``resume``, continue) the run in ``cfg.run_dir``.

    SIGINT/SIGTERM stop after the current step with a checkpoint saved; the result's
    ``status`` is then "interrupted" and ``train(cfg, resume=True)`` continues exactly.
    ``hooks`` and ``progress``: see :meth:`Trainer.fit`.

    Several workers (MultiWorkerMirroredStrategy): the chief (worker 0) decides fresh or resume and the
    config, and restores; the others take its config and state and load their own copy of the images
    (:mod:`gan_anime.training.multiworker`).  Give every worker the same call (command line).
    """
    if strategy is None:
        strategy = make_strategy(cfg.strategy)  # first: MultiWorkerMirroredStrategy needs a clean runtime
    if multiworker.worker_count(strategy) > 1:
        data, cfg, resume = multiworker.agree_on_run(strategy, cfg, resume, data, prepare_run, load_data)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    if data is None:
        data, cfg = prepare_run(cfg, resume)
    if cfg.fid_every:
        def fid_hook():
            if is_chief(strategy):
                from gan_anime.training.fid_hook import FidHook
                return [FidHook(data, cfg)]   # before anything is written: its weights are checked here
            return []
        hooks = [*hooks, *multiworker.run_together(strategy, fid_hook, "load the FID network")]
    trainer = Trainer(cfg, strategy)
    multiworker.run_together(strategy, lambda: preflight(trainer, data), "prepare the run directory")
    if resume and trainer.restore() is None:
        raise FileNotFoundError(f"no checkpoint in {os.path.join(cfg.run_dir, 'checkpoints')} to resume from")
    if trainer.chief:
        cfg.save(os.path.join(cfg.run_dir, "config.json"))
    if not resume:
        trainer.save()   # ckpt-0: a run killed or diverging before its first checkpoint resumes from here
    logging.info("training %s on %d images (%s), %d step(s) per epoch, global batch %d on %d replica(s), %s",
                 cfg.gan, len(data), data.source, trainer.steps_per_epoch(len(data)), cfg.batch_size,
                 trainer.replicas, resolve_precision(cfg.precision))
    with StopSignal() as stop:
        return trainer.fit(data, stop, hooks, progress)
