"""The networks of a run: generator and discriminator built for its GAN variant (``cfg.gan``)."""

from __future__ import annotations

import contextlib
from typing import Tuple

from gan_anime.config import Config
from gan_anime.models.dcgan import Discriminator, Generator
from gan_anime.variants import get_variant


def build_models(cfg: Config) -> Tuple[Generator, Discriminator]:
    """Build (generator, discriminator) for ``cfg`` and its variant; the caller builds their variables
    (call on a batch).  Unknown variants raise ``ValueError`` listing the valid ones."""
    variant = get_variant(cfg.gan)
    hair, eye = (cfg.num_hair, cfg.num_eye) if cfg.conditional else (0, 0)
    from gan_anime.hardware import resolve_precision
    with dtype_policy(POLICIES[resolve_precision(cfg.precision)]):
        g = Generator(cfg.image_size, cfg.noise_dim, cfg.g_width, hair, eye, cfg.upsample, cfg.g_depth,
                      out_width=cfg.g_out_width, residual=cfg.g_residual, attention=cfg.attention,
                      skip=cfg.g_skip, cbn=cfg.g_cbn, sle=cfg.g_sle, name="generator")
        d = Discriminator(cfg.image_size, cfg.d_width, hair, eye, cfg.d_norm, cfg.mbstd_group,
                          heads=variant.heads, sn=variant.spectral_norm, depth=cfg.d_depth, attention=cfg.attention,
                          residual=cfg.d_residual, name="discriminator")
    return g, d


#: Config.precision -> Keras dtype policy.  The networks' outputs (images, logits, class scores) are
#: float32 layers either way, so losses, penalties and FID see float32.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers built inside take Keras dtype policy ``name``; the global policy is restored after,
    so building a bfloat16 run leaves the rest of the process as it was."""
    import keras
    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(saved)


__all__ = ["Generator", "Discriminator", "build_models"]
