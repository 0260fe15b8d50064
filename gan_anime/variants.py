"""GAN variants as compositions, looked up by name: ``Config(gan=NAME)``, ``--gan NAME``.

A variant is data, not code: which discriminator heads the networks get, which adversarial loss,
which penalties, which auxiliary losses, how many discriminator updates per generator update, and
the statistics it reports.  :mod:`gan_anime.training.step` turns any composition into the one
``tf.function`` train step; it never asks for a variant by name.  Adding a variant is adding an
entry to :data:`VARIANTS` (and, for a new kind of part, a function to the part's registry there).

This module imports no TensorFlow, so configs are checked (and ``--help`` is shown) without it.

One **step** is one generator update.  A step takes ``n_critic`` batches: each discriminator
(critic) update sees a batch of its own real images and fresh noise, and the generator update that
follows draws noise of its own.  With ``n_critic = 1`` D and G are updated together from one forward
pass (DCGAN's simultaneous update).  An **epoch** is one pass over the images: ``images // (batch *
n_critic)`` steps.  Learning-rate schedules count steps for both networks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Tuple

#: Discriminator heads: how D sees the hair/eye labels.
#:   projection: labels in, one logit out (Miyato & Koyama 2018); unconditional without tags.
#:   classifier: no labels in; a logit plus hair and eye class logits (ACGAN, Odena et al. 2017).
HEADS = ("projection", "classifier")
#: Statistics a variant reports besides d_loss and g_loss (see gan_anime.training.step.STATS).
STATS = ("probability", "score", "wasserstein")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One GAN variant.  See the module docstring for what a step and an epoch are."""

    name: str
    summary: str                    # one line: --help, the README, errors
    losses: Tuple[str, ...]         # adversarial losses it may use (gan_anime.losses.LOSSES); first = default
    heads: str                      # one of HEADS
    penalties: Tuple[str, ...]      # D penalties it applies when their weight is > 0: "r1", "gp"
    stats: str                      # one of STATS: what D's outputs are reported as
    needs_tags: bool = False        # conditional by construction: untagged data is an error
    spectral_norm: bool = False     # spectrally normalised discriminator layers (Miyato et al. 2018)
    per_example_d: bool = False     # penalties need each example's own D gradient: no batch norm, no mbstd
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)   # Config fields (Config.for_gan)

    def check(self, cfg) -> None:
        """Raise ``ValueError`` (one line) when ``cfg`` does not fit this variant."""
        hint = f"Config.for_gan({self.name!r}) / --gan {self.name} sets this variant's defaults"
        if cfg.loss not in self.losses:
            raise ValueError(f"gan {self.name!r} trains with the {' or '.join(self.losses)} loss, got loss "
                             f"{cfg.loss!r} ({hint})")
        if self.needs_tags and cfg.conditional is False:
            raise ValueError(f"gan {self.name!r} is conditional: it needs hair/eye tags (the built-in faces, or "
                             f"--data-dir with --tags)")
        if cfg.r1_gamma > 0 and "r1" not in self.penalties:
            raise ValueError(f"gan {self.name!r} has no R1 penalty (its penalties: {', '.join(self.penalties)}); "
                             f"set r1_gamma=0 ({hint})")
        if self.per_example_d and (cfg.d_norm != "none" or cfg.mbstd_group):
            raise ValueError(f"gan {self.name!r}: the gradient penalty needs each example's own critic gradient, "
                             f"so the critic has no batch norm and no minibatch-stddev; set d_norm='none' and "
                             f"mbstd_group=0 ({hint})")


_WGAN_GP_ADAM = dict(beta1=0.0, beta2=0.9, g_schedule={"kind": "constant", "initial_lr": 1e-4},
                     d_schedule={"kind": "constant", "initial_lr": 1e-4})

VARIANTS: Dict[str, Variant] = {v.name: v for v in (
    Variant("dcgan", "DCGAN, non-saturating loss, lazy R1; projection-conditional when the data has tags",
            losses=("nonsaturating", "least_squares"), heads="projection", penalties=("r1",), stats="probability"),
    Variant("acgan", "ACGAN: G takes noise + hair/eye labels, D has hair and eye classifier heads",
            losses=("nonsaturating",), heads="classifier", penalties=("r1",), stats="probability",
            needs_tags=True),
    Variant("wgan-gp", "WGAN-GP: Wasserstein critic, gradient penalty 10, 5 critic updates per G update",
            losses=("wasserstein",), heads="projection", penalties=("gp",), stats="wasserstein",
            per_example_d=True,
            defaults=dict(loss="wasserstein", n_critic=5, r1_gamma=0.0, mbstd_group=0, d_norm="none",
                          **_WGAN_GP_ADAM)),
    Variant("hinge", "hinge loss with a spectrally normalised discriminator (SNGAN, SAGAN)",
            losses=("hinge",), heads="projection", penalties=("r1",), stats="score", spectral_norm=True,
            defaults=dict(loss="hinge", r1_gamma=0.0)),
)}


def get_variant(name: str) -> Variant:
    """The variant called ``name``; an unknown name raises ``ValueError`` listing the valid ones."""
    if name not in VARIANTS:
        raise ValueError(f"unknown gan {name!r}; expected one of {', '.join(VARIANTS)}")
    return VARIANTS[name]
