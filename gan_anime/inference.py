"""Load a trained run and generate faces: a pure function of (checkpoint, seed, labels).

>>> import gan_anime
>>> run = gan_anime.load("runs/default")
>>> faces = run.generate(16, seed=7, hair="blonde", eye="blue")   # uint8 [16, 64, 64, 3]
>>> run.grid(faces).save("faces.png")
>>> frames = run.interpolate([1, 2, 3], frames=24)               # uint8 [49, 64, 64, 3]: 1 -> 2 -> 3
>>> tamer = run.generate(16, seed=7, truncation=1.0)              # the same faces, noise kept within +-1
"""

from __future__ import annotations

import os
import re
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from gan_anime.config import Config
from gan_anime.images import labelled_grid, make_grid, save_png, to_uint8
from gan_anime.models import build_models

LabelArg = Union[None, int, str, Sequence[Union[int, str]]]

#: Frames from one seed to the next in an interpolation (1 s at 24 frames per second).
INTERPOLATION_FRAMES = 24


def _label_indices(value: LabelArg, classes: Sequence[str], n: int, rng: np.random.Generator,
                   what: str) -> np.ndarray:
    """Turn a class name/index (or one per image) into int32 [n]; None draws them from ``rng``."""
    if value is None:
        return rng.integers(0, len(classes), size=n).astype(np.int32)
    values = [value] * n if isinstance(value, (str, int, np.integer)) else list(value)
    if len(values) != n:
        raise ValueError(f"{what}: got {len(values)} labels for {n} images; give one label or one per image")
    out = []
    for v in values:
        if isinstance(v, str):
            if v not in classes:
                raise ValueError(f"unknown {what} colour {v!r}; expected one of {', '.join(classes)}")
            out.append(list(classes).index(v))
        elif isinstance(v, (int, np.integer)) and 0 <= int(v) < len(classes):
            out.append(int(v))
        else:
            raise ValueError(f"{what} label {v!r} is out of range; expected a name or 0..{len(classes) - 1}")
    return np.asarray(out, np.int32)


def generator_inputs(cfg: Config, n: int, seed: int, hair: LabelArg = None, eye: LabelArg = None):
    """Noise float32 [n, noise_dim] and labels ((hair, eye) int32 [n] or None) for ``seed``.

    Image i depends only on (seed, i): ``generate(8, seed)[:4] == generate(4, seed)``.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of images must be a positive integer, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    noise = np.random.default_rng([int(seed), 0]).standard_normal((n, cfg.noise_dim)).astype(np.float32)
    if not cfg.conditional:
        if hair is not None or eye is not None:
            raise ValueError("this run was trained without tags, so hair= and eye= cannot be chosen")
        return noise, None
    h = _label_indices(hair, cfg.hair_classes, n, np.random.default_rng([int(seed), 1]), "hair")
    e = _label_indices(eye, cfg.eye_classes, n, np.random.default_rng([int(seed), 2]), "eye")
    return noise, (h, e)


def check_truncation(truncation) -> Optional[float]:
    """``truncation`` as a float (None stays None); ValueError unless it is a positive finite number."""
    if truncation is None:
        return None
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float, np.integer, np.floating)) \
            or not np.isfinite(truncation) or truncation <= 0:
        raise ValueError(f"truncation must be a positive number (the largest |z| kept, e.g. 1.5) or None, "
                         f"got {truncation!r}")
    return float(truncation)


def truncate_noise(noise: np.ndarray, truncation: Optional[float]) -> np.ndarray:
    """The truncation trick (Brock et al. 2019, BigGAN): each standard-normal value of ``noise`` (float32
    [n, D]) moved into [-truncation, truncation] by the monotone map that turns N(0, 1) into N(0, 1)
    truncated there, z -> ppf(cdf(-t) + cdf(z) (1 - 2 cdf(-t))).  A face keeps its seed's look, drawn
    nearer the average face: fewer broken faces, less variety.  ``None`` leaves the noise as it is.

    The map is elementwise, so image i still depends only on (seed, i), and an interpolation's key
    frames are the truncated faces of its seeds.
    """
    if check_truncation(truncation) is None:
        return noise
    z = tf.constant(noise, tf.float64)
    cdf = lambda x: 0.5 * tf.math.erfc(-x / np.sqrt(2.0))   # noqa: E731  (the standard normal's)
    low = cdf(tf.constant(-float(truncation), tf.float64))
    out = tf.math.ndtri(low + cdf(z) * (1.0 - 2.0 * low))
    return np.clip(out.numpy(), -float(truncation), float(truncation)).astype(np.float32)


def generator_tensors(cfg: Config, n: int, seed: int):
    """:func:`generator_inputs` as tensors, ready to call a generator with."""
    noise, labels = generator_inputs(cfg, n, seed)
    return tf.constant(noise), None if labels is None else tuple(tf.constant(l) for l in labels)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from noise vector ``a`` (t = 0) to ``b`` (t = 1), float [D] -> float [D].

    Gaussian noise of D dimensions lies near a sphere; the straight line between two samples cuts
    through its inside, where the generator saw no noise in training and draws washed-out faces
    (White 2016, "Sampling Generative Networks").  Nearly parallel vectors fall back to a line.
    """
    cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return (1.0 - t) * a + t * b
    return (np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolation_inputs(cfg: Config, seeds: Sequence[int], frames: int = INTERPOLATION_FRAMES,
                         hair: LabelArg = None, eye: LabelArg = None, loop: bool = False):
    """Inputs of a walk through the faces of ``seeds`` (face i of seed s is ``generate(1, seed=s)[0]``).

    ``frames`` per step from one seed to the next: the noise by :func:`slerp`, and (conditional runs)
    the one-hot hair and eye labels linearly, so tags blend from one seed's to the next's; with
    ``hair``/``eye`` given they stay fixed.  ``loop`` adds the step from the last seed back to the first.
    Returns noise float32 [N, noise_dim] and labels (hair float32 [N, num_hair], eye float32 [N, num_eye])
    or None, N = (len(seeds) - 1) * frames + 1, or len(seeds) * frames with ``loop``.
    """
    seeds = list(seeds)
    if len(seeds) < 2:
        raise ValueError(f"an interpolation needs at least 2 seeds, got {len(seeds)}")
    if not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"frames between two seeds must be a positive integer, got {frames!r}")
    keys = []
    for seed in seeds:
        noise, labels = generator_inputs(cfg, 1, seed, hair, eye)
        onehot = None if labels is None else (np.eye(cfg.num_hair, dtype=np.float32)[labels[0][0]],
                                              np.eye(cfg.num_eye, dtype=np.float32)[labels[1][0]])
        keys.append((noise[0], onehot))
    pairs = list(zip(keys, keys[1:])) + ([(keys[-1], keys[0])] if loop else [])
    steps = [(a, b, i / frames) for a, b in pairs for i in range(frames)]
    if not loop:
        steps.append((keys[-2], keys[-1], 1.0))
    noise = np.stack([slerp(a[0], b[0], t) for a, b, t in steps]).astype(np.float32)
    if keys[0][1] is None:
        return noise, None
    labels = tuple(np.stack([(1.0 - t) * a[1][j] + t * b[1][j] for a, b, t in steps]).astype(np.float32)
                   for j in (0, 1))
    return noise, labels


#: The sampling modes of ``--inference --mode`` (those of the peer ACGAN anime projects).
SAMPLING_MODES = ("fix-noise", "fix-tags", "change-hair", "change-eye")
#: Rows of the change-hair / change-eye grids and faces of the fix-tags grid when no count is given.
MODE_ROWS, MODE_FACES = 8, 64


def _fixed(value: LabelArg, classes: Sequence[str], rng: np.random.Generator, what: str) -> int:
    """One class index: ``value`` (a name or index) or one drawn from ``rng``."""
    if value is not None and not isinstance(value, (str, int, np.integer)):
        raise ValueError(f"{what}: give one colour for a sampling mode, got {value!r}")
    return int(_label_indices(value, classes, 1, rng, what)[0])


def mode_inputs(cfg: Config, mode: str, seed: int = 0, count: Optional[int] = None, hair: LabelArg = None,
                eye: LabelArg = None):
    """Inputs of one labelled grid of a conditional run, for ``mode`` in :data:`SAMPLING_MODES`.

    * ``fix-noise``: the first noise of ``seed`` for every hair colour (rows) x eye colour (columns);
      ``hair``/``eye`` keep one row/column.
    * ``fix-tags``: ``count`` faces (64) of ``seed`` with the same hair and eye (given, or drawn by ``seed``).
    * ``change-hair`` / ``change-eye``: ``count`` rows (8), row i the i-th noise of ``seed``, the hair
      (eye) colour changing across the columns, the other tag fixed (given, or drawn per row by ``seed``).

    Returns (noise float32 [N, noise_dim], (hair int32 [N], eye int32 [N]), columns, column labels,
    row labels, title).  The same arguments give the same faces.
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling mode {mode!r}; expected one of {', '.join(SAMPLING_MODES)}")
    if not cfg.conditional:
        raise ValueError(f"sampling mode {mode} needs a conditional run (trained with hair/eye tags); this run "
                         f"has no tags")
    if count is not None and mode == "fix-noise":
        raise ValueError("fix-noise draws one face per hair and eye colour; a count does not apply")
    n = count if count is not None else (MODE_FACES if mode == "fix-tags" else MODE_ROWS)
    noise_all, (hair_drawn, eye_drawn) = generator_inputs(cfg, n, seed)
    hairs, eyes = list(cfg.hair_classes), list(cfg.eye_classes)
    if mode == "fix-noise":
        rows = [hair] if hair is not None else hairs
        cols = [eye] if eye is not None else eyes
        h = _label_indices([r for r in rows for _ in cols], hairs, len(rows) * len(cols), None, "hair")
        e = _label_indices([c for _ in rows for c in cols], eyes, len(rows) * len(cols), None, "eye")
        noise = np.repeat(noise_all[:1], len(h), axis=0)
        return (noise, (h, e), len(cols), [eyes[i] for i in e[:len(cols)]], [hairs[i] for i in h[::len(cols)]],
                f"fix-noise: seed {seed}, hair (rows) x eye (columns)")
    if mode == "fix-tags":
        fh = _fixed(hair, hairs, np.random.default_rng([int(seed), 1]), "hair")
        fe = _fixed(eye, eyes, np.random.default_rng([int(seed), 2]), "eye")
        cols = int(np.ceil(np.sqrt(n)))
        return (noise_all, (np.full(n, fh, np.int32), np.full(n, fe, np.int32)), cols, (), (),
                f"fix-tags: {hairs[fh]} hair, {eyes[fe]} eyes, seed {seed}")
    changing, fixed_what = ("hair", "eye") if mode == "change-hair" else ("eye", "hair")
    if (hair if changing == "hair" else eye) is not None:
        raise ValueError(f"{mode} shows every {changing} colour across the columns, so one {changing} colour does "
                         f"not apply (choose the {fixed_what} colour, or use fix-tags)")
    classes = hairs if changing == "hair" else eyes
    other_classes = eyes if changing == "hair" else hairs
    other_arg = eye if changing == "hair" else hair
    if other_arg is not None:
        other = np.full(n, _fixed(other_arg, other_classes, None, fixed_what), np.int32)
    else:
        other = eye_drawn if changing == "hair" else hair_drawn
    k = len(classes)
    noise = np.repeat(noise_all, k, axis=0)
    changing_idx = np.tile(np.arange(k, dtype=np.int32), n)
    other_idx = np.repeat(other, k).astype(np.int32)
    labels = (changing_idx, other_idx) if changing == "hair" else (other_idx, changing_idx)
    row_labels = [f"{other_classes[i]} {fixed_what}" for i in other]
    return noise, labels, k, list(classes), row_labels, f"{mode}: seed {seed}, {changing} colour by column"


def run_generator(generator, noise: np.ndarray, labels=None, batch_size: int = 64) -> np.ndarray:
    """Generator in inference mode (batch norm uses its moving statistics, so each image is
    independent of the others in its batch) -> uint8 [n, S, S, 3].

    labels: None, or (hair, eye) as int [n] class indices or float [n, classes] (soft) one-hot vectors."""
    out = []
    for i in range(0, len(noise), batch_size):
        z = tf.constant(noise[i:i + batch_size])
        lab = None if labels is None else tuple(tf.constant(l[i:i + batch_size]) for l in labels)
        out.append(to_uint8(generator(z, lab, training=False)))
    return np.concatenate(out, axis=0)


def find_checkpoint(run_dir: str, checkpoint=None) -> str:
    """The checkpoint path (prefix) of a run: its latest (``checkpoint`` None), the one written at step
    ``checkpoint`` (an int or a string of digits: ``<run>/checkpoints/ckpt-<step>``), or a path: a prefix
    like ``.../ckpt-312`` (or its ``.index`` file), as given or relative to the run's ``checkpoints/`` or
    the run.  FileNotFoundError names the steps the run keeps."""
    folder = os.path.join(run_dir, "checkpoints")
    if checkpoint is None:
        ckpt = tf.train.latest_checkpoint(folder)
        if ckpt is None:
            raise FileNotFoundError(f"no checkpoint in {folder}: train the run first")
        return ckpt
    text = str(checkpoint)
    if re.fullmatch(r"[0-9]+", text):
        candidates = [os.path.join(folder, f"ckpt-{int(text)}")]
    else:   # a path as given, else inside the run's checkpoints/ or the run (e.g. "ckpt-312")
        prefix = text[:-len(".index")] if text.endswith(".index") else text
        candidates = [prefix, os.path.join(folder, prefix), os.path.join(run_dir, prefix)]
    path = next((c for c in candidates if text and os.path.isfile(c + ".index")), None)
    if path is None:
        kept = sorted(int(f[len("ckpt-"):-len(".index")]) for f in os.listdir(folder)
                      if re.fullmatch(r"ckpt-[0-9]+\.index", f)) if os.path.isdir(folder) else []
        raise FileNotFoundError(f"checkpoint {text} not found (expected a step number or a checkpoint path; "
                                f"{folder} keeps steps {', '.join(map(str, kept)) or 'none'})")
    return path


class GanRun:
    """A trained generator loaded from a run directory.  Needs no flags: made for notebooks."""

    def __init__(self, run_dir: str, config: Config, generator, checkpoint: str):
        self.run_dir, self.config, self.generator, self.checkpoint = run_dir, config, generator, checkpoint

    @property
    def hair_classes(self):
        return self.config.hair_classes

    @property
    def eye_classes(self):
        return self.config.eye_classes

    def generate(self, n: int, seed: int = 0, hair: LabelArg = None, eye: LabelArg = None,
                 truncation: Optional[float] = None) -> np.ndarray:
        """``n`` faces as uint8 [n, S, S, 3].  The same (n, seed, hair, eye, truncation) gives the same pixels.

        hair/eye: a class name or index for all images, one per image, or None for random (by seed).
        truncation: keep the noise within +-truncation (:func:`truncate_noise`); None: untruncated.
        """
        noise, labels = generator_inputs(self.config, n, seed, hair, eye)
        return run_generator(self.generator, truncate_noise(noise, truncation), labels)

    def sample_mode(self, mode: str, seed: int = 0, count: Optional[int] = None, hair: LabelArg = None,
                    eye: LabelArg = None, truncation: Optional[float] = None):
        """One labelled grid of a sampling mode (see :func:`mode_inputs`): (faces uint8 [N, S, S, 3], PIL grid)."""
        noise, labels, cols, col_labels, row_labels, title = mode_inputs(self.config, mode, seed, count, hair, eye)
        images = run_generator(self.generator, truncate_noise(noise, truncation), labels)
        return images, labelled_grid(images, cols, col_labels, row_labels, title)

    def interpolate(self, seeds: Sequence[int], frames: int = INTERPOLATION_FRAMES, hair: LabelArg = None,
                    eye: LabelArg = None, loop: bool = False, truncation: Optional[float] = None) -> np.ndarray:
        """A smooth walk through the faces of ``seeds`` as uint8 [N, S, S, 3] (see :func:`interpolation_inputs`).

        Frame k * frames is ``generate(1, seed=seeds[k], truncation=truncation)[0]``; write it with
        :func:`gan_anime.animation.write_interpolation` (MP4 and GIF).
        """
        noise, labels = interpolation_inputs(self.config, seeds, frames, hair, eye, loop)
        return run_generator(self.generator, truncate_noise(noise, truncation), labels)

    @staticmethod
    def grid(images: np.ndarray, cols: Optional[int] = None):
        """uint8 [N, H, W, 3] -> a PIL image grid."""
        return make_grid(images, cols)

    def save(self, images: np.ndarray, out_dir: str, grid: bool = True) -> str:
        """Write each image as NNNN.png (and grid.png) into ``out_dir``; returns ``out_dir``."""
        for i, img in enumerate(images):
            save_png(img, os.path.join(out_dir, f"{i:04d}.png"))
        if grid:
            save_png(make_grid(images), os.path.join(out_dir, "grid.png"))
        return out_dir


def build_generator(cfg: Config):
    """An EMA-or-plain generator with its variables created (restore fills them in).

    Always float32, whatever precision the run trained in (its variables are float32 either way):
    a seed gives the same face on every machine, with or without native bfloat16.
    """
    generator, _ = build_models(cfg.replace(precision="float32"))
    generator(*generator_tensors(cfg, 1, 0))
    return generator


def load(run_dir: str, checkpoint=None) -> GanRun:
    """Load the generator of a run (the EMA weights when the run keeps them) from its latest checkpoint,
    or from ``checkpoint``: a step number of one the run kept, or a checkpoint path."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    cfg = Config.load(os.path.join(run_dir, "config.json"))
    ckpt_path = find_checkpoint(run_dir, checkpoint)
    generator = build_generator(cfg)
    key = "generator_ema" if cfg.ema_decay > 0 else "generator"
    from gan_anime.training.recovery import checkpoint_candidates, first_line, restore_newest_good
    restorer = tf.train.Checkpoint(**{key: generator})
    if checkpoint is not None:   # the checkpoint asked for, or an error
        try:
            restorer.restore(ckpt_path).expect_partial().assert_existing_objects_matched()
        except (tf.errors.OpError, IndexError, RuntimeError) as e:
            raise ValueError(f"checkpoint {ckpt_path} cannot be read back ({first_line(e)})") from None
        return GanRun(run_dir, cfg, generator, ckpt_path)
    # The latest, or when it is damaged (a disk error, a copy cut short) the newest one that reads back.
    path = restore_newest_good(restorer, checkpoint_candidates(os.path.dirname(ckpt_path)), (), partial=True)
    if path is None:
        raise ValueError(f"none of the checkpoints of {run_dir} can be read back; train the run again")
    return GanRun(run_dir, cfg, generator, path)
