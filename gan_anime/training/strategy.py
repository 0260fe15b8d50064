"""Choosing the ``tf.distribute`` strategy: one device, all local GPUs, or several workers."""

from __future__ import annotations

import json
import os

import tensorflow as tf
from absl import logging


def _multiworker_configured() -> bool:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError:
        raise ValueError("TF_CONFIG is set but is not valid JSON") from None
    return sum(len(v) for v in cluster.values()) > 1


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """auto: MultiWorkerMirrored when TF_CONFIG names a cluster, Mirrored on several GPUs, else one device.

    ``default`` forces one device; ``mirrored`` uses every local GPU (or the CPU);
    ``multiworker`` needs TF_CONFIG.  MultiWorkerMirroredStrategy must be created
    before any other TensorFlow op, so call this first.
    """
    if name == "auto":
        if _multiworker_configured():
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multiworker":
        if not _multiworker_configured():
            raise ValueError("strategy 'multiworker' needs TF_CONFIG describing a cluster of 2 or more tasks")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "default":
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    else:
        raise ValueError(f"unknown strategy {name!r}; expected auto, default, mirrored or multiworker")
    logging.info("strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker that writes checkpoints, samples and logs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())
