"""Render a folder of cartoon busts in another style than the built-in faces: "a user's own folder".

    .venv/bin/python benchmarks/make_folder.py --out runs/otherstyle --count 3000 --seed 0 [--broken 20] [--workers 2]

The built-in dataset draws DiceBear's *lorelei* style; this one draws DiceBear's **open-peeps** style
("Open Peeps" by Pablo Stanley, https://www.openpeeps.com/, licensed CC0 1.0 as the
``dicebear-styles`` package's ``open-peeps.json`` metadata states: "Remix of Open Peeps by Pablo
Stanley, licensed under CC0 1.0").  It is a hand-drawn, thick-outlined head-and-shoulders bust in
colour (skin, hair, clothing) on a plain pastel background, with none of lorelei's features.  It is
rendered through ``dicebear-core`` and rasterised with ``resvg-py``, as in ``gan_anime/data/faces.py``.

What the folder holds, like a folder a user would collect:

* ``count`` good images, not square: each is W x H with the height between 72 and 128 px and the
  aspect W/H drawn from 0.75-1.5 (W kept within 64-160).  The square bust is scaled to 0.85-1.15 x
  the longer side, shifted a little and cut off at the bottom; the margins are the background colour.
* about 2/3 PNG (RGB) and 1/3 JPEG (quality 90; extension ``.jpg``, a quarter of them ``.jpeg``),
  spread over the top level and nested subfolders ``album1/``, ``album2/``, ``album2/old/``.
* ``--broken N`` broken files among them, named like the others, cycling through four kinds:
  a zero-byte ``.png``, a truncated JPEG (``.jpg``), a text file named ``.jpg`` and a ``.png`` whose
  valid signature and header are followed by garbage.
* ``README.txt``: what it is (style, author, licence, counts, seed, the broken files by name).

Image ``i`` depends only on ``(seed, i)``: every choice comes from ``np.random.default_rng([seed, i])``
(given the installed ``dicebear-*`` / ``resvg-py`` / Pillow versions, which README.txt records), so
the folder is byte-identical for any number of ``--workers``.  Rendering takes ~8 ms per image on
one core plus ~0.4 s to load the style: 3000 images took 28 s with 2 workers on a 2-core machine
that was busy with another job (~25 s estimated for 1 worker from 200 images in 2.0 s); ~19 MB.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.resources
import io
import json
import multiprocessing
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

STYLE = "open-peeps"
MAX_COUNT = 1_000_000   # file names have six digits
#: Image i goes to subfolder SUBDIRS[i % 4]: the top level, two albums and a nested one.
SUBDIRS = ("", "album1", "album2", os.path.join("album2", "old"))
MIN_H, MAX_H = 72, 128
MIN_W, MAX_W = 64, 160
ASPECT = (0.75, 1.5)
JPEG_FRACTION = 1 / 3
JPEG_QUALITY = 90
#: Plain pastel backgrounds (DiceBear's usual ones and a few more).
BACKGROUNDS = ("#b6e3f4", "#c0aede", "#d1d4f9", "#ffd5dc", "#ffdfbf", "#c7f0d8", "#f4e7b6", "#e0e0e0")
# Optional parts: probability of being drawn (masks hide the face, so they are rare).
_OPTIONAL = {"accessories": 0.20, "facialHair": 0.10, "mask": 0.03}
BROKEN_KINDS = ("empty-png", "truncated-jpeg", "text-as-jpg", "garbage-png")
_BROKEN_EXT = {"empty-png": ".png", "truncated-jpeg": ".jpg", "text-as-jpg": ".jpg", "garbage-png": ".png"}


@functools.lru_cache(maxsize=1)
def _style():
    """(dicebear Style, raw definition); built once per process (~0.4 s)."""
    from dicebear import Style
    definition = json.loads(importlib.resources.files("dicebear_styles").joinpath(f"{STYLE}.json").read_text())
    return Style(definition), definition


def style_meta() -> Dict[str, str]:
    """Author, licence and source of the style, as the package's metadata states them."""
    meta = _style()[1]["meta"]
    return {"style": STYLE, "creator": meta["creator"]["name"], "license": meta["license"]["name"],
            "license_url": meta["license"]["url"], "license_text": meta["license"]["text"],
            "source": meta["source"]["url"]}


def _subdir(index: int) -> str:
    return SUBDIRS[index % len(SUBDIRS)]


def image_plan(index: int, seed: int) -> Tuple[dict, dict]:
    """(DiceBear options, layout) of image ``index``; all from ``np.random.default_rng([seed, index])``."""
    definition = _style()[1]
    rng = np.random.default_rng([seed, index])
    variants = {name: sorted(comp["variants"]) for name, comp in definition["components"].items()}
    colors = {name: c["values"] for name, c in definition["colors"].items()}

    def pick(items: Sequence[str]) -> str:
        return items[int(rng.integers(len(items)))]

    opts = {
        "seed": f"otherstyle-{seed}-{index}",
        "headVariant": pick(variants["head"]), "expressionVariant": pick(variants["expression"]),
        "skinColor": [pick(colors["skin"])], "headContrastColor": [pick(colors["headContrast"])],
        "clothingColor": [pick(colors["clothing"])], "backgroundColor": [pick(BACKGROUNDS)],
    }
    for part, p in _OPTIONAL.items():
        opts[part + "Probability"] = 100 if rng.random() < p else 0
        opts[part + "Variant"] = pick(variants[part])
    opts["flip"] = "horizontal" if rng.random() < 0.5 else "none"

    h = int(rng.integers(MIN_H, MAX_H + 1))
    w = int(np.clip(round(h * rng.uniform(*ASPECT)), MIN_W, MAX_W))
    side = max(8, int(round(max(w, h) * rng.uniform(0.85, 1.15))))
    x = (w - side) // 2 + int(rng.integers(-max(1, side // 16), max(1, side // 16) + 1))
    y = h - side + int(rng.integers(0, max(1, side // 8) + 1))   # the bust's bottom edge is at or below the frame's
    if rng.random() < JPEG_FRACTION:
        ext = ".jpeg" if rng.random() < 0.25 else ".jpg"
    else:
        ext = ".png"
    layout = {"width": w, "height": h, "side": side, "x": x, "y": y, "ext": ext,
              "background": opts["backgroundColor"][0], "name": os.path.join(_subdir(index), f"{index:06d}{ext}")}
    return opts, layout


def render_image(index: int, seed: int) -> Tuple[str, bytes]:
    """(relative path, encoded file bytes) of good image ``index``."""
    import resvg_py
    from dicebear import Avatar
    opts, lay = image_plan(index, seed)
    svg = Avatar(_style()[0], opts).to_string()
    png = resvg_py.svg_to_bytes(svg_string=svg, width=lay["side"], height=lay["side"], skip_system_fonts=True)
    bust = Image.open(io.BytesIO(bytes(png))).convert("RGB")
    frame = Image.new("RGB", (lay["width"], lay["height"]), lay["background"])
    frame.paste(bust, (lay["x"], lay["y"]))
    buf = io.BytesIO()
    if lay["ext"] == ".png":
        frame.save(buf, format="PNG", compress_level=6)
    else:
        frame.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return lay["name"], buf.getvalue()


def broken_file(k: int, count: int, seed: int) -> Tuple[str, str, bytes]:
    """(relative path, kind, bytes) of broken file ``k``: named like an image (number ``count + k``),
    spread over the subfolders round robin."""
    kind = BROKEN_KINDS[k % len(BROKEN_KINDS)]
    name = os.path.join(_subdir(count + k), f"{count + k:06d}{_BROKEN_EXT[kind]}")
    rng = np.random.default_rng([seed, count + k, 1])
    if kind == "empty-png":
        data = b""
    elif kind == "text-as-jpg":
        data = b"This is not an image: it is a text file saved with a .jpg name.\n" * 3
    else:
        # A real image of the same kind, then damaged.
        img = Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
        buf = io.BytesIO()
        if kind == "truncated-jpeg":
            img.save(buf, format="JPEG", quality=JPEG_QUALITY)
            whole = buf.getvalue()
            data = whole[:len(whole) // 2]          # header and half the scan: cut mid-stream
        else:  # garbage-png: signature + IHDR intact (opens), the rest random bytes (fails to load)
            img.save(buf, format="PNG")
            whole = buf.getvalue()
            data = whole[:33] + rng.integers(0, 256, len(whole) - 33, dtype=np.uint8).tobytes()
    return name, kind, data


def _render_chunk(out: str, seed: int, indices: Sequence[int]) -> List[str]:
    names = []
    for i in indices:
        name, data = render_image(i, seed)
        path = os.path.join(out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        names.append(name)
    return names


def _package_versions() -> Dict[str, str]:
    out = {}
    for pkg in ("dicebear-core", "dicebear-styles", "resvg-py", "pillow", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def make_folder(out: str, count: int, seed: int = 0, broken: int = 20, workers: int = 2) -> dict:
    """Render the folder; returns a summary {good: [names], broken: [(name, kind)], ...}."""
    os.makedirs(out, exist_ok=True)
    chunks = [list(range(s, min(count, s + 50))) for s in range(0, count, 50)]
    good: List[str] = []
    if workers <= 1 or len(chunks) == 1:
        for c in chunks:
            good += _render_chunk(out, seed, c)
    else:
        _style()   # built once here; the forked workers inherit it
        with multiprocessing.get_context("fork").Pool(min(workers, len(chunks))) as pool:
            for names in pool.imap(functools.partial(_render_chunk, out, seed), chunks):
                good += names
    bad = []
    for k in range(broken):
        name, kind, data = broken_file(k, count, seed)
        path = os.path.join(out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        bad.append((name, kind))
    n_png = sum(n.endswith(".png") for n in good)
    summary = {"out": out, "count": count, "seed": seed, "good": good, "broken": bad,
               "png": n_png, "jpeg": len(good) - n_png}
    _write_readme(out, summary)
    return summary


def _write_readme(out: str, s: dict) -> None:
    m = style_meta()
    lines = [
        "A folder of test images for gan_anime's image-folder loader: \"a user's own folder\".",
        "Written by benchmarks/make_folder.py; not the built-in lorelei faces.",
        "",
        f"style:    DiceBear '{m['style']}' by {m['creator']} ({m['source']})",
        f"licence:  {m['license']} ({m['license_url']})",
        f"          {m['license_text']}",
        f"seed:     {s['seed']}",
        f"images:   {s['count']} good ({s['png']} PNG, {s['jpeg']} JPEG quality {JPEG_QUALITY}), "
        f"not square: height {MIN_H}-{MAX_H} px, width {MIN_W}-{MAX_W} px, aspect W/H {ASPECT[0]}-{ASPECT[1]}",
        f"broken:   {len(s['broken'])} file(s) that no decoder reads (named like the images):",
    ]
    lines += [f"          {name}  ({kind})" for name, kind in s["broken"]]
    lines += ["", f"command:  make_folder.py --out {out} --count {s['count']} --seed {s['seed']} "
                  f"--broken {len(s['broken'])}",
              "packages: " + ", ".join(f"{k} {v}" for k, v in _package_versions().items()), ""]
    with open(os.path.join(out, "README.txt"), "w") as f:
        f.write("\n".join(lines))


def _int_at_least(lo: int, hi: Optional[int] = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(
                f"must be >= {lo}" + (f" and <= {hi}" if hi is not None else "") + f", got {value}")
        return value
    return parse


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder to create (must not exist or be empty)")
    p.add_argument("--count", type=_int_at_least(1, MAX_COUNT), default=3000, help="good images (default 3000)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed (default 0)")
    p.add_argument("--broken", type=_int_at_least(0), default=20, help="broken files to add (default 20)")
    p.add_argument("--workers", type=_int_at_least(1), default=2, help="rendering processes (default 2)")
    args = p.parse_args(argv)
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        p.error(f"--out {args.out} already exists and is not an empty folder; remove it or pick another")
    import time
    t0 = time.perf_counter()
    s = make_folder(args.out, args.count, args.seed, args.broken, args.workers)
    dt = time.perf_counter() - t0
    print(f"wrote {s['count']} images ({s['png']} PNG, {s['jpeg']} JPEG) and {len(s['broken'])} broken "
          f"file(s) to {args.out} in {dt:.1f} s ({style_meta()['style']}, {style_meta()['license']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
