"""DiffAugment policy names, parsed without TensorFlow (config validation and the command line use them).

The transforms themselves are in :mod:`gan_anime.data.augment`.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

#: DiffAugment policies (Zhao et al. 2020), in the order of the original implementation.
POLICY_NAMES = ("color", "translation", "cutout")


def parse_policy(policy: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """``"color,translation,cutout"`` (or a sequence of names) -> a tuple of policy names, in order.

    An empty string or sequence means no augmentation.  Unknown, empty or repeated names raise
    ``ValueError`` listing the valid ones.
    """
    if isinstance(policy, str):
        names = [p.strip() for p in policy.split(",")] if policy.strip() else []
    else:
        names = list(policy)
    valid = ", ".join(sorted(POLICY_NAMES))
    for name in names:
        if not isinstance(name, str) or name not in POLICY_NAMES:
            raise ValueError(f"unknown DiffAugment policy {name!r} in {policy!r}; expected a comma-separated list "
                             f"of {valid} (or '' for none)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"DiffAugment policy {', '.join(repeated)} given more than once in {policy!r}; "
                         f"each of {valid} may appear once")
    return tuple(names)
