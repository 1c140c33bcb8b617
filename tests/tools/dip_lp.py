#!/usr/bin/python3
"""Hartigan's dip by linear programming: the reference that tests/test_split_dip.cpp's
Dip.MatchesALinearProgram compares segrec's dip (kmeans/split_dip.cpp) with.

The dip of x_1 < ... < x_n is the smallest D for which a unimodal CDF G (convex up to a mode,
concave after it) lies within D of the empirical CDF F, of its values and of its left limits.
Here G is piecewise linear on a grid: the data, `sub` points inside each gap and one point
beyond each end. For each grid point as the mode, one LP minimises D over G's values under
|G - F| <= D at every grid point (F and its left limit at the data), G nondecreasing in [0, 1],
slopes nondecreasing before the mode and nonincreasing after it. The dip is the smallest D
over the modes. (Between two data points F is flat and G monotone, so the grid loses nothing
there; finer grids gave the same values to 1e-9 on the cases of the test.)

Usage: dip_lp.py x1 x2 ...      prints the dip
Needs scipy (python3-scipy).
"""
import sys

import numpy as np
from scipy.optimize import linprog


def lp_dip(xs, sub=8):
    x = np.sort(np.asarray(xs, float))
    n = len(x)
    span = x[-1] - x[0]
    z, bands = [x[0] - span], [(0.0, 0.0)]  # grid points and (F, F's left limit) there
    for i in range(n):
        z.append(x[i])
        bands.append(((i + 1) / n, i / n))
        if i + 1 < n:
            for s in range(1, sub + 1):
                z.append(x[i] + (x[i + 1] - x[i]) * s / (sub + 1))
                bands.append(((i + 1) / n, (i + 1) / n))
    z.append(x[-1] + span)
    bands.append((1.0, 1.0))
    z = np.array(z)
    K = len(z)
    best = 1.0
    for mode in range(K):
        A, b = [], []  # variables G_0 .. G_{K-1}, D
        for k, (f, f_left) in enumerate(bands):
            for v in (f, f_left):
                r = np.zeros(K + 1); r[k], r[K] = 1, -1; A.append(r); b.append(v)     # G - D <= v
                r = np.zeros(K + 1); r[k], r[K] = -1, -1; A.append(r); b.append(-v)  # v - G <= D
        for k in range(K - 1):  # nondecreasing
            r = np.zeros(K + 1); r[k], r[k + 1] = 1, -1; A.append(r); b.append(0)
        for k in range(1, K - 1):
            h0, h1 = z[k] - z[k - 1], z[k + 1] - z[k]
            r = np.zeros(K + 1)  # slope after k minus slope before k
            r[k - 1], r[k], r[k + 1] = 1 / h0, -1 / h0 - 1 / h1, 1 / h1
            if k < mode:
                A.append(-r); b.append(0)  # convex: the slope does not fall
            elif k > mode:
                A.append(r); b.append(0)  # concave: the slope does not rise
        c = np.zeros(K + 1); c[K] = 1
        res = linprog(c, A_ub=np.array(A), b_ub=np.array(b), bounds=[(0, 1)] * (K + 1),
                      method="highs")
        if res.status == 0:
            best = min(best, res.fun)
    return best


if __name__ == "__main__":
    print("%.9f" % lp_dip([float(v) for v in sys.argv[1:]]))
