"""TRAIN presets as data: each preset is a list of ``ENTRY`` flags (``ENTRY`` = ``python -m gan_anime``).

A TRAIN command line is at most one base preset (``S,k``, ``M,k``, ``L,k``, or the variants
``AC,k`` (acgan), ``WG,k`` (wgan-gp), ``HG,k`` (hinge); default ``S,1``)
followed by parts that replace one setting each::

    D,E,k | D,C,k | D,P,k   exponential / piecewise-constant / polynomial decay, strength k
    LR,k                    a fixed learning rate
    E,k                     epochs
    N,k                     noise vector size
    B,k                     batch size

S, AC, WG and HG presets fit a 2-core CPU on the built-in faces; M and L are meant for a GPU.

This file imports nothing from ``gan_anime`` so scripts/train.sh can run it by path, fast
(``python gan_anime/cli/presets.py args S,1 E,2``), without loading TensorFlow.
"""

from __future__ import annotations

import sys
from typing import Dict, List, Sequence, Tuple

ENTRY = "ENTRY"
#: Every TRAIN run ends by generating this many faces (the path is printed).
GENERATE_AFTER = 64
LEVELS = (1, 2, 3)

Flags = List[Tuple[str, Tuple[str, ...]]]   # [(flag, values)] in order; a later part replaces a flag


def _f(*pairs) -> Flags:
    out: Flags = []
    for flag, values in pairs:
        out.append((flag, tuple(str(v) for v in (values if isinstance(values, (list, tuple)) else [values]))))
    return out


def _merge(flags: Flags, more: Flags) -> Flags:
    """``flags`` with each flag of ``more`` replaced in place (or appended when new)."""
    out = list(flags)
    for flag, values in more:
        at = next((i for i, (f, _) in enumerate(out) if f == flag), None)
        if at is None:
            out.append((flag, values))
        else:
            out[at] = (flag, values)
    return out


# Base presets: (description, flags shared by the levels, epochs per level).
# S was chosen by measurement (README, "Quality at a CPU budget"): batch 16 beat 32 at the same minutes
# (twice the steps at the same images/s), and a generator with a 3x3 convolution after each upsampling
# (--g-depth 2) beat DCGAN's one convolution per resolution (FID 78 against 101 after 10 minutes) though it
# makes 13% fewer steps; its levels are sized to fit 10, 20 and 45 minutes with ~30 s to start on the faster
# of the 2-core AVX-512 EPYCs measured, in the bfloat16 that precision "auto" picks there (625 steps of 16
# images an epoch, ~43 s with its checkpoint and grid; S,3 = 40.1 min), with some room for the slower one.
_S = _f(("--image-size", 64), ("--width", 32), ("--g-depth", 2), ("--batch-size", 16), ("--noise-vector", 100),
        ("--faces-count", 10000))
# The variants' presets keep the sizes and the float32 they were measured with (batch 32; README, GAN variants).
_S32 = _merge(_S, _f(("--batch-size", 32), ("--precision", "float32")))
_M = _f(("--image-size", 64), ("--width", 64), ("--batch-size", 64), ("--noise-vector", 100),
        ("--faces-count", 30000))
_L = _f(("--image-size", 128), ("--width", 64), ("--batch-size", 64), ("--noise-vector", 100),
        ("--faces-count", 30000))
BASES: Dict[str, Tuple[str, Flags, Tuple[int, int, int]]] = {
    "S": ("small, 2-core CPU: 64 px, width 32, generator depth 2, batch 16, 10k faces", _S, (13, 26, 56)),
    "M": ("medium, GPU: 64 px, width 64, batch 64, 30k faces", _M, (20, 40, 80)),
    "L": ("large, GPU: 128 px, width 64, batch 64, 30k faces", _L, (30, 60, 120)),
    # Other GAN variants, for a 2-core CPU, at the sizes they were measured with (README, GAN variants).
    "AC": ("acgan (hair/eye classifier heads), 2-core CPU: 64 px, width 32, batch 32, 10k faces",
           _S32 + _f(("--gan", "acgan")), (6, 16, 32)),
    "WG": ("wgan-gp (5 critic updates per step), 2-core CPU: 64 px, width 32, batch 32, 10k faces",
           _S32 + _f(("--gan", "wgan-gp")), (6, 16, 32)),
    "HG": ("hinge + spectral norm, 2-core CPU: 64 px, width 32, batch 32, 10k faces",
           _S32 + _f(("--gan", "hinge")), (6, 16, 32)),
}
#: What a preset gave when it was measured (shown by TRAIN -h; README, "Quality at a CPU budget").
EXPECTED: Dict[str, str] = {
    "S,1": "expected FID ~83 (9.0 min of training on a 2-core AVX-512 EPYC, in bfloat16)",
    "S,2": "expected FID ~66 (18.2 min)",
    "S,3": "expected FID ~57 (40.1 min)",
}

# Parts: name -> (description, {level: flags}).  One part per setting; D,* and LR all set the learning rate.
# Decay steps count optimizer steps: an epoch of 10k faces at batch 16 is 625 steps (S,1: 8,750, S,2: 18,750,
# S,3: 42,500); the strengths below bite within S,1's first epochs.
PARTS: Dict[str, Tuple[str, Dict[int, Flags]]] = {
    "D,E": ("exponential decay (initial_lr decay_steps base)", {
        1: _f(("--exponential-decay", (2e-4, 2000, 0.9))),
        2: _f(("--exponential-decay", (2e-4, 2000, 0.7))),
        3: _f(("--exponential-decay", (2e-4, 1000, 0.5))),
    }),
    "D,C": ("piecewise-constant decay (boundaries / values)", {
        1: _f(("--constant-decay", 1), ("--constant-decay-boundaries", (2000,)),
              ("--constant-decay-values", (2e-4, 1e-4))),
        2: _f(("--constant-decay", 1), ("--constant-decay-boundaries", (1500, 3000)),
              ("--constant-decay-values", (2e-4, 1e-4, 5e-5))),
        3: _f(("--constant-decay", 1), ("--constant-decay-boundaries", (1000, 2000, 3000)),
              ("--constant-decay-values", (2e-4, 1e-4, 5e-5, 2.5e-5))),
    }),
    "D,P": ("polynomial decay (initial_lr decay_steps end_lr power)", {
        1: _f(("--polynomial-decay", (2e-4, 5000, 1e-4, 1))),
        2: _f(("--polynomial-decay", (2e-4, 5000, 5e-5, 1))),
        3: _f(("--polynomial-decay", (2e-4, 5000, 1e-5, 2))),
    }),
    "LR": ("fixed learning rate for both networks", {
        1: _f(("--learning-rate", 1e-4)), 2: _f(("--learning-rate", 2e-4)), 3: _f(("--learning-rate", 4e-4)),
    }),
    "E": ("epochs", {1: _f(("--epochs", 6)), 2: _f(("--epochs", 16)), 3: _f(("--epochs", 32))}),
    "N": ("noise vector size", {1: _f(("--noise-vector", 64)), 2: _f(("--noise-vector", 100)),
                                3: _f(("--noise-vector", 128))}),
    "B": ("batch size", {1: _f(("--batch-size", 16)), 2: _f(("--batch-size", 32)), 3: _f(("--batch-size", 64))}),
}
_SLOTS = {"lr": "learning rate (D,* or LR,*)", "E": "epochs (E,*)", "N": "noise size (N,*)",
          "B": "batch size (B,*)"}


class PresetError(ValueError):
    """A wrong TRAIN argument; ``str(error)`` is one line."""


def _split(token: str) -> Tuple[str, int]:
    name, _, level = token.rpartition(",")
    if not name or (name not in BASES and name not in PARTS):
        raise PresetError(f"unknown preset {token!r}: expected S,k  M,k  L,k  AC,k  WG,k  HG,k  D,E,k  D,C,k  "
                          f"D,P,k  LR,k  E,k  N,k  B,k with k in 1..3")
    if level not in {str(k) for k in LEVELS}:
        raise PresetError(f"preset {token!r}: level must be 1, 2 or 3, got {level!r}")
    return name, int(level)


def resolve(tokens: Sequence[str]) -> Flags:
    """Presets -> ENTRY flags ``[(flag, values)]``, starting with ``--train``; raises PresetError."""
    if not tokens:
        raise PresetError("expected a preset, e.g. S,1 (see TRAIN -h)")
    base, parts, seen = None, [], {}
    for i, token in enumerate(tokens):
        name, level = _split(token)
        if name in BASES:
            if i != 0:
                raise PresetError(f"base preset {token!r} must come first (and only once)")
            base = (name, level)
            continue
        slot = "lr" if name.startswith("D,") or name == "LR" else name
        if slot in seen:
            raise PresetError(f"{token!r}: the {_SLOTS[slot]} is already set by {seen[slot]!r}; give it once")
        seen[slot] = token
        parts.append((name, level))
    name, level = base or ("S", 1)
    flags = _f(("--train", ())) + BASES[name][1] + _f(("--epochs", BASES[name][2][level - 1]))
    for part, lvl in parts:
        flags = _merge(flags, PARTS[part][1][lvl])
    return _merge(flags, _f(("--generate-after", GENERATE_AFTER)))


def args(tokens: Sequence[str], folder: bool = False) -> List[str]:
    """Presets -> the ENTRY argument list.  ``folder``: the user trains on their own ``--data-dir``, where the
    presets' count of built-in faces does not apply (and ENTRY refuses it)."""
    return [item for flag, values in resolve(tokens) if not (folder and flag == "--faces-count")
            for item in (flag, *values)]


def command(tokens: Sequence[str]) -> str:
    return " ".join([ENTRY] + args(tokens))


def all_presets() -> List[Tuple[str, str]]:
    """(preset, description) for every base preset and part, in table order."""
    rows = []
    for name, (desc, _, epochs) in BASES.items():
        rows += [(f"{name},{k}", f"{desc}, {epochs[k - 1]} epochs"
                  + (f"; {EXPECTED[f'{name},{k}']}" if f"{name},{k}" in EXPECTED else "")) for k in LEVELS]
    for name, (desc, levels) in PARTS.items():
        for k in LEVELS:
            shown = [" ".join(v) for f, v in levels[k] if f != "--constant-decay"]
            rows.append((f"{name},{k}", f"{desc}: {' / '.join(shown)}"))
    return rows


def table(markdown: bool = False) -> str:
    rows = [(p, d, command([p])) for p, d in all_presets()]
    if markdown:
        lines = ["| preset | what | ENTRY command it runs |", "| --- | --- | --- |"]
        lines += [f"| `{p}` | {d} | `{c}` |" for p, d, c in rows]
        return "\n".join(lines)
    lines = []
    for p, d, c in rows:
        lines += [f"  {p:<8} {d}", f"           {c}"]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """``presets.py args [--folder] TOKEN...`` (one ENTRY argument per line) | ``table`` | ``markdown``."""
    if len(argv) >= 1 and argv[0] == "args":
        folder = argv[1:2] == ["--folder"]
        try:
            print("\n".join(args(argv[1 + folder:], folder=folder)))
        except PresetError as e:
            sys.stderr.write(f"TRAIN: error: {e}\n")
            return 2
        return 0
    if argv == ["table"] or argv == ["markdown"]:
        print(table(markdown=argv[0] == "markdown"))
        return 0
    sys.stderr.write("usage: presets.py args [--folder] PRESET... | table | markdown\n")
    return 2


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # `presets.py table | head` ends quietly
    sys.exit(main(sys.argv[1:]))
