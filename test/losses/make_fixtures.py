#!/usr/bin/python3
"""Writes test/losses/loss_fixtures.hpp: reference values of every loss of losses/losses.hpp.

Run once offline with Debian's python3-torch (`apt-get install -y python3-torch`, then
`/usr/bin/python3 test/losses/make_fixtures.py`); the tests read the generated header and need no
torch. Inputs are drawn as float32 (so C++ sees exactly them) and every reference is computed in
float64 with PyTorch's own loss functions where they implement Keras's formula
(binary_cross_entropy[_with_logits], cross_entropy with soft targets and label smoothing,
nll_loss, mse_loss, l1_loss, huber_loss, poisson_nll_loss, cosine_similarity) and Keras's formula
written in torch ops otherwise (MAPE, MSLE, KL divergence with its clipping, hinges, log-cosh).
Each case gives the per-sample losses and the three reductions, unweighted and with a
sample_weight, as Keras's Loss.__call__ reduces them (sum_over_batch_size: sum / element count).
"""
import os
import shutil
import subprocess

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-7
rng = np.random.default_rng(20240611)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def uniform(shape, lo, hi):
    return f32(rng.uniform(lo, hi, size=shape))


def one_hot(labels, k):
    return f32(np.eye(k)[labels])


def probs(shape):
    x = rng.normal(size=shape)
    e = np.exp(x - x.max(-1, keepdims=True))
    return f32(e / e.sum(-1, keepdims=True))


def away(shape, lo, hi):
    """|x| in [lo, hi) with random signs."""
    return f32(rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape))


def mixed(shape, small, large):
    """Random signs, magnitudes from `small` or `large` (ranges) at random."""
    pick = rng.integers(0, 2, size=shape).astype(bool)
    mag = np.where(pick, rng.uniform(*small, size=shape), rng.uniform(*large, size=shape))
    return f32(mag * rng.choice([-1.0, 1.0], size=shape))


def T(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


def squeeze_or_expand(a, b):
    """Keras's squeeze_or_expand_to_same_rank on arrays."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        return (a, b[..., None]) if b.ndim == 1 else (a[..., 0], b)
    if b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        return (a[..., None], b) if a.ndim == 1 else (a, b[..., 0])
    return a, b


def mean_last(x):
    return x.mean(-1) if x.dim() >= 2 else x


# ---- per-sample references (y_true, y_pred already squeezed/expanded, as torch float64) ----

def bce(t, p, smoothing=0.0, logits=False):
    t = t * (1 - smoothing) + 0.5 * smoothing
    if logits:
        e = F.binary_cross_entropy_with_logits(p, t, reduction="none")
    else:
        e = F.binary_cross_entropy(p.clamp(EPS, 1 - EPS), t, reduction="none")
    return mean_last(e)


def cce(t, p, smoothing=0.0, logits=False, axis=-1):
    t = t.movedim(axis, -1)
    p = p.movedim(axis, -1)
    k = p.shape[-1]
    shape = p.shape[:-1]
    if logits:
        return F.cross_entropy(p.reshape(-1, k), t.reshape(-1, k), reduction="none",
                               label_smoothing=smoothing).reshape(shape)
    t = t * (1 - smoothing) + smoothing / k
    p = (p / p.sum(-1, keepdim=True)).clamp(EPS, 1 - EPS)
    return -(t * p.log()).sum(-1)


def scce(labels, p, logits=False, ignore=None):
    if labels.dim() == p.dim():
        labels = labels[..., 0]
    k = p.shape[-1]
    logp = F.log_softmax(p, -1) if logits else (p / p.sum(-1, keepdim=True)).clamp(EPS, 1 - EPS).log()
    return F.nll_loss(logp.reshape(-1, k), labels.reshape(-1).long(), reduction="none",
                      ignore_index=-100 if ignore is None else ignore).reshape(labels.shape)


def scce_mask(labels, p, ignore):
    if labels.dim() == p.dim():
        labels = labels[..., 0]
    return (labels != ignore).double()


def hinge_labels(t):
    return 2 * t - 1 if bool(((t == 0) | (t == 1)).all()) else t


def cosine(t, p, axis=-1):
    return -F.cosine_similarity(t, p, dim=axis)


REF = {
    "mse": lambda t, p: mean_last(F.mse_loss(p, t, reduction="none")),
    "mae": lambda t, p: mean_last(F.l1_loss(p, t, reduction="none")),
    "mape": lambda t, p: 100 * mean_last(((t - p) / t.abs().clamp(min=EPS)).abs()),
    "msle": lambda t, p: mean_last((p.clamp(min=EPS).log1p() - t.clamp(min=EPS).log1p()) ** 2),
    "huber": lambda t, p: mean_last(F.huber_loss(p, t, reduction="none", delta=1.0)),
    "huber_delta": lambda t, p: mean_last(F.huber_loss(p, t, reduction="none", delta=0.5)),
    "log_cosh": lambda t, p: mean_last(torch.cosh(p - t).log()),
    "kld": lambda t, p: (t.clamp(EPS, 1) * (t.clamp(EPS, 1) / p.clamp(EPS, 1)).log()).sum(-1),
    "poisson": lambda t, p: mean_last(F.poisson_nll_loss(p, t, log_input=False, eps=EPS,
                                                         reduction="none")),
    "cosine": cosine,
    "cosine_axis0": lambda t, p: cosine(t, p, 0),
    "hinge": lambda t, p: mean_last(F.relu(1 - hinge_labels(t) * p)),
    "hinge_pm1": lambda t, p: mean_last(F.relu(1 - hinge_labels(t) * p)),
    "squared_hinge": lambda t, p: mean_last(F.relu(1 - hinge_labels(t) * p) ** 2),
    "categorical_hinge": lambda t, p: F.relu(((1 - t) * p).max(-1).values - (t * p).sum(-1) + 1),
    "bce": bce,
    "bce_rank1": bce,
    "bce_smoothing": lambda t, p: bce(t, p, 0.2),
    "bce_logits": lambda t, p: bce(t, p, logits=True),
    "bce_logits_smoothing": lambda t, p: bce(t, p, 0.1, logits=True),
    "cce": cce,
    "cce_unnormalized": cce,
    "cce_smoothing": lambda t, p: cce(t, p, 0.1),
    "cce_logits": lambda t, p: cce(t, p, logits=True),
    "cce_logits_smoothing": lambda t, p: cce(t, p, 0.2, logits=True),
    "cce_axis0": lambda t, p: cce(t, p, axis=0),
    "scce": scce,
    "scce_labels_n1": scce,
    "scce_logits": lambda t, p: scce(t, p, logits=True),
    "scce_ignore": lambda t, p: scce(t, p, logits=True, ignore=2),
    "mse_rank1_vs_n1": lambda t, p: mean_last(F.mse_loss(p, t, reduction="none")),
    "mse_n1_vs_rank1": lambda t, p: mean_last(F.mse_loss(p, t, reduction="none")),
    "mse_3d": lambda t, p: mean_last(F.mse_loss(p, t, reduction="none")),
}
MASK = {"scce_ignore": lambda t, p: scce_mask(t, p, 2)}


def cases():
    """(name, y_true, y_pred, sample_weight) with float32 arrays."""
    labels6 = rng.integers(0, 4, size=6)
    labels_ign = np.array([0, 2, 1, 3, 2, 1])
    bin43 = f32(rng.integers(0, 2, size=(4, 3)))
    yield "bce", bin43, uniform((4, 3), 0.05, 0.95), uniform((4,), 0.2, 2)
    yield "bce_rank1", f32(rng.integers(0, 2, size=5)), uniform((5, 1), 0.05, 0.95), uniform((5,), 0.2, 2)
    yield "bce_smoothing", bin43, uniform((4, 3), 0.05, 0.95), uniform((4,), 0.2, 2)
    logits = away((4, 3), 0.2, 4)
    logits[0, 0], logits[1, 1] = 30.0, -25.0  # far saturated: exact from logits
    yield "bce_logits", bin43, logits, uniform((4, 1), 0.2, 2)
    yield "bce_logits_smoothing", bin43, away((4, 3), 0.2, 4), uniform((4,), 0.2, 2)
    oh = one_hot(rng.integers(0, 5, size=4), 5)
    yield "cce", oh, probs((4, 5)), uniform((4,), 0.2, 2)
    yield "cce_unnormalized", oh, uniform((4, 5), 0.1, 2), uniform((4,), 0.2, 2)
    yield "cce_smoothing", oh, probs((4, 5)), uniform((4,), 0.2, 2)
    yield "cce_logits", oh, uniform((4, 5), -3, 3), uniform((4,), 0.2, 2)
    yield "cce_logits_smoothing", oh, uniform((4, 5), -3, 3), uniform((), 0.2, 2)
    yield "cce_axis0", one_hot(rng.integers(0, 3, size=4), 3).T.copy(), probs((4, 3)).T.copy(), \
        uniform((), 0.2, 2)
    yield "scce", f32(labels6), probs((6, 4)), uniform((6,), 0.2, 2)
    yield "scce_labels_n1", f32(labels6[:, None]), probs((6, 4)), uniform((6, 1), 0.2, 2)
    yield "scce_logits", f32(labels6), uniform((6, 4), -3, 3), uniform((6,), 0.2, 2)
    yield "scce_ignore", f32(labels_ign), uniform((6, 4), -3, 3), uniform((6,), 0.2, 2)
    yield "mse", uniform((4, 3), -2, 2), uniform((4, 3), -2, 2), uniform((4,), 0.2, 2)
    yield "mse_rank1_vs_n1", uniform((5,), -2, 2), uniform((5, 1), -2, 2), uniform((5,), 0.2, 2)
    yield "mse_n1_vs_rank1", uniform((5, 1), -2, 2), uniform((5,), -2, 2), uniform((5,), 0.2, 2)
    yield "mse_3d", uniform((2, 3, 4), -2, 2), uniform((2, 3, 4), -2, 2), uniform((2, 1), 0.2, 2)
    t = uniform((4, 3), -2, 2)
    yield "mae", t, t + away((4, 3), 0.1, 1), uniform((4,), 0.2, 2)
    yield "mape", away((4, 3), 0.5, 3), uniform((4, 3), -3, 3), uniform((4,), 0.2, 2)
    yield "msle", uniform((4, 3), 0.1, 5), uniform((4, 3), 0.1, 5), uniform((4,), 0.2, 2)
    # |error| away from delta (the kink), on both sides of it.
    yield "huber", t, t + mixed((4, 3), (0.1, 0.8), (1.3, 2.5)), uniform((4,), 0.2, 2)
    yield "huber_delta", t, t + mixed((4, 3), (0.05, 0.4), (0.7, 2)), uniform((4,), 0.2, 2)
    e = away((4, 3), 0.05, 2)
    e[0, 0], e[1, 2] = 30.0, -40.0  # no overflow far out
    yield "log_cosh", t, t + e, uniform((4,), 0.2, 2)
    yield "kld", probs((4, 5)), probs((4, 5)), uniform((4,), 0.2, 2)
    yield "poisson", uniform((4, 3), 0, 4), uniform((4, 3), 0.2, 4), uniform((4,), 0.2, 2)
    yield "cosine", uniform((4, 3), -2, 2), uniform((4, 3), -2, 2), uniform((4,), 0.2, 2)
    yield "cosine_axis0", uniform((3, 4), -2, 2), uniform((3, 4), -2, 2), uniform((4,), 0.2, 2)
    yield "hinge", bin43, uniform((4, 3), -2, 2), uniform((4,), 0.2, 2)
    yield "hinge_pm1", 2 * bin43 - 1, uniform((4, 3), -2, 2), uniform((4,), 0.2, 2)
    yield "squared_hinge", bin43, uniform((4, 3), -2, 2), uniform((4,), 0.2, 2)
    yield "categorical_hinge", oh, uniform((4, 5), -2, 2), uniform((4,), 0.2, 2)


def reduce(values, weight, mask):
    """Keras's reduce_weighted_values for the three reductions (float64)."""
    out = {}
    for reduction in ("none", "sum", "sum_over_batch_size"):
        w = weight
        if mask is not None:
            m = mask
            if reduction == "sum_over_batch_size":
                m = m * (m.numel() / m.sum())
            w = m if w is None else squeeze_or_expand(m, w)[1] * m
        v = values
        if w is not None:
            v, w = squeeze_or_expand(v, w)
            v = v * w
        if reduction == "none":
            out[reduction] = v
        elif reduction == "sum":
            out[reduction] = v.sum()
        else:
            out[reduction] = v.sum() / v.numel()
    return out


def cpp_float(x):
    s = "%.9g" % x
    return (s if ("." in s or "e" in s) else s + ".") + "f"


def cpp_floats(a):
    return "{" + ", ".join(cpp_float(x) for x in np.asarray(a, dtype=np.float32).ravel()) + "}"


def cpp_doubles(a):
    return "{" + ", ".join("%.17g" % x for x in np.asarray(a, dtype=np.float64).ravel()) + "}"


def cpp_shape(s):
    return "{" + ", ".join(str(int(d)) for d in s) + "}"


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loss_fixtures.hpp")
    lines = [
        "// Generated by test/losses/make_fixtures.py (PyTorch %s, float64); do not edit."
        % torch.__version__,
        "#pragma once",
        "#include <vector>",
        "",
        "#include \"autodiff/tensor.hpp\"",
        "",
        "namespace loss_fixtures {",
        "",
        "struct Reduced {",
        "  xtape::Shape none_shape;",
        "  std::vector<double> none;",
        "  double sum;",
        "  double sum_over_batch_size;",
        "};",
        "",
        "struct Case {",
        "  const char* name;",
        "  xtape::Shape y_true_shape;",
        "  std::vector<float> y_true;",
        "  xtape::Shape y_pred_shape;",
        "  std::vector<float> y_pred;",
        "  xtape::Shape weight_shape;",
        "  std::vector<float> weight;",
        "  Reduced unweighted;",
        "  Reduced weighted;",
        "};",
        "",
        "inline const std::vector<Case>& cases() {",
        "  static const std::vector<Case> all = {",
    ]
    names = []
    for name, y_true, y_pred, weight in cases():
        names.append(name)
        t, p = squeeze_or_expand(T(y_true), T(y_pred))
        values = REF[name](t, p)
        mask = MASK[name](t, p) if name in MASK else None
        r0 = reduce(values, None, mask)
        r1 = reduce(values, T(weight), mask)

        def reduced(r):
            return "{%s, %s, %.17g, %.17g}" % (cpp_shape(r["none"].shape), cpp_doubles(r["none"]),
                                               r["sum"], r["sum_over_batch_size"])

        lines.append("      {\"%s\", %s, %s, %s, %s, %s, %s,\n       %s,\n       %s}," % (
            name, cpp_shape(y_true.shape), cpp_floats(y_true), cpp_shape(y_pred.shape),
            cpp_floats(y_pred), cpp_shape(np.shape(weight)), cpp_floats(weight), reduced(r0),
            reduced(r1)))
    assert len(set(names)) == len(names)
    lines += ["  };", "  return all;", "}", "", "}  // namespace loss_fixtures", ""]
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(out + ".tmp", out)
    if shutil.which("clang-format"):  # the repo's .clang-format, as for every source
        subprocess.run(["clang-format", "-i", out], check=True)
    print("wrote %d cases to %s" % (len(names), out))


if __name__ == "__main__":
    main()
