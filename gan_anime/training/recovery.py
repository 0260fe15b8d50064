"""Surviving non-finite values and damaged checkpoints.

A NaN or inf in a loss, a gradient norm (both read back from the step, see
:mod:`gan_anime.training.step`) or a weight (checked before every checkpoint write) raises
:class:`Diverged` inside the loop.  The trainer then rolls back to its latest checkpoint,
multiplies both learning rates by ``cfg.nan_lr_factor``, moves the data/noise stream on so the
same batches are not replayed into the same NaN, records the event (``config.json`` and
``logs/rollbacks.csv``) and continues; after ``cfg.max_rollbacks`` rollbacks in one call it
stops with :class:`NonFiniteLossError`.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from typing import Dict, Iterable, List, Optional, Union

import tensorflow as tf
from absl import logging

from gan_anime.config import Config

ROLLBACK_FIELDS = ["detected_at_step", "restored_step", "checkpoint", "lr_scale", "stream", "what"]


class NonFiniteLossError(RuntimeError):
    """Values became NaN/inf more often than ``cfg.max_rollbacks`` allows; the run is at its last good
    checkpoint."""


class Diverged(Exception):
    """A non-finite value at global step ``step``: ``what`` names it (the step's statistics, or "weights")."""

    def __init__(self, step: int, what: Union[str, Dict[str, float]]):
        self.step, self.what = step, what
        super().__init__(f"non-finite values at step {step}: {describe(what)}")


def describe(what: Union[str, Dict[str, float]]) -> str:
    if isinstance(what, str):
        return what
    bad = {k: v for k, v in what.items() if not math.isfinite(v)}
    return ", ".join(f"{k}={v}" for k, v in bad.items()) or str(what)


def data_seed(cfg: Config) -> int:
    """The seed of the data order, flips and noise: the run seed, moved to a stream of its own after each
    rollback (the pipeline uses ``seed * 3 + k`` keys, so streams never meet another seed below 2**32)."""
    return cfg.seed + (cfg.stream << 32)


def all_finite(variables: Iterable[tf.Variable]) -> bool:
    """Whether every float value of ``variables`` is finite (one reduction per variable)."""
    checks = [tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))) for v in variables
              if tf.as_dtype(v.dtype).is_floating]
    return bool(tf.reduce_all(tf.stack(checks))) if checks else True


def after_rollback(cfg: Config) -> Config:
    """The run's config after one more rollback: lower learning rates, the next stream."""
    return cfg.replace(lr_scale=cfg.lr_scale * cfg.nan_lr_factor, stream=cfg.stream + 1,
                       rollbacks=cfg.rollbacks + 1)


def record_rollback(cfg: Config, error: Diverged, restored_step: int, checkpoint: Optional[str]) -> None:
    """Write the new config and append the event to ``logs/rollbacks.csv`` (chief only)."""
    cfg.save(os.path.join(cfg.run_dir, "config.json"))
    path = os.path.join(cfg.run_dir, "logs", "rollbacks.csv")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    new = not os.path.isfile(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, ROLLBACK_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({"detected_at_step": error.step, "restored_step": restored_step,
                         "checkpoint": os.path.basename(checkpoint or "") or "initial weights",
                         "lr_scale": f"{cfg.lr_scale:.6g}", "stream": cfg.stream, "what": describe(error.what)})


def give_up_message(cfg: Config, error: Diverged, events: int, checkpoint: Optional[str]) -> str:
    return (f"values became non-finite {events} times in this call, more than --max-rollbacks "
            f"{cfg.max_rollbacks} allows; the last at step {error.step} ({describe(error.what)}). The run is "
            f"back at {os.path.basename(checkpoint or '') or 'its initial weights'} with learning rates "
            f"x{cfg.lr_scale:.3g} of its schedule: --load --run-dir {cfg.run_dir} continues from there "
            f"(--lr-scale S sets another scale), or start again with a lower --learning-rate, a larger "
            f"--r1-gamma or --d-norm batch.")


# ------------------------------------------------------------------------------- checkpoints
def checkpoint_candidates(directory: str) -> List[str]:
    """The checkpoints recorded in ``directory``, oldest first and the state file's latest last (also when
    its list leaves the latest out, as a hand-edited state file may)."""
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        return []
    latest = state.model_checkpoint_path
    return [c for c in state.all_model_checkpoint_paths if c != latest] + ([latest] if latest else [])


def restore_newest_good(checkpoint, candidates: List[str],
                        variables: Iterable[tf.Variable], partial: bool = False) -> Optional[str]:
    """Restore the newest of ``candidates`` (oldest first) that reads back whole and finite; each damaged
    one is reported in one warning line.  A checkpoint of another architecture raises ``ValueError``.
    ``checkpoint``: a ``tf.train.Checkpoint``, or a function of a path giving the one to read it with.
    ``partial``: ``checkpoint`` holds part of what was saved (the generator alone, to generate).
    Returns the restored path, or None when none is usable."""
    variables = list(variables)
    for path in reversed(candidates):
        try:
            reader = checkpoint(path) if callable(checkpoint) else checkpoint
            status = reader.restore(path)
            (status.expect_partial() if partial else status).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            raise ValueError(f"checkpoint {path} does not match this run's models (was it written by another "
                             f"configuration or version?): {first_line(e)}") from None
        except (tf.errors.OpError, OSError, IndexError, RuntimeError) as e:   # truncated, missing or corrupt files
            logging.warning("checkpoint %s is damaged or incomplete (%s); trying the one before it",
                            path, first_line(e))
            continue
        if not all_finite(variables):
            logging.warning("checkpoint %s holds non-finite weights; trying the one before it", path)
            continue
        return path
    return None


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def check_disk(run_dir: str, needed_bytes: int) -> None:
    """Preflight: ``run_dir`` can be created and written, with room for ``needed_bytes``."""
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"run directory {run_dir} is not writable ({e.strerror or e}); choose another "
                         f"--run-dir") from None
    free = shutil.disk_usage(run_dir).free
    if free < needed_bytes:
        raise ValueError(f"run directory {run_dir} has {free / 2**20:.0f} MiB free but the run's checkpoints "
                         f"need about {needed_bytes / 2**20:.0f} MiB; free some space or choose another --run-dir")
