"""What the workers of a ``MultiWorkerMirroredStrategy`` run agree on, and how: through the strategy's
own all-reduce, so nothing but the TF_CONFIG cluster is needed (no shared disk, no extra service).

* the run: the chief (worker 0) decides fresh or resume and the config (:func:`agree_on_run`); the
  other workers take its config and load their own copy of the images;
* the state: after the chief restores a checkpoint (at the start of a resume, after a rollback) every
  checkpointed variable is sent from the chief to all workers (:func:`broadcast_variables`), so the
  other workers never read a checkpoint of their own;
* when to stop: each worker's local stop request (a signal, ``max_minutes``) travels inside the train
  step with its statistics (:class:`StopRequest`, summed over the replicas), so every worker reads
  the same request after the same step and all stop there together.

A broadcast is an all-reduce (SUM) of the chief's first replica's values and zeros from every other
replica: exact for every value (``x + 0 == x``), and a NaN on another worker cannot leak in (its
contribution is replaced, not multiplied, by zero).  Global replica 0 is always the chief's first
device (``multi_worker_util.id_in_cluster``: the chief, else worker 0, has id 0).
"""

from __future__ import annotations

import functools
import json
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from gan_anime.config import Config
from gan_anime.training.strategy import is_chief

#: Columns of the stop request a worker puts into every step: a SIGINT, a SIGTERM, its max_minutes ran out.
STOP_COLUMNS = ("SIGINT", "SIGTERM", "max_minutes")
#: The key of the summed stop request in the step's statistics (removed before anything is reported).
STOP_KEY = "_stop"


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """How many worker processes train together (1 unless a multi-worker TF_CONFIG cluster)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("chief", [])) + len(spec.get("worker", [])))


class WorkerFailed(RuntimeError):
    """Raised on the other workers when one worker stopped with an error (its output says why)."""


# ------------------------------------------------------------------------------- collectives
def _all_reduce(strategy: tf.distribute.Strategy, values: Sequence[tf.Tensor], chief_only: bool) -> List[tf.Tensor]:
    """The sum over replicas of ``values`` (host tensors of this worker): with ``chief_only``, the chief's
    values on every worker; else every replica's (a worker with n devices counts n times).

    Values of one dtype travel as one flat vector: one all-reduce per dtype, whatever their number."""
    values = [tf.convert_to_tensor(v) for v in values]
    groups = {}
    for i, v in enumerate(values):
        groups.setdefault(_carrier(v.dtype), []).append(i)
    packed = [tf.concat([tf.reshape(tf.cast(values[i], dtype), [-1]) for i in idx], 0)
              for dtype, idx in groups.items()]

    out: List[Optional[tf.Tensor]] = [None] * len(values)
    # A function of its own per call (a few calls per run, each with shapes of its own); compiled, as
    # collectives run eagerly cost seconds.  A partial, so TensorFlow does not count the calls as
    # retracings of one function and warn.
    reduce = tf.function(functools.partial(_sum_replicas, strategy, chief_only))
    for idx, flat in zip(groups.values(), reduce(packed)):
        sizes = [int(np.prod(values[i].shape)) for i in idx]
        for i, part in zip(idx, tf.split(flat, sizes) if len(idx) > 1 else [flat]):
            out[i] = tf.cast(tf.reshape(part, values[i].shape), values[i].dtype)
    return out


def _sum_replicas(strategy: tf.distribute.Strategy, chief_only: bool, flat: List[tf.Tensor]) -> List[tf.Tensor]:
    def replica():
        if not chief_only:
            return [tf.identity(x) for x in flat]
        first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
        return [tf.where(first, x, tf.zeros_like(x)) for x in flat]
    per_replica = strategy.run(replica)
    return [strategy.reduce(tf.distribute.ReduceOp.SUM, p, axis=None) for p in per_replica]


def _carrier(dtype: tf.DType) -> tf.DType:
    """The dtype a value travels in: one the collectives sum on every device, holding it exactly
    (float16/bfloat16 in float32, bool and unsigned integers such as seed states in int64)."""
    if dtype.is_floating:
        return tf.float64 if dtype == tf.float64 else tf.float32
    return tf.int32 if dtype == tf.int32 else tf.int64


def from_chief(strategy: tf.distribute.Strategy, values: Sequence) -> List[tf.Tensor]:
    """The chief's ``values`` (tensors or arrays, the same shapes and dtypes on every worker) on every worker."""
    return _all_reduce(strategy, values, chief_only=True)


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """Whether ``flag`` is true on at least one worker (every worker must call this)."""
    return int(_all_reduce(strategy, [tf.constant([int(flag)], tf.int64)], chief_only=False)[0][0]) > 0


def broadcast_variables(strategy: tf.distribute.Strategy, variables: Sequence) -> None:
    """Give every worker the chief's values of ``variables`` (mirrored or plain host variables)."""
    variables = list(variables)
    values = from_chief(strategy, [tf.convert_to_tensor(v) for v in variables])
    for v, x in zip(variables, values):
        v.assign(x)


def run_together(strategy: tf.distribute.Strategy, fn: Callable, what: str):
    """``fn()`` on this worker; if it raised on any worker, every worker raises (that worker its own error,
    the others :class:`WorkerFailed`) instead of the others waiting for it at the next collective.
    Every worker must call this.  One worker: just ``fn()``."""
    if worker_count(strategy) == 1:
        return fn()
    result, error = None, None
    try:
        result = fn()
    except Exception as e:   # noqa: BLE001 - raised below, after telling the other workers
        error = e
    if any_worker(strategy, error is not None):
        if error is not None:
            raise error
        raise WorkerFailed(f"another worker could not {what}; its output says why")
    return result


def _broadcast_text(strategy: tf.distribute.Strategy, text: str, length: int) -> str:
    codes = np.zeros([length], np.int32)
    raw = np.frombuffer(text.encode("utf-8"), np.uint8)
    codes[:len(raw)] = raw
    return bytes(from_chief(strategy, [codes])[0].numpy().astype(np.uint8)).decode("utf-8")


# ------------------------------------------------------------------------------- the run
def agree_on_run(strategy: tf.distribute.Strategy, cfg: Config, resume: bool, data,
                 prepare: Callable, load: Callable) -> Tuple[object, Config, bool]:
    """The chief's (data, config, resume) for every worker.

    The chief checks and loads as one process does (``prepare(cfg, resume)``, reading its run
    directory); the others take its config and resume flag whatever they were given (their
    command line may name a run directory they do not have) and load their own images with
    ``load(cfg)`` (unless ``data`` was given).  Any worker's failure stops every worker with an error
    instead of leaving the others waiting; so does a worker whose images differ in number from the chief's.
    """
    chief = is_chief(strategy)

    def chief_prepares():
        nonlocal data, cfg
        if chief and data is None:
            data, cfg = prepare(cfg, resume)

    run_together(strategy, chief_prepares, "prepare the run")
    text = cfg.to_json() if chief else ""
    head = from_chief(strategy, [tf.constant([int(resume), len(text.encode("utf-8")), len(data) if chief else 0],
                                             tf.int64)])[0].numpy()
    resume, length, images = bool(head[0]), int(head[1]), int(head[2])
    chief_cfg = Config.from_dict(json.loads(_broadcast_text(strategy, text, length)))

    def worker_loads():
        nonlocal data
        if chief:
            return
        if data is None:
            data, _ = load(chief_cfg)
        if len(data) != images:
            raise ValueError(f"this worker has {len(data)} training images, the chief {images}: every worker "
                             f"needs the same images (the same --data-dir content, or the same built-in faces)")

    run_together(strategy, worker_loads, "load the training images")
    return data, (cfg if chief else chief_cfg), resume


# ------------------------------------------------------------------------------- stopping together
class StopRequest:
    """This worker's local reasons to stop, as a host variable the train step reads and sums over
    the replicas (see :class:`gan_anime.training.step.TrainStep`): float32 [len(STOP_COLUMNS)].

    The loop raises it before dispatching a step (:meth:`update`, Python checks only, an assign once);
    every worker reads the summed request back with the step's statistics, so all see a stop at the
    same step.
    """

    def __init__(self):
        with tf.device("/cpu:0"):
            self.variable = tf.Variable(tf.zeros([len(STOP_COLUMNS)]), trainable=False, name="stop_request")
        self._raised = [False] * len(STOP_COLUMNS)

    def reset(self) -> None:
        self._raised = [False] * len(STOP_COLUMNS)
        self.variable.assign(tf.zeros([len(STOP_COLUMNS)]))

    def update(self, signal_name: Optional[str], time_up: bool) -> None:
        raised = [signal_name == "SIGINT", signal_name == "SIGTERM", time_up]
        if any(r and not was for r, was in zip(raised, self._raised)):
            self._raised = [a or b for a, b in zip(raised, self._raised)]
            self.variable.assign([float(r) for r in self._raised])


def stop_reason(summed) -> Optional[Tuple[str, Optional[str]]]:
    """(status, signal) from a summed stop request [len(STOP_COLUMNS)]: a signal on any worker wins
    (SIGTERM before SIGINT); None when no worker asked to stop."""
    sigint, sigterm, time_up = (float(x) for x in summed)
    if sigterm > 0:
        return "interrupted", "SIGTERM"
    if sigint > 0:
        return "interrupted", "SIGINT"
    if time_up > 0:
        return "max_minutes", None
    return None
