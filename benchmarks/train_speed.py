"""gan_anime's trainer against the plain TensorFlow loop, in one run, as JSON lines.

    python benchmarks/train_speed.py [--gan dcgan] [--image-size 64] [--width 32] [--batch-size 16]
                                     [--steps 48] [--precision float32 bfloat16] [--extras] [--xla]
                                     [--readback-every K] [--profile] [--repeat N] [--no-reference]
                                     [--out results.jsonl]

Prints (and with ``--out`` also writes) one JSON line per measurement:

* ``ENTRY --benchmark`` (:func:`gan_anime.benchmark.benchmark`) of the real trainer, once per
  ``--precision``; with ``--xla`` also compiled with XLA; with ``--readback-every K`` also reading the
  losses back every K steps; with ``--extras`` also the default (precision auto) with each of its
  extras turned off in turn (EMA, lazy R1, minibatch-stddev, all three);
* the plain tutorial loop (``benchmarks/reference_loop.py``) on the same networks and batch, with
  TensorFlow's defaults for this CPU, with oneDNN on and with oneDNN off, and on the tutorial's own
  networks, each in a process of its own;
* with ``--profile``: the share of TensorFlow op time by op type in the default step (TensorFlow's
  profiler), where the time goes;
* a last line ``{"summary": ...}``: each setting's median images/s over the ``--repeat`` rounds
  (every round runs every setting, so a drift of the machine's speed hits them alike) and each
  trainer median divided by each reference median.

Every ratio comes from one invocation on one machine.  Not a test: the numbers depend on the machine
(name the CPU when you quote them; the JSON has it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Extras of the default trainer and the Config change that turns each off.
EXTRAS = {"ema": {"ema_decay": 0.0}, "r1": {"r1_gamma": 0.0}, "mbstd": {"mbstd_group": 0},
          "all": {"ema_decay": 0.0, "r1_gamma": 0.0, "mbstd_group": 0}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gan", default="dcgan")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=48)
    p.add_argument("--precision", nargs="+", default=["float32"], choices=("float32", "bfloat16"))
    p.add_argument("--extras", action="store_true", help="also price EMA, R1 and minibatch-stddev")
    p.add_argument("--xla", action="store_true", help="also the float32 trainer compiled with XLA")
    p.add_argument("--readback-every", type=int, default=0, help="also the trainer reading losses back every K steps")
    p.add_argument("--profile", action="store_true", help="also where the default step's op time goes (op types)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of every measurement, interleaved; the summary "
                   "takes each one's median (a shared VM's speed drifts by tens of percent within minutes)")
    p.add_argument("--no-reference", action="store_true", help="only the trainer")
    p.add_argument("--references", default="gan_anime:default,gan_anime:on,gan_anime:off,tutorial:default",
                   help="the plain loops to run, ARCH:ONEDNN comma-separated (ARCH gan_anime|tutorial, "
                        "ONEDNN default|on|off)")
    p.add_argument("--out", help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.steps < 1:
        p.error("--repeat and --steps must be >= 1")
    if not args.no_reference and args.gan != "dcgan":
        p.error("the reference loop is DCGAN's; use --no-reference with another --gan")
    import reference_loop

    def emit(record):
        print(json.dumps(record), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(record) + "\n")

    size = dict(image_size=args.image_size, width=args.width, batch=args.batch_size, steps=args.steps)
    references = [] if args.no_reference else [tuple(r.split(":")) for r in args.references.split(",") if r]
    for ref in references:
        if len(ref) != 2 or ref[0] not in ("gan_anime", "tutorial") or ref[1] not in reference_loop.ONEDNN:
            p.error(f"--references: expected ARCH:ONEDNN items (gan_anime|tutorial : default|on|off), got "
                    f"{':'.join(ref)!r}")
    settings = [(precision, {"precision": precision}) for precision in args.precision]
    if args.xla:
        settings.append(("float32+xla", {"jit_compile": True, "precision": "float32"}))
    if args.readback_every > 1:
        settings.append((f"readback-{args.readback_every}", {"readback_every": args.readback_every}))
    if args.extras:   # on top of the default precision (auto)
        settings += [(f"no-{name}", fields) for name, fields in EXTRAS.items()]

    from gan_anime.benchmark import benchmark
    rates, first, lines = {}, {}, []
    for round_ in range(args.repeat):
        # Each reference in a process of its own (TF_ENABLE_ONEDNN_OPTS is read when TensorFlow is imported).
        for arch, onednn in references:
            record = {"round": round_, **reference_loop.run(arch, onednn=onednn, **size)}
            emit(record)
            rates.setdefault(f"plain loop, {arch} networks, oneDNN {onednn}", []).append(record["train_images_per_s"])
        for i, (name, fields) in enumerate(settings):
            record = {"round": round_, "setting": name,
                      **benchmark(args.gan, args.image_size, args.width, args.batch_size, steps=args.steps,
                                  matmul=i == 0, **fields)}
            emit(record)
            lines.append(record)
            rates.setdefault(f"trainer {name}", []).append(record["train_images_per_s"])
            first.setdefault(name, record)

    if args.profile:
        from gan_anime.benchmark import profile
        emit({"profile": "share of op time by op type", **profile(args.gan, args.image_size, args.width,
                                                                     args.batch_size, steps=args.steps)})

    medians = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    trainers = [k for k in medians if k.startswith("trainer")]
    plains = [k for k in medians if k.startswith("plain")]
    record = next(iter(first.values()), {})
    matmul = [r["matmul_gflops"] for r in lines if "matmul_gflops" in r]
    emit({"summary": f"median images/s of {args.repeat} interleaved round(s), and trainer / plain loop",
          "images_per_s": medians,
          "ratios": {f"{t} / {r}": round(medians[t] / medians[r], 2) for t in trainers for r in plains},
          "matmul_gflops": max(matmul, default=None), "matmul_gflops_rounds": matmul, "cpu": record.get("cpu")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
