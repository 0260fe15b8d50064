"""loss.png: a run's per-step log (``logs/losses.csv``) as curves over steps.

>>> from gan_anime.plots import plot_losses
>>> plot_losses("runs/demo")                       # -> 'runs/demo/loss.png'

One panel each for the losses, D(x) and D(G(z)), and the learning rates; every other key in the
log (an auxiliary loss, ``fid``) gets a panel of its own.  Curves are smoothed (an exponential
moving average over about 1% of the run), with the raw values faint behind them.

matplotlib is imported only when a plot is drawn, and used through its object API (a ``Figure``
on an Agg canvas) rather than pyplot: no global figure state, no display needed, and a notebook's
own backend is left alone.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from gan_anime.files import atomic_write

#: Display names shared by the progress line and the plot legends.
LABELS = {"d_real": "D(x)", "d_fake": "D(G(z))"}
#: Fixed panels: (title, keys, smoothed).  Learning rates are exact values, so they are not smoothed.
PANELS = (("losses", ("d_loss", "g_loss"), True),
          ("discriminator outputs D(x), D(G(z))", ("d_real", "d_fake"), True),
          ("learning rates", ("lr_g", "lr_d"), False))
#: Columns that are positions or throughput, not training quantities.
NOT_PLOTTED = ("step", "epoch", "images_per_s")

Series = Dict[str, Tuple[np.ndarray, np.ndarray]]   # key -> (steps int64 [n], values float64 [n])


def read_series(csv_path: str) -> Series:
    """Each column of a ``losses.csv`` as (steps, values), skipping empty and non-numeric cells
    (keys reported only on some steps, like ``fid``, have fewer points)."""
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"no per-step log at {csv_path}: train the run first")
    points: Dict[str, List[Tuple[int, float]]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            step = row.get("step") or ""
            if not step.isdigit():
                continue
            for key, cell in row.items():
                if key is None or key in NOT_PLOTTED or not cell:
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    continue
                if math.isfinite(value):
                    points.setdefault(key, []).append((int(step), value))
    return {k: (np.array([s for s, _ in p], np.int64), np.array([v for _, v in p], np.float64))
            for k, p in points.items()}


def panels(keys: Sequence[str]) -> List[Tuple[str, Tuple[str, ...], bool]]:
    """The panels for the logged ``keys``: the fixed ones that have data, then one per other key."""
    present = set(keys)
    out = [(title, tuple(k for k in group if k in present), smooth)
           for title, group, smooth in PANELS if present & set(group)]
    grouped = {k for _, group, _ in PANELS for k in group}
    out += [(k, (k,), True) for k in keys if k not in grouped]
    return out


def smooth(values: np.ndarray, span: float) -> np.ndarray:
    """Exponential moving average with weight 2 / (span + 1), bias-corrected (as TensorBoard's
    smoothing) so the first points are not pulled towards zero.  float [n] -> float [n]."""
    alpha = 2.0 / (max(span, 1.0) + 1.0)
    out = np.empty(len(values), np.float64)
    acc = weight = 0.0
    for i, v in enumerate(values):
        acc = (1 - alpha) * acc + alpha * v
        weight = (1 - alpha) * weight + alpha
        out[i] = acc / weight
    return out


def plot_losses(run_dir: str, out: Optional[str] = None) -> str:
    """Draw ``<run_dir>/logs/losses.csv`` into ``out`` (default ``<run_dir>/loss.png``), atomically.

    Returns the path.  Raises FileNotFoundError without a log and ValueError when it has no rows.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    csv_path = os.path.join(run_dir, "logs", "losses.csv")
    series = read_series(csv_path)
    if not series:
        raise ValueError(f"{csv_path} has no rows yet: nothing to plot")
    layout = panels(list(series))
    last_step = max(int(s[-1]) for s, _ in series.values())
    fig = Figure(figsize=(10, 2.4 * len(layout) + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(layout), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, keys, smoothed) in zip(axes, layout):
        for i, key in enumerate(keys):
            steps, values = series[key]
            color, label = f"C{i}", LABELS.get(key, key)
            few = len(values) < 20
            if not smoothed or few:
                # Exact values (learning rates) or a handful of points (fid every N steps): as they are.
                ax.plot(steps, values, color=color, lw=1.4, label=label, marker="o" if few else None, ms=3)
                continue
            ax.plot(steps, values, color=color, lw=0.8, alpha=0.25)
            ax.plot(steps, smooth(values, len(values) / 100), color=color, lw=1.5, label=label)
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", useOffset=False)   # D(x) near 0.5 reads "0.5", not "1e-5 + 5e-1"
        ax.legend(loc="upper right", fontsize=8)
        if title == "learning rates":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    axes[-1].set_xlabel("step")
    fig.suptitle(f"{os.path.basename(os.path.normpath(run_dir))}: {last_step} steps", fontsize=11)
    path = out or os.path.join(run_dir, "loss.png")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path
