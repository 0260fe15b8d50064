"""Learning-rate schedules: exponential, polynomial and piecewise-constant decay.

One builder, :func:`build_schedule`, turns a :class:`~gan_anime.config.Schedule`
into a ``keras.optimizers.schedules.LearningRateSchedule`` (or a float for a
constant rate).  The optimizer's own iteration counter is the ``step`` the
schedule sees, so a resumed run continues its decay exactly where it stopped.
A discriminator updated ``k`` times per training step (WGAN-GP's critic) gets its
schedule through :class:`PerTrainingStep`, so both networks' schedules count training
steps (generator updates).
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


class PerTrainingStep(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` evaluated at ``iterations // updates_per_step``: the training step, for an optimizer
    that makes ``updates_per_step`` updates per step."""

    def __init__(self, schedule, updates_per_step: int):
        self.schedule, self.updates_per_step = schedule, int(updates_per_step)

    def __call__(self, step):
        return self.schedule(step // self.updates_per_step)

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule),
                "updates_per_step": self.updates_per_step}


class Scaled(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` (a Keras schedule or a float) times ``scale``, a variable the trainer lowers after
    a rollback from non-finite values (see :mod:`gan_anime.training.recovery`)."""

    def __init__(self, schedule, scale):
        self.schedule, self.scale = schedule, scale

    def __call__(self, step):
        base = self.schedule(step) if callable(self.schedule) else self.schedule
        return keras.ops.cast(base, "float32") * keras.ops.cast(self.scale, "float32")

    def get_config(self):
        return {"schedule": (keras.optimizers.schedules.serialize(self.schedule) if callable(self.schedule)
                             else self.schedule), "scale": float(keras.ops.convert_to_numpy(self.scale))}


def build_schedule(s: Schedule, who: str = "schedule", updates_per_step: int = 1):
    """Build the learning rate for an optimizer that updates ``updates_per_step`` times per training step;
    raises ``ValueError`` on bad arguments."""
    validate_schedule(s, who)
    lr = SCHEDULES[s.kind](s)
    if updates_per_step > 1 and callable(lr):
        return PerTrainingStep(lr, updates_per_step)
    return lr


def learning_rate_at(s: Schedule, step: int) -> float:
    """The learning rate ``s`` gives at optimizer step ``step`` (a Python float)."""
    lr = build_schedule(s)
    if callable(lr):
        return float(keras.ops.convert_to_numpy(lr(step)))
    return float(lr)
