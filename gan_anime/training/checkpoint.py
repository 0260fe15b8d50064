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

from gan_anime.files import atomic_write

#: Leading columns of ``losses.csv``; every other column is whatever the steps and hooks reported.
CSV_FIELDS = ["step", "epoch"]


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
    """Per-step quantities in ``logs/losses.csv``: one row per step, one column per key ever reported.

    Open-ended: a row may bring keys no earlier row had (an auxiliary loss, ``fid`` every N
    steps); the file is then rewritten with the widened header (atomically: a temporary file
    replaces it), and cells a row lacks stay empty.  Rows are buffered and flushed when a
    checkpoint is written; on resume, rows past the restored step are dropped, so the file
    always matches the checkpoints.
    """

    def __init__(self, path: str, resume_step: int):
        self.path = path
        self.rows: List[Dict] = []
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.fields: List[str] = list(CSV_FIELDS)
        kept: List[Dict] = []
        if os.path.isfile(path):
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                kept = [r for r in reader if r.get("step", "").isdigit() and int(r["step"]) <= resume_step]
                self.fields = _union(self.fields, reader.fieldnames or [])
        self._rewrite(kept)

    def add(self, row: Dict) -> None:
        """Buffer one row: a dict of column -> value (str or number); any new key becomes a column."""
        self.rows.append(row)

    def flush(self) -> None:
        if not self.rows:
            return
        fields = self.fields
        for row in self.rows:
            fields = _union(fields, row)
        if fields != self.fields:
            with open(self.path, newline="") as f:
                written = list(csv.DictReader(f))
            self.fields = fields
            self._rewrite(written + self.rows)
        else:
            # The common case: the same columns as the file, so appending is enough.
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.fields, restval="").writerows(self.rows)
        self.rows = []

    def _rewrite(self, rows: List[Dict]) -> None:
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, self.fields, restval="")
                writer.writeheader()
                writer.writerows(rows)
        atomic_write(self.path, write)


def _union(fields: List[str], keys) -> List[str]:
    """``fields`` followed by the keys it lacks, in their order (``None``: a row's surplus cells)."""
    return list(fields) + [k for k in dict.fromkeys(keys) if k is not None and k not in fields]


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
