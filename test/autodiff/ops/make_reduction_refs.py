# Prints the NumPy references of test_reductions.cpp (run with a Python that has NumPy).
import numpy as np
x = np.array([0.5, -1.25, 2.0, 0.75, -0.5, 1.5, 3.0, -2.0, 1.0, 0.25, -0.75, 1.75,
              2.5, 0.0, -1.5, 1.25, -3.0, 0.5, 2.25, -0.25, 1.0, -1.0, 0.75, 2.0]).reshape(2, 3, 4)
def out(name, a):
    a = np.asarray(a, dtype=np.float64)
    print(f'  // {name}: shape {a.shape}')
    print('  V{' + ', '.join(repr(float(v)) for v in a.ravel()) + '}')
def lse(a, axis, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    r = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axis)
out("prod axis 2", np.prod(x, 2))
out("prod axes (0, 2) keepdims", np.prod(x, (0, 2), keepdims=True))
out("logsumexp axis 1", lse(x, 1))
out("logsumexp all", lse(x, None))
out("cumsum axis 1", np.cumsum(x, 1))
out("var axis 2", np.var(x, 2))
out("var axes (0, 1) ddof 1 keepdims", np.var(x, (0, 1), ddof=1, keepdims=True))
out("std all ddof 1", np.std(x, ddof=1))
out("norm 2 axis 2", np.linalg.norm(x, 2, axis=2))
out("norm 1 axis 0", np.linalg.norm(x, 1, axis=0))
out("norm inf axis 1", np.linalg.norm(x, np.inf, axis=1))
out("norm 2 all", np.sqrt(np.sum(x * x)))
