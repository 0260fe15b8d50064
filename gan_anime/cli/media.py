"""``gan-anime --media``: write ``media/model_summary.txt`` and ``media/images.png`` from code, not by hand.

model_summary.txt: the layers and parameter counts of the generator and discriminator of the
default config on the built-in faces (conditional on 12 hair and 10 eye colours).
images.png: an 8x8 sheet of the first 64 built-in training faces (face i depends only on i).
"""

from __future__ import annotations

import os
from typing import List

from gan_anime.config import Config


def default_faces_config() -> Config:
    from gan_anime.data import faces
    return Config(conditional=True, num_hair=len(faces.HAIR_COLORS), num_eye=len(faces.EYE_COLORS),
                  hair_classes=tuple(faces.HAIR_COLORS), eye_classes=tuple(faces.EYE_COLORS))


def model_summary(cfg: Config) -> str:
    """Keras summaries of G and D for ``cfg``, after one call builds their variables."""
    import keras
    import numpy as np
    from gan_anime.inference import generator_inputs
    from gan_anime.models import build_models

    keras.utils.set_random_seed(0)
    G, D = build_models(cfg)
    noise, labels = generator_inputs(cfg, 1, 0)   # output shapes below are for a batch of 1
    images = G(noise, labels)
    D(images, labels)
    lines: List[str] = [
        f"gan_anime model summary (written by `python -m gan_anime --media`) for the default config on "
        f"the built-in faces: {cfg.image_size}x{cfg.image_size} px, noise {cfg.noise_dim}, width "
        f"{cfg.g_width}, generator depth {cfg.g_depth} ({cfg.upsample} upsampling), discriminator depth "
        f"{cfg.d_depth}, conditional on {cfg.num_hair} hair and {cfg.num_eye} eye colours.",
        f"Generator: float32 [B, {cfg.noise_dim}] + labels -> images float32 [B, {cfg.image_size}, "
        f"{cfg.image_size}, 3] in [-1, 1].  Discriminator: images + labels -> logits [B].",
        "Output shapes are for a batch of B = 1.", ""]
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "120"   # keras/rich size the table from the terminal; make it the same everywhere
    try:
        for model in (G, D):
            model.summary(print_fn=lambda text, **_: lines.append(text), line_length=110, expand_nested=True)
            lines.append("")
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    total = sum(int(np.prod(w.shape)) for m in (G, D) for w in m.trainable_weights)
    lines.append(f"Trainable parameters, generator + discriminator: {total:,}")
    return "\n".join(lines) + "\n"


def training_sheet(count: int = 64, size: int = 64):
    """A PIL grid of the first ``count`` built-in faces (rendered directly, not cached)."""
    import numpy as np
    from gan_anime.data import FACES_SEED, faces
    from gan_anime.images import make_grid
    images = np.stack([faces.render_face(i, FACES_SEED, size)[0] for i in range(count)])
    return make_grid(images)


def write_media(out_dir: str = "media") -> List[str]:
    from gan_anime.images import save_png
    os.makedirs(out_dir, exist_ok=True)
    summary = os.path.join(out_dir, "model_summary.txt")
    with open(summary, "w") as f:
        f.write(model_summary(default_faces_config()))
    sheet = save_png(training_sheet(), os.path.join(out_dir, "images.png"))
    return [summary, sheet]
