"""numpy's ``default_rng([seed, stream])`` inside a TensorFlow graph, for exports that draw their own noise.

``gan_anime.inference.generator_inputs`` draws the noise of seed ``s`` as
``np.random.default_rng([s, 0]).standard_normal((n, noise_dim))`` and random tags from streams 1 (hair)
and 2 (eye).  An exported model takes seeds, not noise, so the same draws are rebuilt here from TensorFlow
ops, vectorised over a batch of seeds (one stream each):

* ``SeedSequence([s, stream])`` (numpy's hash mixing of the 32-bit words of ``s`` and ``stream``),
* the PCG64 generator it seeds (128-bit LCG, XSL-RR output),
* ``Generator.standard_normal``: the 256-layer ziggurat, one 64-bit draw per loop iteration and row, the
  wedge and tail rejections as per-row phases, so every row consumes its stream in numpy's order,
* ``Generator.integers(0, k)`` (Lemire's bounded draw from 32-bit halves).

Integers are uint32 words (64-bit values as (high, low), 128-bit as four words, most significant first),
with only the ops TFLite's builtin kernels have for them (add, multiply, xor, right shift, casts), so the
same graph converts to TFLite without select TensorFlow ops.  Floating point is ``float64`` (exactly
numpy's arithmetic; the SavedModel) or ``float32`` (TFLite has no float64 arithmetic: the values then differ
from numpy's by float32 rounding, ~1e-7, and a wedge test that close to its bound could go the other way).

The ziggurat tables are read from the installed numpy itself (:func:`gan_anime.serve.ziggurat.ziggurat_tables`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

M32 = (1 << 32) - 1
PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645           # PCG64's 128-bit LCG multiplier
# numpy.random.SeedSequence's hash constants (O'Neill's seed_seq_fe, pool of 4 words).
INIT_A, MULT_A, INIT_B, MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
MIX_MULT_L, MIX_MULT_R, XSHIFT, POOL = 0xCA01F9DD, 0x4973F715, 16, 4
# Marsaglia & Tsang's (2000) start of the ziggurat's tail, and 1/R, as numpy writes them.
ZIGGURAT_R = 3.6541528853610087963519472518
ZIGGURAT_INV_R = 0.27366123732975827203338247596


# ------------------------------------------------------------------------------ uint32 words
def _c(value: int) -> tf.Tensor:
    return tf.constant(value & M32, tf.uint32)


def _shr(x, k):
    return tf.bitwise.right_shift(x, _c(k) if isinstance(k, int) else k)


def _shl(x, k: int):
    return x * _c(1 << k)          # wraps mod 2**32: TFLite has no left shift


def _low(x, k: int):
    """x mod 2**k (TFLite has no bitwise and)."""
    return _shr(_shl(x, 32 - k), 32 - k)


_xor = tf.bitwise.bitwise_xor


def _lt(a, b):
    return tf.cast(a, tf.int64) < tf.cast(b, tf.int64)


def _where(cond, a, b):
    return tf.cast(tf.where(cond, tf.cast(a, tf.int64), tf.cast(b, tf.int64)), tf.uint32)


def _add_carry(a, b):
    s = a + b
    return s, tf.cast(_lt(s, a), tf.uint32)


def _mul_wide(a, b):
    """Full product of two uint32 words: (high, low)."""
    a0, a1, b0, b1 = _low(a, 16), _shr(a, 16), _low(b, 16), _shr(b, 16)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = _shr(p00, 16) + _low(p01, 16) + _low(p10, 16)
    return p11 + _shr(p01, 16) + _shr(p10, 16) + _shr(mid, 16), a * b


def _words(value: int, n: int):
    return [_c(value >> (32 * (n - 1 - i))) for i in range(n)]


def _add128(a, b):
    out, carry = [None] * 4, None
    for i in range(3, -1, -1):
        s, c1 = _add_carry(a[i], b[i])
        if carry is not None:
            s, c2 = _add_carry(s, carry)
            c1 = c1 + c2
        out[i], carry = s, c1
    return out


def _mul128(a, m):
    """a * m mod 2**128, four words each (most significant first)."""
    a, m = a[::-1], m[::-1]                     # least significant first
    columns = [[] for _ in range(4)]
    for i in range(4):
        for j in range(4 - i):
            if i + j < 3:
                hi, lo = _mul_wide(a[i], m[j])
                columns[i + j + 1].append(hi)
            else:
                lo = a[i] * m[j]
            columns[i + j].append(lo)
    out, carry = [], None
    for terms in columns:
        total, carries = terms[0], None
        for t in terms[1:] + ([carry] if carry is not None else []):
            total, c = _add_carry(total, t)
            carries = c if carries is None else carries + c
        out.append(total)
        carry = carries
    return out[::-1]


# ----------------------------------------------------------------------------- SeedSequence
def _hash_constants(start: int, mult: int, count: int):
    """(xor constant, multiplier) of each successive hash call: the running constant is data-independent."""
    out, h = [], start
    for _ in range(count):
        out.append((h, (h * mult) & M32))
        h = (h * mult) & M32
    return out


def _hashmix(value, consts):
    value = _xor(value, _c(consts[0])) * _c(consts[1])
    return _xor(value, _shr(value, XSHIFT))


def _mix(x, y):
    result = x * _c(MIX_MULT_L) + _xor(y * _c(MIX_MULT_R), _c(M32)) + _c(1)   # L*x - R*y mod 2**32
    return _xor(result, _shr(result, XSHIFT))


def seed_state_words(seed: tf.Tensor, stream: int):
    """SeedSequence([seed, stream]).generate_state(8, uint32) for int64 seeds >= 0: eight uint32 [N]."""
    halves = tf.bitcast(tf.cast(seed, tf.int64), tf.uint32)     # [N, 2]: low word, high word
    lo, hi = halves[:, 0], halves[:, 1]
    k, zero = tf.fill(tf.shape(lo), _c(stream)), tf.zeros_like(lo)
    # numpy splits each entropy integer into its 32-bit words (one word below 2**32).
    small = tf.equal(tf.cast(hi, tf.int64), 0)
    entropy = [lo, _where(small, k, hi), _where(small, zero, k), zero]
    consts = iter(_hash_constants(INIT_A, MULT_A, POOL * POOL))
    pool = [_hashmix(e, next(consts)) for e in entropy]
    for src in range(POOL):
        for dst in range(POOL):
            if src != dst:
                pool[dst] = _mix(pool[dst], _hashmix(pool[src], next(consts)))
    return [_hashmix(pool[i % POOL], c) for i, c in enumerate(_hash_constants(INIT_B, MULT_B, 2 * POOL))]


# ------------------------------------------------------------------------------------ PCG64
def pcg64(seed: tf.Tensor, stream: int):
    """(state, increment) as numpy seeds PCG64 from ``SeedSequence([seed, stream])``: four uint32 [N] each."""
    w = seed_state_words(seed, stream)          # uint64 j of numpy's generate_state(4) = (w[2j+1], w[2j])
    initstate, initseq = [w[1], w[0], w[3], w[2]], [w[5], w[4], w[7], w[6]]
    inc = [_xor(_shl(initseq[i], 1), _shr(initseq[i + 1], 31)) for i in range(3)] + [_xor(_shl(initseq[3], 1), _c(1))]
    state = _add128(step([tf.zeros_like(w[0])] * 4, inc), initstate)
    return step(state, inc), inc


def step(state, inc):
    """state * PCG_MULT + inc (mod 2**128)."""
    return _add128(_mul128(state, _words(PCG_MULT, 4)), inc)


_ROTATE = np.array([(1 << (32 - s)) & M32 for s in range(32)], np.int64)   # left-shift factors by 32 - s


def output(state):
    """PCG XSL-RR: (high 64 ^ low 64) rotated right by the state's top 6 bits; a 64-bit (high, low) word pair."""
    v1, v0 = _xor(state[0], state[2]), _xor(state[1], state[3])
    rot = _shr(state[0], 26)
    big = tf.cast(rot, tf.int64) >= 32            # rotating by 32 swaps the halves
    v1, v0 = _where(big, v0, v1), _where(big, v1, v0)
    s = tf.cast(tf.math.floormod(tf.cast(rot, tf.int32), 32), tf.uint32)
    up = tf.cast(tf.gather(tf.constant(_ROTATE), tf.cast(s, tf.int32)), tf.uint32)
    return _xor(_shr(v1, s), v0 * up), _xor(_shr(v0, s), v1 * up)


# --------------------------------------------------------------------------------- ziggurat
def _as_float(hi, lo, dtype):
    return tf.cast(hi, dtype) * 4294967296.0 + tf.cast(lo, dtype)


def standard_normal(seed: tf.Tensor, stream: int, dim: int, tables, dtype=tf.float64) -> tf.Tensor:
    """``default_rng([seed_i, stream]).standard_normal(dim)`` for every row: ``dtype`` [N, dim]."""
    ki = tf.constant(tables[0].astype(np.int64))
    wi, fi = (tf.constant(t, dtype) for t in tables[1:])
    state, inc = pcg64(seed, stream)
    n = tf.shape(seed)[0]
    zeros_f, zeros_i = tf.zeros([n], dtype), tf.zeros([n], tf.int32)
    columns = tf.range(dim, dtype=tf.int32)[None, :]
    # phase: 0 a fresh draw, 1 the wedge test of `held`, 2 and 3 the two uniforms of a tail attempt.
    loop_vars = (state, tf.zeros([n, dim], dtype), zeros_i, zeros_i, zeros_f, zeros_i, zeros_f, tf.zeros([n], tf.bool))

    def more(state, out, count, *_):
        return tf.reduce_any(count < dim)

    def draw(state, out, count, phase, held, held_idx, held_xx, held_neg):
        state = step(state, inc)
        rh, rl = output(state)
        u = _as_float(_shr(rh, 11), _xor(_shr(rl, 11), _shl(rh, 21)), dtype) * (1.0 / 9007199254740992.0)
        idx = tf.cast(_low(rl, 8), tf.int32)
        negative = tf.equal(tf.cast(_low(_shr(rl, 8), 1), tf.int32), 1)
        rabs_lo, rabs_hi = _xor(_shr(rl, 9), _shl(rh, 23)), _low(_shr(rh, 9), 20)
        rabs = tf.cast(rabs_hi, tf.int64) * 4294967296 + tf.cast(rabs_lo, tf.int64)
        x = tf.cast(rabs, dtype) * tf.gather(wi, idx)
        x = tf.where(negative, -x, x)
        fresh_ok = rabs < tf.gather(ki, idx)
        fi_lo, fi_hi = tf.gather(fi, held_idx), tf.gather(fi, tf.maximum(held_idx - 1, 0))
        wedge_ok = (fi_hi - fi_lo) * u + fi_lo < tf.exp(-0.5 * held * held)
        log_1mu = tf.math.log(1.0 - u)    # numpy's log1p(-u): 1 - u is exact for u = k / 2**53 in float64
        xx = -ZIGGURAT_INV_R * log_1mu
        tail_ok = -log_1mu - log_1mu > held_xx * held_xx
        tail_x = tf.where(held_neg, -(ZIGGURAT_R + held_xx), ZIGGURAT_R + held_xx)
        p0, p1, p2, p3 = (tf.equal(phase, p) for p in range(4))
        accept = (p0 & fresh_ok) | (p1 & wedge_ok) | (p3 & tail_ok)
        value = tf.where(p0, x, tf.where(p1, held, tail_x))
        to_tail = p0 & ~fresh_ok & tf.equal(idx, 0)
        new_phase = tf.where(p0 & ~fresh_ok, tf.where(to_tail, 2, 1),
                             tf.where(p2 | (p3 & ~tail_ok), tf.where(p2, 3, 2), 0))
        held, held_idx = tf.where(p0, x, held), tf.where(p0, idx, held_idx)
        held_neg = tf.where(to_tail, tf.equal(tf.cast(_low(_shr(rabs_lo, 8), 1), tf.int32), 1), held_neg)
        held_xx = tf.where(p2, xx, held_xx)
        write = (accept & (count < dim))[:, None] & tf.equal(columns, count[:, None])
        out = tf.where(write, value[:, None], out)
        count = count + tf.cast(accept, tf.int32)
        return state, out, count, new_phase, held, held_idx, held_xx, held_neg

    return tf.while_loop(more, draw, loop_vars)[1]


def bounded_int(seed: tf.Tensor, stream: int, k: int) -> tf.Tensor:
    """``default_rng([seed_i, stream]).integers(0, k)`` for every row: int32 [N] in [0, k).

    Lemire's method on 32-bit halves (low half of a draw first); a rejected half is followed by the next,
    up to four halves (a fifth is needed with probability below 2**-120 for k < 2**16)."""
    if k <= 1:
        return tf.zeros(tf.shape(seed), tf.int32)
    state, inc = pcg64(seed, stream)
    halves = []
    for _ in range(2):
        state = step(state, inc)
        hi, lo = output(state)
        halves += [lo, hi]
    threshold = ((1 << 32) - k) % k
    result = None
    for half in reversed(halves):
        pick, leftover = _mul_wide(half, _c(k))
        result = pick if result is None else _where(_lt(leftover, _c(threshold)), result, pick)
    return tf.cast(result, tf.int32)
