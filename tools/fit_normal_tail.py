#!/usr/bin/python3
"""Fits the polynomial S of kernels/activations.cpp's normal_cdf: the standard normal's upper
tail Q(a) = 0.5 erfc(a / sqrt 2) = exp(-a^2 / 2) S(w) / (a + c), w = a / (a + c), on [0, 14].
Iteratively reweighted least squares (Lawson's algorithm) towards the minimax relative error,
in double on Chebyshev nodes. Prints the coefficients (constant term first) and the error.

Usage: /usr/bin/python3 tools/fit_normal_tail.py [DEGREE] [C]   (defaults 10 2.5)
"""
import math
import sys

import numpy as np


def fit(deg, c, amax=14.0, nodes=3000, iters=200):
    wmax = amax / (amax + c)
    w = wmax * (0.5 - 0.5 * np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes))
    a = c * w / (1 - w)
    target = np.array([0.5 * math.erfc(v / math.sqrt(2)) * math.exp(v * v / 2) * (v + c) for v in a])
    v = np.vander(w, deg + 1, increasing=True)
    weight = np.ones(nodes)
    for _ in range(iters):
        coef = np.linalg.lstsq(v * (weight / target)[:, None], weight, rcond=None)[0]
        err = (v @ coef - target) / target
        weight = weight * np.sqrt(np.abs(err)) + 1e-300
        weight *= nodes / weight.sum()
    return coef, np.abs(err).max()


if __name__ == "__main__":
    deg = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    c = float(sys.argv[2]) if len(sys.argv) > 2 else 2.5
    coef, err = fit(deg, c)
    print(", ".join("%.9e" % x for x in coef))
    print("max relative error %.3e" % err)
