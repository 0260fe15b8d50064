"""Model registry: architectures are looked up by name, not chosen by if-chains."""

from __future__ import annotations

from typing import Callable, Dict, Tuple

from gan_anime.config import Config
from gan_anime.models.dcgan import Discriminator, Generator


def _dcgan(cfg: Config) -> Tuple[Generator, Discriminator]:
    hair, eye = (cfg.num_hair, cfg.num_eye) if cfg.conditional else (0, 0)
    g = Generator(cfg.image_size, cfg.noise_dim, cfg.g_width, hair, eye, cfg.upsample, name="generator")
    d = Discriminator(cfg.image_size, cfg.d_width, hair, eye, cfg.d_norm, cfg.mbstd_group, name="discriminator")
    return g, d


ARCHITECTURES: Dict[str, Callable[[Config], Tuple[Generator, Discriminator]]] = {"dcgan": _dcgan}


def build_models(cfg: Config, arch: str = "dcgan") -> Tuple[Generator, Discriminator]:
    """Build (generator, discriminator) for ``cfg``; the caller builds their variables (call on a batch)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](cfg)


__all__ = ["Generator", "Discriminator", "build_models", "ARCHITECTURES"]
