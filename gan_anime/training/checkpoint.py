"""Checkpoints that hold everything a resume needs, and a per-step CSV log that resumes with them.

A checkpoint holds G, D, both optimizers (their iteration counters drive the
learning-rate schedules), the EMA generator, and the counters that fix the data
position: global step, epoch and step within the epoch.  ``CheckpointManager``
writes the data files first and the ``checkpoint`` index last, so a process
killed mid-write leaves the previous checkpoint as the latest one.
"""

from __future__ import annotations

import csv
import os
import signal
import threading
from typing import Dict, List, Optional

import tensorflow as tf

CSV_FIELDS = ["step", "epoch", "d_loss", "g_loss", "d_real", "d_fake", "lr_g", "lr_d", "images_per_s"]


class Counters:
    """Position of a run: global step, epoch (completed epochs), step within the current epoch."""

    def __init__(self):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")

    def as_dict(self) -> Dict[str, int]:
        return {"step": int(self.step), "epoch": int(self.epoch), "step_in_epoch": int(self.step_in_epoch)}


def make_manager(checkpoint: tf.train.Checkpoint, directory: str, keep: int) -> tf.train.CheckpointManager:
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep, checkpoint_name="ckpt")


class CsvLog:
    """Per-step losses and learning rates in ``logs/losses.csv``.

    Rows are buffered and flushed when a checkpoint is written; on resume, rows past
    the restored step are dropped, so the file always matches the checkpoints.
    """

    def __init__(self, path: str, resume_step: int):
        self.path = path
        self.rows: List[Dict] = []
        os.makedirs(os.path.dirname(path), exist_ok=True)
        kept = []
        if os.path.isfile(path):
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resume_step]
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, CSV_FIELDS)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, path)

    def add(self, row: Dict) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        if not self.rows:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, CSV_FIELDS).writerows(self.rows)
        self.rows = []


def read_csv_log(path: str) -> List[Dict[str, float]]:
    """The rows of a ``losses.csv`` as floats."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


class StopSignal:
    """While active, SIGINT/SIGTERM ask the training loop to stop after the current step.

    The loop then saves a checkpoint and returns.  A second SIGINT restores the
    default behaviour (KeyboardInterrupt) for a user who really wants out now.
    """

    def __init__(self):
        self.requested: Optional[str] = None
        self._old = {}

    def _handle(self, signum, frame):
        self.requested = signal.Signals(signum).name
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False
