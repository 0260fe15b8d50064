"""Exact values of each schedule at several steps, and argument validation."""

import pytest

from gan_anime.config import Config, Schedule, validate
from gan_anime.schedules import build_schedule, learning_rate_at


def approx(x):
    return pytest.approx(x, rel=1e-5)


def test_constant():
    s = Schedule(kind="constant", initial_lr=3e-4)
    assert build_schedule(s) == 3e-4
    assert learning_rate_at(s, 12345) == approx(3e-4)


def test_exponential_at_steps():
    s = Schedule(kind="exponential", initial_lr=0.1, decay_steps=100, base=0.5)
    assert learning_rate_at(s, 0) == approx(0.1)
    assert learning_rate_at(s, 100) == approx(0.05)
    assert learning_rate_at(s, 200) == approx(0.025)
    assert learning_rate_at(s, 50) == approx(0.1 * 0.5 ** 0.5)   # smooth, not staircase


def test_polynomial_at_steps():
    s = Schedule(kind="polynomial", initial_lr=0.1, decay_steps=100, end_lr=0.01, power=2.0)
    assert learning_rate_at(s, 0) == approx(0.1)
    assert learning_rate_at(s, 50) == approx((0.1 - 0.01) * 0.25 + 0.01)
    assert learning_rate_at(s, 100) == approx(0.01)
    assert learning_rate_at(s, 500) == approx(0.01)     # stays at the end rate


def test_piecewise_at_steps():
    s = Schedule(kind="piecewise", boundaries=(100, 300), values=(1e-3, 5e-4, 1e-4))
    assert learning_rate_at(s, 0) == approx(1e-3)
    assert learning_rate_at(s, 100) == approx(1e-3)      # boundary belongs to the earlier piece
    assert learning_rate_at(s, 101) == approx(5e-4)
    assert learning_rate_at(s, 300) == approx(5e-4)
    assert learning_rate_at(s, 301) == approx(1e-4)


@pytest.mark.parametrize("bad, message", [
    (Schedule(kind="exponential", initial_lr=0.1, decay_steps=0, base=0.5), "decay_steps"),
    (Schedule(kind="exponential", initial_lr=0.1, decay_steps=10, base=-1.0), "base"),
    (Schedule(kind="exponential", initial_lr=-0.1, decay_steps=10, base=0.5), "initial learning rate"),
    (Schedule(kind="polynomial", initial_lr=0.1, decay_steps=-5, end_lr=0.0, power=1.0), "decay_steps"),
    (Schedule(kind="polynomial", initial_lr=0.1, decay_steps=5, end_lr=-1.0, power=1.0), "end learning rate"),
    (Schedule(kind="piecewise", boundaries=(10, 20), values=(1e-3, 1e-4)), "2 boundaries need 3 values"),
    (Schedule(kind="piecewise", boundaries=(20, 10), values=(1e-3, 1e-4, 1e-5)), "ascending"),
    (Schedule(kind="piecewise", boundaries=(0,), values=(1e-3, 1e-4)), "positive"),
    (Schedule(kind="cosine"), "unknown schedule kind"),
])
def test_bad_arguments_raise_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        build_schedule(bad)
    with pytest.raises(ValueError, match=message):
        validate(Config(g_schedule=bad))


def test_schedule_survives_json_round_trip():
    cfg = Config(g_schedule=Schedule(kind="piecewise", boundaries=(5,), values=(1e-3, 1e-4)),
                 d_schedule=Schedule(kind="exponential", initial_lr=0.1, decay_steps=10, base=0.9))
    again = Config.from_dict(__import__("json").loads(cfg.to_json()))
    assert again == cfg
