"""Learning-rate schedules: exponential, polynomial and piecewise-constant decay.

One builder, :func:`build_schedule`, turns a :class:`~gan_anime.config.Schedule`
into a ``keras.optimizers.schedules.LearningRateSchedule`` (or a float for a
constant rate).  The optimizer's own iteration counter is the ``step`` the
schedule sees, so a resumed run continues its decay exactly where it stopped.
"""

from __future__ import annotations

from typing import Callable, Dict, Union

import keras

from gan_anime.config import Schedule, validate_schedule


def _constant(s: Schedule):
    return float(s.initial_lr)


def _exponential(s: Schedule):
    # lr = initial_lr * base ** (step / decay_steps), smooth (not staircase).
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=s.initial_lr, decay_steps=s.decay_steps, decay_rate=s.base)


def _polynomial(s: Schedule):
    return keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=s.initial_lr, decay_steps=s.decay_steps,
        end_learning_rate=s.end_lr, power=s.power)


def _piecewise(s: Schedule):
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=list(s.boundaries), values=list(s.values))


SCHEDULES: Dict[str, Callable[[Schedule], Union[float, keras.optimizers.schedules.LearningRateSchedule]]] = {
    "constant": _constant,
    "exponential": _exponential,
    "polynomial": _polynomial,
    "piecewise": _piecewise,
}


def build_schedule(s: Schedule, who: str = "schedule"):
    """Build the learning rate for an optimizer; raises ``ValueError`` on bad arguments."""
    validate_schedule(s, who)
    return SCHEDULES[s.kind](s)


def learning_rate_at(s: Schedule, step: int) -> float:
    """The learning rate ``s`` gives at optimizer step ``step`` (a Python float)."""
    lr = build_schedule(s)
    if callable(lr):
        return float(keras.ops.convert_to_numpy(lr(step)))
    return float(lr)
