"""Ablation at a fixed wall-clock budget: train several configurations for the same minutes, then
measure FID and KID at evenly spaced moments of each run, and write one table and one plot.

    python benchmarks/sweep.py --minutes 20 --points 4 --samples 2000 --heldout 2000 --out runs/sweep
    python benchmarks/sweep.py --list                      # the configurations it knows
    python benchmarks/sweep.py --only baseline,hinge --minutes 10
    python benchmarks/sweep.py --only baseline --minutes 45 --at 10,20      # measured at 10, 20 and 45 min

Each configuration trains in a process of its own (one after another, so each has the machine to
itself) on the built-in faces at the ``S`` sizes, plus its own changes to the :class:`~gan_anime.Config`.
A hook keeps a checkpoint (copied to ``<run>/sweep_points/``) each time another ``minutes / points`` of
training have passed (or at the ``--at`` minutes); after
training, each kept checkpoint's EMA generator draws ``--samples`` faces, measured against
``--heldout`` built-in faces rendered with another seed (never trained on; 0: the training images).
Evaluation time is not part of the budget.

Writes into ``--out``: ``results.jsonl`` (one line per configuration, appended as each finishes, so a
stopped sweep keeps what it measured; a configuration already there is not run again), ``table.md``
and ``table.csv`` (config, steps, minutes, FID, KID, precision, recall, tag accuracy at the end of the budget) and
``fid_vs_minutes.png`` (FID at each point of each configuration).  Not a test: the numbers depend on
the machine (name it when you quote them).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import shutil
import subprocess
import sys
import time

#: The S sizes every configuration starts from (TRAIN S,k: 64 px, width 32, batch 16, 10k faces); --base
#: changes them for all (the 10-minute sweep of the README ran with --base '{"g_depth": 1}', the default then).
BASE = dict(image_size=64, g_width=32, d_width=32, batch_size=16, noise_dim=100, faces_count=10000)
#: name -> (what it tests, gan variant, Config fields changed from the variant's defaults at BASE).
CONFIGS = {
    "baseline": ("the default: dcgan, g_depth 2, batch 16, lazy R1 (gamma 1, every 4), EMA 0.9999, precision auto",
                 "dcgan", {}),
    "g-depth-1": ("DCGAN's generator: one (transposed) convolution per resolution, the default before g_depth 2",
                  "dcgan", {"g_depth": 1}),
    "nearest": ("resize-then-convolve upsampling (Odena et al. 2016, checkerboard artifacts)", "dcgan",
                {"upsample": "nearest"}),
    "blur": ("transposed convolutions followed by a [1,2,1] binomial blur (StyleGAN2's filtered upsampling)",
             "dcgan", {"upsample": "blur"}),
    "lr-3e-4": ("learning rate 3e-4 for both networks", "dcgan",
                {"g_schedule": {"initial_lr": 3e-4}, "d_schedule": {"initial_lr": 3e-4}}),
    "lr-anneal": ("learning rates decayed linearly from 2e-4 to 2e-5 over 9,000 steps (about the baseline's "
                  "10 minutes), then held", "dcgan",
                  {"g_schedule": {"kind": "polynomial", "initial_lr": 2e-4, "decay_steps": 9000, "end_lr": 2e-5},
                   "d_schedule": {"kind": "polynomial", "initial_lr": 2e-4, "decay_steps": 9000, "end_lr": 2e-5}}),
    "lr-tail": ("learning rates 2e-4, halved at step 6,000 and again at 7,200 (the last quarter of the baseline's "
                "10 minutes)", "dcgan",
                {"g_schedule": {"kind": "piecewise", "boundaries": [6000, 7200], "values": [2e-4, 1e-4, 5e-5]},
                 "d_schedule": {"kind": "piecewise", "boundaries": [6000, 7200], "values": [2e-4, 1e-4, 5e-5]}}),
    "r1-0.1": ("R1 gamma 0.1", "dcgan", {"r1_gamma": 0.1}),
    "r1-10": ("R1 gamma 10", "dcgan", {"r1_gamma": 10.0}),
    "r1-every-16": ("lazy R1 every 16 steps", "dcgan", {"r1_every": 16}),
    "ttur": ("two time-scale rates G 1e-4, D 4e-4 (Heusel et al. 2017)", "dcgan",
             {"g_schedule": {"initial_lr": 1e-4}, "d_schedule": {"initial_lr": 4e-4}}),
    "beta-0-0.99": ("Adam betas 0, 0.99 (StyleGAN2)", "dcgan", {"beta1": 0.0, "beta2": 0.99}),
    "beta2-0.99": ("Adam betas 0.5, 0.99 (a shorter second-moment memory)", "dcgan", {"beta2": 0.99}),
    "ema-0.99": ("EMA decay 0.99", "dcgan", {"ema_decay": 0.99}),
    "ema-0.999": ("EMA decay 0.999 (the default before round twelve)", "dcgan", {"ema_decay": 0.999}),
    "batch-8": ("batch 8 (twice the steps)", "dcgan", {"batch_size": 8}),
    "batch-32": ("batch 32 (half the steps; the default before this sweep)", "dcgan", {"batch_size": 32}),
    "batch-64": ("batch 64 (a quarter of the steps)", "dcgan", {"batch_size": 64}),
    "width-24": ("width 24", "dcgan", {"g_width": 24, "d_width": 24}),
    "width-48": ("width 48", "dcgan", {"g_width": 48, "d_width": 48}),
    "g-width-48": ("generator width 48, discriminator 32", "dcgan", {"g_width": 48}),
    "d-width-24": ("a narrower discriminator: width 24 (its blocks 24, 48, 96, 192 channels), generator 32", "dcgan",
                   {"d_width": 24}),
    "d-width-16": ("a narrower discriminator: width 16 (its blocks 16, 32, 64, 128 channels), generator 32", "dcgan",
                   {"d_width": 16}),
    "d-width-40": ("a wider discriminator: width 40 (its blocks 40, 80, 160, 320 channels), generator 32", "dcgan",
                   {"d_width": 40}),
    "d-width-48": ("a wider discriminator: width 48 (its blocks 48, 96, 192, 384 channels), generator 32", "dcgan",
                   {"d_width": 48}),
    "d-lr-4e-4": ("the discriminator's learning rate 4e-4, the generator's 2e-4 (a faster D at no arithmetic)",
                  "dcgan", {"d_schedule": {"initial_lr": 4e-4}}),
    "d-lr-1e-4": ("the discriminator's learning rate 1e-4, the generator's 2e-4 (a slower D at no arithmetic)",
                  "dcgan", {"d_schedule": {"initial_lr": 1e-4}}),
    "n-critic-2": ("two discriminator updates per generator update (n_critic 2)", "dcgan", {"n_critic": 2}),
    "g-skip": ("RGB drawn at every generator resolution and summed, upsampled (StyleGAN2's skip generator)", "dcgan",
               {"g_skip": True}),
    "g-cbn": ("conditional batch norm in the generator: each batch norm's scale and offset from the hair and eye "
              "labels (de Vries et al. 2017; the projection GAN's generator)", "dcgan", {"g_cbn": True}),
    "g-sle": ("skip-layer excitation in the generator (FastGAN, Liu et al. 2021): the 16 and 32 px blocks' outputs "
              "scaled channel by channel by gates drawn from the 4 and 8 px features", "dcgan", {"g_sle": True}),
    "d-residual": ("a shortcut avgpool + 1x1 convolution around each discriminator block, the sum scaled by "
                   "1/sqrt(2) (StyleGAN2's residual discriminator)", "dcgan", {"d_residual": True}),
    "g-deep": ("a 3x3 convolution after each generator upsampling but the last (g_depth 2, the default)", "dcgan",
               {"g_depth": 2}),
    "g-depth-3": ("two 3x3 convolutions after each generator upsampling but the last (g_depth 3)", "dcgan",
                  {"g_depth": 3}),
    "g-residual": ("g_depth 2 with each 3x3 convolution residual: relu(x + bn(conv(x))) (He et al. 2016)", "dcgan",
                   {"g_residual": True}),
    "attention-16": ("a self-attention layer (SAGAN, Zhang et al. 2019) at 16 px in both networks", "dcgan",
                     {"attention": 16}),
    "mbstd-0": ("no minibatch-stddev layer in the discriminator (ProGAN's, group 4 by default): mbstd_group 0",
                "dcgan", {"mbstd_group": 0}),
    "mbstd-8": ("minibatch-stddev over groups of 8 instead of 4 (a steadier statistic of the batch's variety, "
                "no arithmetic)", "dcgan", {"mbstd_group": 8}),
    "mbstd-16": ("minibatch-stddev over the whole batch of 16 (groups of 16)", "dcgan", {"mbstd_group": 16}),
    "d-deep": ("a 3x3 convolution after each discriminator downsampling but the last (d_depth 2)", "dcgan",
               {"d_depth": 2}),
    "g-out-16": ("the last upsampling to 16 channels (batch norm, ReLU), then a 3x3 convolution to RGB", "dcgan",
                 {"g_out_width": 16}),
    "g-deep-blur": ("g_depth 2 with blurred transposed convolutions", "dcgan", {"g_depth": 2, "upsample": "blur"}),
    "xla": ("the baseline compiled with XLA (jit_compile): more steps in the same minutes", "dcgan",
            {"jit_compile": True}),
    "bfloat16": ("mixed bfloat16 arithmetic (precision bfloat16): ~1.3x the steps on a CPU with AVX512_BF16",
                 "dcgan", {"precision": "bfloat16"}),
    "float32": ("float32 arithmetic (the default before bfloat16 where the CPU has it)", "dcgan",
                {"precision": "float32"}),
    "diffaugment": ("DiffAugment color,translation,cutout (Zhao et al. 2020)", "dcgan",
                    {"diffaugment": "color,translation,cutout"}),
    "top-k": ("top-k training (Sinha et al. 2020): G learns from the half of each batch's fakes D scores highest, "
              "k decayed from the whole batch by 0.8 per epoch (paper: 0.99 over hundreds of epochs)", "dcgan",
              {"top_k": 0.5, "top_k_decay": 0.8}),
    "smooth-0.1": ("one-sided label smoothing: D's target for real faces 0.9 (Salimans et al. 2016, ganhacks)",
                   "dcgan", {"label_smoothing": 0.1}),
    "lecam-0.3": ("the LeCam regulariser (Tseng et al. 2021), weight 0.3 (the paper's for BigGAN on CIFAR-10), anchors "
                  "decayed by 0.99: D's logits held toward moving averages of each other's", "dcgan", {"lecam": 0.3}),
    "lecam-0.1": ("the LeCam regulariser, weight 0.1", "dcgan", {"lecam": 0.1}),
    "acgan": ("ACGAN classifier heads", "acgan", {}),
    "hinge": ("hinge loss, spectrally normalised D (SNGAN)", "hinge", {}),
    "wgan-gp": ("WGAN-GP, 5 critic steps, Adam(1e-4, 0, 0.9)", "wgan-gp", {}),
}
HELDOUT_SEED = 1   # the training faces are rendered with seed 0 (gan_anime.data.FACES_SEED)


def copy_checkpoint(path: str, folder: str) -> str:
    """A copy of checkpoint ``path`` (its .index and data files) in ``folder``, out of reach of the run's own
    rotation; returns the copy's path."""
    os.makedirs(folder, exist_ok=True)
    for f in glob.glob(glob.escape(path) + ".*"):
        shutil.copy2(f, folder)
    return os.path.join(folder, os.path.basename(path))


def heldout_faces(count: int, size: int, cache_dir=None):
    """``count`` built-in faces rendered with HELDOUT_SEED (never trained on), tagged, as an ImageSet."""
    from gan_anime.data import faces
    from gan_anime.data.folder import load_folder
    root = faces.ensure_faces(count, seed=HELDOUT_SEED, size=size, cache_dir=cache_dir)
    return load_folder(root, size, os.path.join(root, "tags.csv"), hair_classes=tuple(faces.HAIR_COLORS),
                       eye_classes=tuple(faces.EYE_COLORS), cache_dir=cache_dir)


def settings_of(spec: dict) -> dict:
    """What makes two sweeps' numbers comparable: budget, moments, samples, reference, seed, base."""
    return {k: spec.get(k) for k in ("minutes", "points", "at", "samples", "heldout", "seed", "base")}


def keep_moments(minutes: float, points: int, at=None) -> list:
    """Minutes of training at which a checkpoint is kept before the end: ``at`` (ascending, below
    ``minutes``), else ``points - 1`` evenly spaced ones."""
    if at:
        return sorted(float(m) for m in at)
    return [minutes * k / points for k in range(1, points)]


def run_dir_of(spec: dict) -> str:
    """The folder of a configuration's run (its checkpoints, logs and kept sweep points)."""
    return os.path.join(spec["out"], spec["name"])


class Interrupted(Exception):
    """A configuration's training was stopped by a signal before its budget ran out."""


def run_one(spec: dict) -> dict:
    """Train one configuration for its budget in this process, then evaluate its kept checkpoints."""
    import gan_anime
    from gan_anime.config import Config
    from gan_anime.metrics.evaluate import evaluate
    from gan_anime.training.hooks import Hook

    moments = keep_moments(spec["minutes"], spec["points"], spec.get("at"))

    class EveryFraction(Hook):
        """A checkpoint at each of ``moments`` (minutes of training, the loop's clock)."""

        def begin(self, run):
            self.trainer, self.start, self.kept = run.trainer, time.time(), []

        def step_end(self, event):
            elapsed = (time.time() - self.start) / 60.0
            if len(self.kept) < len(moments) and elapsed >= moments[len(self.kept)]:
                self.kept.append({"minutes": elapsed, "step": event.step, "checkpoint": keep(self.trainer.save())})

    def keep(path: str) -> str:
        return copy_checkpoint(path, os.path.join(run_dir_of(spec), "sweep_points"))

    _, gan, fields = CONFIGS[spec["name"]]
    cfg = Config.for_gan(gan, **{**BASE, **spec["base"], **fields}, epochs=100000, max_minutes=spec["minutes"],
                         checkpoint_every=0,
                         run_dir=run_dir_of(spec),
                         seed=spec["seed"], cache_dir=spec["cache_dir"])
    hook = EveryFraction()
    result = gan_anime.train(cfg, hooks=[hook], progress="lines")
    if result.status == "interrupted":   # a budget cut short is not the configuration's result
        raise Interrupted(f"{spec['name']}: stopped by {result.signal} after {result.seconds / 60:.1f} of its "
                          f"{spec['minutes']:g} minutes, so not measured (running the sweep again starts it over)")
    kept = hook.kept + [{"minutes": result.seconds / 60.0, "step": result.step, "checkpoint": result.checkpoint}]
    data = heldout_faces(spec["heldout"], cfg.image_size, spec["cache_dir"]) if spec["heldout"] else None
    curve = []
    for point in kept:
        m = evaluate(cfg.run_dir, num_samples=spec["samples"], data=data, checkpoint=point["checkpoint"],
                     cache_dir=spec["cache_dir"], log=False)
        tags = m.get("tags") or {}
        curve.append({"minutes": round(point["minutes"], 2), "step": point["step"], "fid": m["fid"], "kid": m["kid"],
                      "precision": m.get("precision"), "recall": m.get("recall"),
                      "hair": (tags.get("hair") or {}).get("accuracy"), "eye": (tags.get("eye") or {}).get("accuracy")})
    return {"name": spec["name"], "what": CONFIGS[spec["name"]][0], "gan": gan, "fields": fields,
            "settings": settings_of(spec),
            "images_per_s": round(result.images_per_s, 1), "curve": curve, **curve[-1]}


def _fmt(value, digits=1):
    return "" if value is None else f"{value:.{digits}f}"


def write_reports(out: str, results: list) -> list:
    """table.md, table.csv and fid_vs_minutes.png from the results; returns their paths."""
    from gan_anime.files import write_text
    rows = sorted(results, key=lambda r: r["fid"])
    lines = ["| config | what | images/s | steps | minutes | FID | KID | precision | recall | hair | eye |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        pct = lambda v: "" if v is None else f"{100 * v:.1f}%"   # noqa: E731
        lines.append(f"| `{r['name']}` | {r['what']} | {r['images_per_s']:.0f} | {r['step']:,} | {_fmt(r['minutes'])} | {_fmt(r['fid'])} | "
                     f"{_fmt(r['kid'], 4)} | {_fmt(r.get('precision'), 3)} | {_fmt(r.get('recall'), 3)} | "
                     f"{pct(r['hair'])} | {pct(r['eye'])} |")
    paths = [write_text(os.path.join(out, "table.md"), "\n".join(lines) + "\n")]
    csv_path = os.path.join(out, "table.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["config", "gan", "steps", "minutes", "fid", "kid", "precision", "recall", "hair", "eye",
                         "images_per_s"])
        for r in rows:
            writer.writerow([r["name"], r["gan"], r["step"], r["minutes"], r["fid"], r["kid"], r.get("precision"),
                             r.get("recall"), r["hair"], r["eye"], r["images_per_s"]])
    paths.append(csv_path)
    png = plot_curves(rows, os.path.join(out, "fid_vs_minutes.png"))
    return paths + [png]


def plot_curves(results: list, png: str, title: str = "FID against training time") -> str:
    """One line per result (its ``name`` and ``curve`` of {minutes, fid}) into ``png``; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in results:
        ax.plot([p["minutes"] for p in r["curve"]], [p["fid"] for p in r["curve"]], marker="o", label=r["name"])
    ax.set_xlabel("minutes of training")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(png)
    return png


def read_results(path: str) -> list:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per configuration (10)")
    p.add_argument("--points", type=int, default=4, help="FID measurements per configuration, evenly in time (4)")
    p.add_argument("--at", default="", help="comma-separated minutes at which to measure before the end, "
                   "e.g. 10,20 (replaces --points)")
    p.add_argument("--samples", type=int, default=2000, help="generated faces per FID (2000)")
    p.add_argument("--heldout", type=int, default=2000, help="held-out real faces to measure against (2000; "
                   "0: the training images)")
    p.add_argument("--only", default="", help="comma-separated configuration names (default: all)")
    p.add_argument("--out", default="runs/sweep", help="output folder (runs/sweep)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="faces and features cache (default: gan_anime's)")
    p.add_argument("--base", default="{}", help="JSON of Config fields that replace the S sizes for every "
                   "configuration, e.g. '{\"image_size\": 32, \"faces_count\": 2000}'")
    p.add_argument("--list", action="store_true", help="list the configurations and exit")
    p.add_argument("--run-one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.run_one:
        try:
            print(json.dumps(run_one(json.loads(args.run_one))), flush=True)
        except Interrupted as e:
            print(e, file=sys.stderr, flush=True)
            return 1
        return 0
    if args.list:
        for name, (what, gan, fields) in CONFIGS.items():
            print(f"{name:<14} {gan:<8} {what}  {json.dumps(fields) if fields else ''}")
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {', '.join(unknown)}; expected some of {', '.join(CONFIGS)}")
    if args.minutes <= 0 or args.points < 1 or args.samples < 2 or args.heldout < 0:
        p.error("--minutes must be > 0, --points >= 1, --samples >= 2 and --heldout >= 0")
    try:
        at = [float(m) for m in args.at.split(",") if m.strip()]
    except ValueError:
        p.error(f"--at: expected comma-separated minutes, e.g. 10,20; got {args.at!r}")
    if any(not 0 < m < args.minutes for m in at) or at != sorted(set(at)):
        p.error(f"--at: expected ascending minutes between 0 and --minutes ({args.minutes:g}), got {args.at!r}")
    try:
        base = json.loads(args.base)
    except json.JSONDecodeError as e:
        p.error(f"--base: expected a JSON object of Config fields ({e})")
    if not isinstance(base, dict):
        p.error("--base: expected a JSON object of Config fields")
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, "results.jsonl")
    settings = settings_of(dict(base=base, minutes=args.minutes, points=args.points, at=at, samples=args.samples,
                                heldout=args.heldout, seed=args.seed))
    earlier = read_results(results_path)
    other = [r["name"] for r in earlier if r.get("settings", settings) != settings]
    if other:
        p.error(f"{results_path} holds results measured with other settings ({', '.join(other)}); "
                f"use another --out")
    done = {r["name"] for r in earlier}
    for name in names:
        if name in done:
            print(f"{name}: already in {results_path}, skipped", flush=True)
            continue
        spec = dict(name=name, base=base, minutes=args.minutes, points=args.points, at=at, samples=args.samples,
                    heldout=args.heldout, out=os.path.abspath(args.out), seed=args.seed, cache_dir=args.cache_dir)
        run_dir = run_dir_of(spec)
        if os.path.exists(run_dir):   # resuming it would train past the budget
            print(f"{name}: {run_dir} holds an unfinished run (stopped or failed); it is started over", flush=True)
            shutil.rmtree(run_dir)
        start = time.time()
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--run-one", json.dumps(spec)],
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"{name}: failed (exit {proc.returncode}); see its output above", file=sys.stderr, flush=True)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        with open(results_path, "a") as f:
            f.write(json.dumps(result) + "\n")
        print(f"{name}: FID {result['fid']:.1f} KID {result['kid']:.4f} after {result['step']} steps "
              f"({time.time() - start:.0f} s with evaluation)", flush=True)
    results = read_results(results_path)
    if results:
        for path in write_reports(args.out, results):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
