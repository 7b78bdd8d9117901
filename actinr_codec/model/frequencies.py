"""The bias network's time frequencies, derived from the stored seed by exact arithmetic.

A decoder must rebuild them bit for bit, so they come from MT19937 (Matsumoto and
Nishimura's generator, as in C++'s std::mt19937) written out here in integers, not from
a library's random stream that a new version might change. The draw is the one the first
files were fitted with (torch's CPU generator makes the same doubles from the same words),
so those files keep their meaning; docs/bitstream.md gives every step.
"""

from __future__ import annotations

import numpy as np

_N, _M = 624, 397
_MASK32 = 0xFFFFFFFF


def mt19937_words(seed: int, count: int) -> list[int]:
    """The first ``count`` 32-bit outputs of MT19937 initialised with seed mod 2**32."""
    state = [seed & _MASK32]
    for i in range(1, _N):
        prev = state[-1]
        state.append((1812433253 * (prev ^ (prev >> 30)) + i) & _MASK32)
    out: list[int] = []
    index = _N
    while len(out) < count:
        if index == _N:
            for i in range(_N):
                y = (state[i] & 0x80000000) | (state[(i + 1) % _N] & 0x7FFFFFFF)
                state[i] = state[(i + _M) % _N] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            index = 0
        y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        out.append(y)
    return out


def unit_doubles(seed: int, count: int) -> np.ndarray:
    """``count`` doubles in [0, 1): each from two consecutive words a, b as the low 53 bits
    of (a << 32 | b), times 2**-53 (exact in binary64)."""
    words = mt19937_words(seed, 2 * count)
    bits = [((a << 32) | b) & ((1 << 53) - 1) for a, b in zip(words[::2], words[1::2], strict=True)]
    return np.array(bits, dtype=np.float64) * 2.0**-53


def time_frequencies(n_freqs: int, max_freq: float, seed: int) -> np.ndarray:
    """Frequencies in cycles per frame, one per stratum of (0, max_freq], as float32.

    f_k = float32(((k + u_k) / n_freqs) * max_freq), computed in binary64 in that order.
    Bounded well below the frame-rate Nyquist limit (0.5), so the features, and the
    biases made from them, cannot oscillate between two neighbouring frames.
    """
    u = unit_doubles(seed, n_freqs)
    k = np.arange(n_freqs, dtype=np.float64)
    return ((k + u) / n_freqs * max_freq).astype(np.float32)
