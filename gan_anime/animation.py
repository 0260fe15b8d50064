"""Moving pictures of a run: ``progress.gif`` (its epoch grids in order) and interpolation videos.

Every file is written atomically: a temporary file in the same folder replaces the target, so a
viewer (or a process killed mid-write) never sees half a GIF.  MP4s are encoded by the ffmpeg
binary that the ``imageio-ffmpeg`` wheel ships, so no system ffmpeg is needed.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from gan_anime.files import atomic_write

#: How long each epoch's grid is shown in progress.gif, and the last one (ms).
PROGRESS_FRAME_MS, PROGRESS_LAST_MS = 400, 2000
#: progress.gif shows at most this many epochs (evenly spread, first and last included): rebuilding it
#: after every epoch then costs the same in a 1,000-epoch run as in a 100-epoch one.
MAX_PROGRESS_FRAMES = 100
#: Interpolation videos are enlarged (nearest neighbour) to at least this side: a 64 px video
#: is a postage stamp in most players.
VIDEO_MIN_SIDE = 256

_EPOCH_GRID = re.compile(r"epoch_(\d+)\.png$")


def _frames(frames) -> np.ndarray:
    out = np.asarray(frames)
    if out.ndim != 4 or out.shape[-1] != 3 or out.dtype != np.uint8 or len(out) == 0:
        raise ValueError(f"expected uint8 frames [N, H, W, 3] with N >= 1, got {out.dtype} {out.shape}")
    return out


def write_gif(frames, path: str, duration_ms: Union[float, Sequence[float]] = 40.0) -> str:
    """uint8 [N, H, W, 3] -> a looping GIF at ``path``; ``duration_ms`` per frame (one, or one per frame).

    GIF delays are whole hundredths of a second.  Each frame gets its own 256-colour palette by
    Pillow's fast octree: as close to the image as median cut (measured on a 530 px grid of
    faces: RMS error 9.3 vs 9.4) and ~150x faster (2 ms vs 0.3 s a frame), which keeps rebuilding
    progress.gif after every epoch cheap.  Pillow merges consecutive identical frames into one.
    """
    from PIL import Image
    frames = _frames(frames)
    durations = [float(duration_ms)] * len(frames) if np.isscalar(duration_ms) else [float(d) for d in duration_ms]
    if len(durations) != len(frames):
        raise ValueError(f"got {len(durations)} durations for {len(frames)} frames")
    images = [Image.fromarray(f).quantize(256, method=Image.Quantize.FASTOCTREE) for f in frames]
    # Pillow takes a list of durations only for several frames.
    duration = durations if len(images) > 1 else durations[0]
    return atomic_write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True,
                                                          append_images=images[1:], duration=duration, loop=0))


def write_mp4(frames, path: str, fps: float = 24.0) -> str:
    """uint8 [N, H, W, 3] -> an H.264 MP4 (yuv420p, which every player reads) at ``path``.

    Sides that are not multiples of 16 are padded up by ffmpeg's macro blocks (imageio warns).
    """
    import imageio.v3 as iio
    frames = _frames(frames)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return atomic_write(path, lambda tmp: iio.imwrite(tmp, frames, plugin="FFMPEG", fps=fps, codec="libx264",
                                                       pixelformat="yuv420p"))


def upscale(frames, min_side: int = VIDEO_MIN_SIDE) -> np.ndarray:
    """uint8 [N, H, W, 3] enlarged by the smallest whole factor that makes both sides >= ``min_side``
    (nearest neighbour: pixels stay sharp squares, nothing is invented)."""
    frames = _frames(frames)
    factor = max(1, -(-min_side // min(frames.shape[1:3])))
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def write_interpolation(frames, out_dir: str, fps: float = 24.0, name: str = "interpolation",
                        min_side: int = VIDEO_MIN_SIDE) -> Tuple[str, str]:
    """uint8 [N, H, W, 3] -> ``out_dir/<name>.mp4`` and ``out_dir/<name>.gif`` (enlarged to ``min_side``).

    Returns (mp4 path, gif path).
    """
    big = upscale(frames, min_side)
    mp4 = write_mp4(big, os.path.join(out_dir, f"{name}.mp4"), fps)
    gif = write_gif(big, os.path.join(out_dir, f"{name}.gif"), 1000.0 / fps)
    return mp4, gif


def epoch_grids(run_dir: str) -> List[str]:
    """``samples/epoch_NNNN.png`` of a run, in epoch order (by number: 10000 comes after 9999)."""
    folder = os.path.join(run_dir, "samples")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    found = [(int(m.group(1)), n) for n, m in ((n, _EPOCH_GRID.fullmatch(n)) for n in names) if m]
    return [os.path.join(folder, n) for _, n in sorted(found)]


def write_progress_gif(run_dir: str, out: Optional[str] = None) -> Optional[str]:
    """``<run_dir>/progress.gif`` (or ``out``): the fixed-noise grid of every epoch so far, in order
    (at most ``MAX_PROGRESS_FRAMES`` of them, evenly spread), the last one held longer.  Returns the path, or None when the run has no epoch grid yet."""
    from PIL import Image
    paths = epoch_grids(run_dir)
    if not paths:
        return None
    if len(paths) > MAX_PROGRESS_FRAMES:
        keep = np.unique(np.linspace(0, len(paths) - 1, MAX_PROGRESS_FRAMES).round().astype(int))
        paths = [paths[i] for i in keep]
    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(np.asarray(im.convert("RGB")))
    if len({f.shape for f in frames}) > 1:
        raise ValueError(f"the epoch grids in {os.path.join(run_dir, 'samples')} differ in size; "
                         f"expected one grid size per run")
    durations = [PROGRESS_FRAME_MS] * (len(frames) - 1) + [PROGRESS_LAST_MS]
    return write_gif(np.stack(frames), out or os.path.join(run_dir, "progress.gif"), durations)
