"""The ziggurat tables of numpy's ``Generator.standard_normal``, read from the installed numpy itself.

numpy does not expose them, so they are measured: PCG64's state is set so that its next 64-bit output is a chosen
word, and what ``standard_normal`` returns for it (and how many draws it took) shows the table entry.
"""

from __future__ import annotations

import functools
import math
from typing import Tuple

import numpy as np

from gan_anime.serve.numpy_rng import PCG_MULT, ZIGGURAT_R

M64, M128 = (1 << 64) - 1, (1 << 128) - 1


def _xsl_rr(state: int) -> int:
    hi, lo = state >> 64, state & M64
    value, rot = hi ^ lo, hi >> 58
    return ((value >> rot) | (value << ((64 - rot) & 63))) & M64


def _numpy_draw(word: int, hi_bits: int = 0):
    """numpy's standard_normal() when PCG64's next output is ``word``: (value, 64-bit draws it took)."""
    rot = hi_bits >> 58
    target = (hi_bits << 64) | (hi_bits ^ (((word << rot) | (word >> ((64 - rot) & 63))) & M64))
    assert _xsl_rr(target) == word
    bits = np.random.PCG64()
    # state 0 and increment `target`: the next state is `target`, whose output is `word`.
    bits.state = {"bit_generator": "PCG64", "state": {"state": 0, "inc": target}, "has_uint32": 0, "uinteger": 0}
    value = float(np.random.Generator(bits).standard_normal())
    state, after = 0, bits.state["state"]["state"]
    for draws in range(1, 1000):
        state = (state * PCG_MULT + target) & M128
        if state == after:
            return value, draws
    raise RuntimeError("numpy's PCG64 did not advance as expected")


def _word(idx: int, rabs: int) -> int:
    return (rabs << 9) | idx


@functools.lru_cache(maxsize=1)
def ziggurat_tables() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ki uint64 [256], wi float64 [256], fi float64 [256]): the ziggurat numpy's standard_normal uses.

    wi (layer widths / 2**52) is read from numpy: a draw of layer ``idx`` with ``rabs = 2**51`` returns
    ``2**51 * wi[idx]`` exactly.  fi = exp(-x**2 / 2) and ki = 2**52 x[i-1] / x[i] follow from the widths
    x = wi * 2**52 (as numpy computed them); every ki is then checked against numpy's acceptance.
    """
    half = 1 << 51
    wi = np.zeros(256)
    for idx in range(256):
        for hi_bits in range(0, 1 << 64, 1 << 58):   # layer 1 always takes the wedge test: retry until it passes
            value, draws = _numpy_draw(_word(idx, half), hi_bits)
            if draws == (1 if idx != 1 else 2):
                wi[idx] = abs(value) / half
                break
        else:
            raise RuntimeError(f"cannot read numpy's ziggurat layer {idx}")
    x = wi * 2.0 ** 52
    fi = np.concatenate([[1.0], np.exp(-0.5 * x[1:] * x[1:])])
    fr = math.exp(-0.5 * ZIGGURAT_R * ZIGGURAT_R)
    ki = [int(math.floor(2.0 ** 52 * ZIGGURAT_R * fr / (x[0] * fr))), 0]
    ki += [int(math.floor(2.0 ** 52 * x[i - 1] / x[i])) for i in range(2, 256)]
    for idx in [0] + list(range(2, 256)):
        if _numpy_draw(_word(idx, ki[idx] - 1))[1] == 1 and _numpy_draw(_word(idx, ki[idx]))[1] != 1:
            continue
        lo, hi = 0, 1 << 52            # the first rabs numpy does not accept at once lies in (lo, hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _numpy_draw(_word(idx, mid))[1] == 1 else (lo, mid)
        ki[idx] = hi
    return np.asarray(ki, np.uint64), wi, fi
