"""The networks of a run: generator and discriminator built for its GAN variant (``cfg.gan``)."""

from __future__ import annotations

from typing import Tuple

from gan_anime.config import Config
from gan_anime.models.dcgan import Discriminator, Generator
from gan_anime.variants import get_variant


def build_models(cfg: Config) -> Tuple[Generator, Discriminator]:
    """Build (generator, discriminator) for ``cfg`` and its variant; the caller builds their variables
    (call on a batch).  Unknown variants raise ``ValueError`` listing the valid ones."""
    variant = get_variant(cfg.gan)
    hair, eye = (cfg.num_hair, cfg.num_eye) if cfg.conditional else (0, 0)
    g = Generator(cfg.image_size, cfg.noise_dim, cfg.g_width, hair, eye, cfg.upsample, name="generator")
    d = Discriminator(cfg.image_size, cfg.d_width, hair, eye, cfg.d_norm, cfg.mbstd_group, heads=variant.heads,
                      sn=variant.spectral_norm, name="discriminator")
    return g, d


__all__ = ["Generator", "Discriminator", "build_models"]
