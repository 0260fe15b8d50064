"""What a base preset's three levels give: one run of level 3, measured at the ends of levels 1, 2 and 3.

    python benchmarks/preset_quality.py --preset S --samples 2000 --heldout 2000 --out runs/presets-S --media media
    python benchmarks/preset_quality.py --preset S --out runs/presets-S-bf16 --before runs/presets-S="float32"
    python benchmarks/preset_quality.py --preset S --data-dir runs/otherstyle --heldout-dir runs/otherstyle-heldout \\
        --out runs/presets-S-otherstyle
    python benchmarks/preset_quality.py --preset S --out runs/presets-S --tail-from 42 --tail-scales 0.5,0.25

The levels of a base preset (``TRAIN S,1`` / ``S,2`` / ``S,3``) differ only in their epochs and use a
constant learning rate, and a run's batches and noise depend only on (seed, step), so level k's run is the
first epochs of level 3's: one run of level 3 (its ``TRAIN`` flags, plus ``--data-dir`` when given) keeps
the checkpoints of every epoch and is measured where each level ends. For each level it writes the wall
time of training to that epoch (the trainer's clock, nothing else running is assumed), FID, KID,
precision and recall of ``--samples`` generated faces against ``--heldout`` built-in faces rendered with
another seed (never trained on) or against the images of ``--heldout-dir``, tag accuracy on conditional
runs, and a grid of 64 faces drawn with seed 1 (``--media``: also copied there as
``samples_cpu_<preset><k>.png``, with the plot).  Writes ``results.json``, ``table.md`` and
``fid_vs_minutes_<preset>.png`` (the levels of each ``--before`` folder as lines of their own) into
``--out``, with ``times.json`` (training seconds at each checkpoint) and ``levels/`` (the checkpoint
that ends each level, copied out of the run's rotation).  Running the
same command again resumes a stopped run and reuses the levels already measured (same step, samples and
reference).  ``--tail-from E --tail-scales 0.5,0.25`` then branches the run at the end of epoch E (its
checkpoint kept when the run trained with ``--keep-epochs E`` or ``--tail-from E``) into one run per factor,
each continuing to the last level's end with both learning rates times the factor (what ``--load --lr-scale``
does), and measures each there, as rows and points of their own: an annealed tail, paired with the run
itself.  ``--averages 0.999,0.9999/5`` keeps more moving averages of the generator beside the run's own,
each ``DECAY`` or ``DECAY/W`` averaging with min(DECAY, (1 + step) / (W + step)) (the trainer's rule has
W = 10), and measures each at every level as rows of its own: averages never feed back into training, so
one run compares them with everything else the same.  Not a test: the times depend on the machine.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

from gan_anime.cli import presets  # noqa: E402  (no TensorFlow)
from gan_anime.config import EMA_WARMUP  # noqa: E402

GRID_SEED = 1


def _read_json(path: str, default):
    """The JSON in ``path``, or ``default`` when there is none (written atomically, so never half)."""
    if not os.path.isfile(path):
        return default
    with open(path) as f:
        return json.load(f)


#: Flags --flags may not give: they would make the levels' runs something else than the preset's.
NOT_IN_FLAGS = ("epochs", "max_steps", "max_minutes", "run_dir", "name", "runs_root")


def level_configs(preset: str, extra):
    """Config of each level of base preset ``preset`` (with the extra ENTRY flags), via the command line's
    own parsing and checks; raises ValueError (one line) when the flags are wrong or the levels differ
    in more than their epochs."""
    from gan_anime.cli import flags as cli_flags
    from gan_anime.cli import main as cli_main
    named = {t[2:].split("=")[0].replace("-", "_") for t in extra if t.startswith("--")}
    refused = [cli_flags.dashed(n) for n in NOT_IN_FLAGS if n in named]
    if refused:
        raise ValueError(f"--flags: {', '.join(refused)} cannot be given (the levels are the preset's epochs; "
                         f"the run goes in --out)")
    configs = []
    for k in presets.LEVELS:
        try:
            folder = any(t == "--data-dir" or t.startswith("--data-dir=") for t in extra)
            rest = cli_flags.parse([cli_flags.PROG] + presets.args([f"{preset},{k}"], folder=folder) + list(extra))
            if rest:
                raise ValueError(f"--flags: unexpected argument {rest[0]!r} (expected ENTRY --flags)")
            cli_main._routine()          # the flags --train accepts, as the command line checks them
            configs.append(cli_main.train_config().replace(run_dir=""))
        except cli_flags.UsageError as e:
            raise ValueError(str(e)) from None
    same = [c.replace(epochs=0) for c in configs]
    if any(c != same[0] for c in same[1:]):
        raise ValueError(f"the levels of {preset} differ in more than their epochs: train them one by one")
    if any(c.g_schedule.kind != "constant" or c.d_schedule.kind != "constant" for c in configs):
        raise ValueError(f"{preset} decays its learning rate: a level's run is not the start of the next one's")
    return configs


def _average(text: str):
    """"0.9999/5" -> (0.9999, 5.0); "0.999" -> (0.999, EMA_WARMUP), the trainer's warm-up."""
    decay, _, warmup = text.strip().partition("/")
    return float(decay), float(warmup) if warmup else EMA_WARMUP


def average_name(decay: float, warmup: float) -> str:
    return f"{decay:g}" + ("" if warmup == EMA_WARMUP else f"/{warmup:g}")


def average_checkpoint(out: str, name: str, step: int) -> str:
    """Where --averages writes average ``name``'s generator at a level's end (read by ``evaluate``)."""
    return os.path.join(out, "levels", "averages", name.replace("/", "w"), f"ckpt-{step}")


def extra_averages_hook(averages, own_decay: float, out: str, level_epochs):
    """A training hook keeping the moving averages ``averages`` [(decay, W)] of the generator's weights,
    updated after every step as the trainer updates its own (``Trainer._update_ema``), plus a copy of the
    run's own rule (``own_decay``, W ``EMA_WARMUP``) that checks them: at each level's end its largest difference from
    the run's averaged generator is printed.  At a level's end each average is written as a checkpoint
    with its own batch-norm statistics (:func:`average_checkpoint`); at every checkpoint of the run the
    averages are saved beside it, so a stopped run resumes with them."""
    import numpy as np
    import tensorflow as tf
    from gan_anime.files import write_text
    from gan_anime.training.hooks import Hook
    from gan_anime.training.trainer import update_average
    rules = list(averages) + [(own_decay, EMA_WARMUP)]
    state_dir = os.path.join(out, "levels", "averages", "state")

    class ExtraAverages(Hook):
        def resumable(self) -> bool:
            """Whether the run was stopped with these averages saved (the same rules) to resume with."""
            for path in glob.glob(os.path.join(state_dir, "state-*.npz")):
                with np.load(path, allow_pickle=False) as saved:
                    if "rules" in saved and np.array_equal(saved["rules"], np.array(rules)):
                        return True
            return False

        def begin(self, run):
            self.trainer, self.spe = run.trainer, run.steps_per_epoch
            weights = self.trainer.G.trainable_weights
            self.copies = [[tf.Variable(w.numpy(), trainable=False) for w in weights] for _ in rules]
            if run.start_step:
                path = os.path.join(state_dir, f"state-{run.start_step}.npz")
                if not os.path.isfile(path):
                    raise ValueError(f"--averages: no saved averages for step {run.start_step} ({path}); "
                                     f"give a new --out")
                with np.load(path, allow_pickle=False) as saved:
                    for i, copies in enumerate(self.copies):
                        for j, c in enumerate(copies):
                            c.assign(saved[f"a{i}_{j}"])
            @tf.function
            def update(step):
                for (d, w), copies in zip(rules, self.copies):
                    update_average(copies, weights, d, step, w)
            self.update = update

        def step_end(self, event):
            self.update(tf.constant(event.step - 1, tf.int64))      # the steps before this one, as the trainer

        def checkpoint(self, path):
            step = int(path.rsplit("-", 1)[1])
            os.makedirs(state_dir, exist_ok=True)
            tmp = os.path.join(state_dir, f".state-{step}.npz")
            np.savez(tmp, rules=np.array(rules), **{f"a{i}_{j}": c.numpy() for i, copies in enumerate(self.copies)
                             for j, c in enumerate(copies)})
            os.replace(tmp, os.path.join(state_dir, f"state-{step}.npz"))
            kept = {os.path.basename(f)[len("ckpt-"):-len(".index")]
                    for f in glob.glob(os.path.join(glob.escape(os.path.dirname(path)), "ckpt-*.index"))}
            for f in glob.glob(os.path.join(state_dir, "state-*.npz")):
                if os.path.basename(f)[len("state-"):-len(".npz")] not in kept:
                    os.remove(f)
            if step % self.spe or step // self.spe not in level_epochs:
                return
            g_ema = self.trainer.G_ema
            own = max(float(np.max(np.abs(c.numpy() - w.numpy())))
                      for c, w in zip(self.copies[-1], g_ema.trainable_weights))
            print(f"averages at step {step}: the copy of the run's own average differs from it by at most "
                  f"{own:.3g}", flush=True)
            write_text(os.path.join(state_dir, f"check-{step}.json"), json.dumps({"step": step, "max_diff": own}))
            saved = [w.numpy() for w in g_ema.weights]
            try:
                for (d, w), copies in zip(averages, self.copies):
                    for v, c in zip(g_ema.trainable_weights, copies):
                        v.assign(c)
                    self.trainer.refresh_ema_statistics()
                    ckpt = tf.train.Checkpoint(generator_ema=g_ema, step=self.trainer.counters.step)
                    ckpt.save_counter    # created, so written: a run's checkpoints hold it, and load expects it
                    ckpt.write(average_checkpoint(out, average_name(d, w), step))
            finally:
                for v, value in zip(g_ema.weights, saved):
                    v.assign(value)

    return ExtraAverages()


def _comma_list(p: argparse.ArgumentParser, flag: str, text: str, kind, what: str, example: str, valid,
                expected: str) -> list:
    """The values of a comma-separated option (each read by ``kind``); ``p.error`` (one line, exit 2) names
    ``flag`` when one is not a ``kind`` or not ``valid``."""
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        p.error(f"{flag}: expected {what} separated by commas (e.g. {example}), got {text!r}")
    if not all(valid(v) for v in values):
        p.error(f"{flag}: {expected}, got {text!r}")
    return values


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="S", help=f"base preset: one of {', '.join(presets.BASES)} (S)")
    p.add_argument("--samples", type=int, default=2000, help="generated faces per measurement (2000)")
    p.add_argument("--heldout", type=int, default=2000, help="held-out built-in faces to measure against (2000)")
    p.add_argument("--data-dir", help="train on this folder instead of the built-in faces")
    p.add_argument("--heldout-dir", help="measure against this folder's images (with --data-dir)")
    p.add_argument("--out", default=None, help="output folder (runs/presets-<preset>)")
    p.add_argument("--media", help="also copy each level's grid here as samples_cpu_<preset><k>.png")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--label", default=None, help="the plot's name for this run's line (TRAIN <preset>,1 / ,2 / ,3)")
    p.add_argument("--before", action="append", default=[], metavar="DIR=LABEL",
                   help="also plot the levels another --out measured (its results.json), named LABEL; repeatable")
    p.add_argument("--flags", default="", help="more ENTRY flags for the run, after the preset's (they win), "
                   "e.g. '--image-size 32 --width 16'; the levels still differ only in epochs")
    p.add_argument("--keep-epochs", default="", metavar="E,E",
                   help="also keep a copy of the checkpoint ending these epochs in levels/ (to branch other runs "
                        "from, e.g. a learning-rate tail with --load --lr-scale)")
    p.add_argument("--tail-from", type=int, default=0, metavar="E",
                   help="with --tail-scales: branch the last level's run at the end of epoch E")
    p.add_argument("--tail-scales", default="", metavar="S,S",
                   help="learning-rate factors for the branches: each continues the run from --tail-from to the "
                        "last level's end with both rates times S (as --load --lr-scale S), and is measured there")
    p.add_argument("--truncations", default="", metavar="T,T",
                   help="also measure the last level's faces drawn with the noise truncated at each T (e.g. "
                        "2,1.5,1: the truncation trick of --inference --truncation), as rows of their own")
    p.add_argument("--averages", default="", metavar="D,D/W",
                   help="also keep these moving averages of the generator (DECAY, or DECAY/W for the warm-up "
                        f"min(DECAY, (1 + step) / (W + step)); the run's own is --ema-decay with W {EMA_WARMUP:g}) "
                        "and measure each at every level, e.g. 0.999,0.9999/5 (needs a new --out: kept from the "
                        "first step)")
    args = p.parse_args(argv)
    if args.preset not in presets.BASES:
        p.error(f"--preset: expected one of {', '.join(presets.BASES)}, got {args.preset!r}")
    if args.samples < 2 or args.heldout < 2:
        p.error("--samples and --heldout must be at least 2")
    keep_epochs = set(_comma_list(p, "--keep-epochs", args.keep_epochs, int, "epochs", "42,48", lambda e: e >= 1,
                                  "epochs start at 1"))
    tail_scales = _comma_list(p, "--tail-scales", args.tail_scales, float, "numbers", "0.5,0.25",
                              lambda x: 0 < x < 1e3, "each factor must be positive")
    if bool(tail_scales) != bool(args.tail_from):
        p.error("--tail-from and --tail-scales go together")
    truncations = _comma_list(p, "--truncations", args.truncations, float, "numbers", "2,1.5,1",
                              lambda x: 0 < x < float("inf"), "each must be a positive number")
    keep_epochs |= {args.tail_from} if args.tail_from else set()
    averages = _comma_list(p, "--averages", args.averages, _average, "DECAY or DECAY/W", "0.999,0.9999/5",
                           lambda a: 0 < a[0] < 1 and 1 < a[1] < 1e9, "each DECAY must be in (0, 1) and W above 1")
    if len(set(averages)) < len(averages):
        p.error(f"--averages: an average is given twice, got {args.averages!r}")
    if args.heldout_dir and not args.data_dir:
        p.error("--heldout-dir: needs --data-dir (the built-in faces have their own held-out set)")
    for flag, folder in (("--data-dir", args.data_dir), ("--heldout-dir", args.heldout_dir)):
        if folder and not os.path.isdir(folder):
            p.error(f"{flag}: {folder} is not a folder")
    before = []
    for spec in args.before:
        folder, _, label = spec.partition("=")
        path = os.path.join(folder, "results.json")
        if not os.path.isfile(path):
            p.error(f"--before: {path} does not exist (expected the --out of an earlier run of this command)")
        before.append({"name": label or folder, "curve": _read_json(path, [])})
    if args.heldout_dir and "--tags" in args.flags:
        p.error("--heldout-dir: its images have no tags for a conditional run; leave it out to measure against "
                "the training images")
    out = os.path.abspath(args.out or os.path.join("runs", f"presets-{args.preset}"))
    extra = (["--data-dir", args.data_dir] if args.data_dir else []) + (
        ["--cache-dir", args.cache_dir] if args.cache_dir else []) + shlex.split(args.flags)
    try:
        configs = level_configs(args.preset, extra)
    except ValueError as e:
        p.error(str(e))
    if averages and configs[-1].ema_decay == 0:
        p.error("--averages: the run keeps no moving average (--ema-decay 0); leave one of them out")
    if args.tail_from and not 0 < args.tail_from < configs[-1].epochs:
        p.error(f"--tail-from: expected an epoch before the last level's end ({configs[-1].epochs}), "
                f"got {args.tail_from}")
    from absl import logging
    logging.set_verbosity(logging.INFO)     # the trainer's progress lines (absl.app would do this)

    import gan_anime
    from gan_anime.data import load_data
    from gan_anime.data.folder import load_folder
    from gan_anime.files import write_text
    from gan_anime.images import save_png
    from gan_anime.metrics.evaluate import evaluate
    from gan_anime.training.hooks import Hook
    import tensorflow as tf
    from sweep import copy_checkpoint, heldout_faces

    cfg = configs[-1].replace(run_dir=os.path.join(out, f"{args.preset}{presets.LEVELS[-1]}"))
    levels_dir = os.path.join(out, "levels")      # each level's checkpoint, out of reach of the run's rotation
    times_path, results_path = os.path.join(out, "times.json"), os.path.join(out, "results.json")
    level_epochs = {c.epochs for c in configs}
    resume = bool(glob.glob(os.path.join(glob.escape(cfg.run_dir), "checkpoints", "ckpt-*.index")))
    if not resume:    # a new run: nothing measured before belongs to it
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
        shutil.rmtree(levels_dir, ignore_errors=True)
        for path in (times_path, results_path):
            if os.path.isfile(path):
                os.remove(path)
    os.makedirs(levels_dir, exist_ok=True)
    times = _read_json(times_path, {"checkpoints": {}, "levels": {}})

    class LevelTimes(Hook):
        """Seconds of training at each checkpoint, summed over resumed calls (the loop's clock), and a copy
        of the checkpoint that ends each level."""

        def begin(self, run):
            self.spe, self.start = run.steps_per_epoch, time.time()
            # A resumed call starts from a checkpoint whose time was recorded when it was written.
            self.before = times["checkpoints"].get(str(run.start_step), 0.0)

        def checkpoint(self, path):
            step = int(path.rsplit("-", 1)[1])
            seconds = self.before + time.time() - self.start
            times["checkpoints"][str(step)] = seconds
            if step % self.spe == 0 and step // self.spe in level_epochs | keep_epochs:
                times["levels"][str(step // self.spe)] = {"step": step, "seconds": seconds,
                                                          "checkpoint": copy_checkpoint(path, levels_dir)}
            write_text(times_path, json.dumps(times))

    class Clock(Hook):
        """Seconds of training from the loop's start to its last checkpoint."""

        def begin(self, run):
            self.start, self.seconds = time.time(), 0.0

        def checkpoint(self, path):
            self.seconds = time.time() - self.start

    extra_averages = extra_averages_hook(averages, cfg.ema_decay, out, level_epochs) if averages else None
    if extra_averages and resume and str(cfg.epochs) not in times["levels"] and not extra_averages.resumable():
        print("--averages: this --out holds a run trained without the same --averages; give a new --out",
              file=sys.stderr)
        return 2
    if str(cfg.epochs) not in times["levels"]:
        hooks = [LevelTimes()] + ([extra_averages] if extra_averages else [])
        result = gan_anime.train(cfg, resume=resume, hooks=hooks, progress="lines")
        if result.status != "finished":
            print(f"training stopped ({result.status}) at step {result.step}; run the same command again to "
                  f"continue", file=sys.stderr)
            return 1
    if args.heldout_dir:
        heldout = load_folder(args.heldout_dir, cfg.image_size, cache_dir=args.cache_dir)
    elif args.data_dir:
        heldout, _ = load_data(cfg)     # no held-out folder: the training images
    else:
        heldout = heldout_faces(args.heldout, cfg.image_size, args.cache_dir)
    reference = f"{args.heldout_dir or args.data_dir or 'built-in held-out'} ({len(heldout)} images)"
    measured = {r["preset"]: r for r in _read_json(results_path, [])}
    rows = []

    def measure(name: str, run_dir: str, ckpt: str, epochs: int, step: int, seconds: float, grid_name: str,
                truncation=None):
        """One row of the table: the checkpoint's FID, KID, precision, recall and tags, and its grid (or the
        row an earlier call measured from the same step, samples and reference), faces drawn with the noise
        truncated at ``truncation`` when given."""
        old = measured.get(name)
        if old and (old["step"], old["samples"], old["reference"]) == (step, args.samples, reference):
            rows.append(old)
            return
        m = evaluate(run_dir, num_samples=args.samples, data=heldout, checkpoint=ckpt, log=False,
                     cache_dir=args.cache_dir, truncation=truncation)
        run = gan_anime.load(run_dir, ckpt)
        grid = save_png(run.grid(run.generate(64, seed=GRID_SEED, truncation=truncation)),
                        os.path.join(out, f"grid_{grid_name}.png"))
        if args.media:
            os.makedirs(args.media, exist_ok=True)
            shutil.copy2(grid, os.path.join(args.media, f"samples_cpu_{grid_name}.png"))
        tags = m.get("tags") or {}
        rows.append({"preset": name, "epochs": epochs, "step": step, "minutes": round(seconds / 60.0, 2),
                     "fid": m["fid"], "kid": m["kid"], "precision": m["precision"], "recall": m["recall"],
                     "hair": (tags.get("hair") or {}).get("accuracy"), "eye": (tags.get("eye") or {}).get("accuracy"),
                     "samples": args.samples, "reference": reference, "grid": grid})
        print(json.dumps(rows[-1]), flush=True)
        done = {x["preset"] for x in rows}
        write_text(results_path, json.dumps(rows + [r for r in measured.values() if r["preset"] not in done], indent=1))

    for k, level in zip(presets.LEVELS, configs):
        t = times["levels"][str(level.epochs)]
        measure(f"{args.preset},{k}", cfg.run_dir, t["checkpoint"], level.epochs, t["step"], t["seconds"],
                f"{args.preset}{k}")
    for d, w in averages:
        name = average_name(d, w)
        for k, level in zip(presets.LEVELS, configs):
            t = times["levels"][str(level.epochs)]
            ckpt = average_checkpoint(out, name, t["step"])
            if not os.path.isfile(ckpt + ".index"):
                print(f"--averages: {ckpt} is missing: the run was trained without --averages {args.averages}; "
                      f"give a new --out", file=sys.stderr)
                return 2
            measure(f"{args.preset},{k} EMA {name}", cfg.run_dir, ckpt, level.epochs, t["step"], t["seconds"],
                    f"{args.preset}{k}_ema{name.replace('/', 'w')}")
    last = times["levels"][str(cfg.epochs)]
    for t in truncations:
        # The last level's checkpoint again, its faces drawn with truncated noise: not a training setting, so
        # a row of its own, never a level's.
        measure(f"{args.preset},{presets.LEVELS[-1]} truncation {t:g}", cfg.run_dir, last["checkpoint"], cfg.epochs,
                last["step"], last["seconds"], f"{args.preset}{presets.LEVELS[-1]}_trunc{t:g}", truncation=t)
    curves = [{"name": args.label or f"TRAIN {args.preset},1 / ,2 / ,3 (one run)",
               "curve": list(rows[:len(presets.LEVELS)])}]
    n = len(presets.LEVELS)
    curves += [{"name": f"EMA {average_name(d, w)}", "curve": rows[n * (i + 1):n * (i + 2)]}
               for i, (d, w) in enumerate(averages)]
    start = times["levels"].get(str(args.tail_from))
    if tail_scales and start is None:
        print(f"--tail-from: the run kept no checkpoint of epoch {args.tail_from} (it was trained without "
              f"--keep-epochs {args.tail_from} or --tail-from); train it again in a new --out with them",
              file=sys.stderr)
        return 2
    for scale in tail_scales:
        # The last level again, its learning rates times `scale` from the end of epoch --tail-from on: a
        # branch of the same run (as `--load --lr-scale` makes it), measured where the last level ends.
        name = f"{args.preset},{presets.LEVELS[-1]} lr x{scale:g} from epoch {args.tail_from}"
        branch = os.path.join(out, f"tail-{args.tail_from}-x{scale:g}")
        done_at = times.setdefault("tails", {}).get(name)
        if done_at is None:
            shutil.rmtree(branch, ignore_errors=True)     # a stopped branch starts over: its minutes must count
            os.makedirs(os.path.join(branch, "checkpoints"))
            shutil.copy2(os.path.join(cfg.run_dir, "config.json"), branch)
            kept = copy_checkpoint(start["checkpoint"], os.path.join(branch, "checkpoints"))
            tf.compat.v1.train.update_checkpoint_state(os.path.dirname(kept), kept)
            clock = Clock()
            result = gan_anime.train(cfg.replace(run_dir=branch, lr_scale=scale), resume=True, hooks=[clock],
                                     progress="lines")
            if result.status != "finished":
                print(f"{name}: stopped ({result.status}) at step {result.step}; run the same command again to "
                      f"train it over", file=sys.stderr)
                return 1
            done_at = times["tails"][name] = {"step": result.step, "seconds": start["seconds"] + clock.seconds,
                                              "checkpoint": result.checkpoint}
            write_text(times_path, json.dumps(times))
        measure(name, branch, done_at["checkpoint"], cfg.epochs, done_at["step"], done_at["seconds"],
                f"{args.preset}{presets.LEVELS[-1]}_tail_x{scale:g}")
        curves.append({"name": name, "curve": [rows[-1]]})
    from sweep import plot_curves
    png = plot_curves(curves + before,
                      os.path.join(out, f"fid_vs_minutes_{args.preset}.png"),
                      title=f"FID at the end of each {args.preset} level against minutes of training")
    if args.media:
        os.makedirs(args.media, exist_ok=True)
        shutil.copy2(png, os.path.join(args.media, os.path.basename(png)))
    pct = lambda v: "" if v is None else f"{100 * v:.1f}%"   # noqa: E731
    num = lambda v, d: "" if v is None else f"{v:.{d}f}"     # noqa: E731
    lines = ["| preset | epochs | steps | minutes of training | FID | KID | precision | recall | hair | eye |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| `{r['preset']}` | {r['epochs']} | {r['step']:,} | {r['minutes']:.1f} | {r['fid']:.1f} | "
              f"{r['kid']:.4f} | {num(r['precision'], 3)} | {num(r['recall'], 3)} | {pct(r['hair'])} | "
              f"{pct(r['eye'])} |"
              for r in rows]
    write_text(os.path.join(out, "table.md"), "\n".join(lines) + "\n")
    print(os.path.join(out, "table.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
