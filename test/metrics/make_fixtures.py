#!/usr/bin/python3
"""Writes test/metrics/metric_fixtures.hpp: reference results of the metrics of metrics.hpp.

Run once offline with Debian's python3-torch (`/usr/bin/python3 test/metrics/make_fixtures.py`);
the tests read the generated header and need no torch. Each case feeds a few batches (float32
inputs, some with a sample_weight) and records the result after each, computed in float64 with
torch: Keras's per-sample functions (accuracies, in_top_k, errors, PyTorch's binary_cross_entropy
and cosine_similarity), Keras's Mean/Sum reduction (reduce_to_samplewise_values) and Keras's
confusion-matrix algorithms (AUC's bucketed thresholds with its interpolation and Riemann sums,
Precision/Recall with top_k and class_id). AUC ROC is cross-checked against the exact
Mann-Whitney statistic.
"""
import math
import os
import shutil
import subprocess

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-7
rng = np.random.default_rng(7)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def T(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


def squeeze_or_expand(a, b, expand_rank_1=True):
    """Keras's squeeze_or_expand_to_same_rank (tensors or arrays)."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        return (a, b[..., None]) if (b.ndim == 1 and expand_rank_1) else (a[..., 0], b)
    if b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        return (a[..., None], b) if (a.ndim == 1 and expand_rank_1) else (a, b[..., 0])
    return a, b


def per_row(x):
    """Rank 1: one value per sample; else the mean over the last axis."""
    return x.mean(-1) if x.dim() >= 2 else x


# ---- per-sample functions (torch float64) ----

def binary_accuracy(t, p, threshold=0.5):
    t, p = squeeze_or_expand(t, p)
    return (t == (p > threshold).double()).double()


def categorical_accuracy(t, p):
    return (t.argmax(-1) == p.argmax(-1)).double()


def sparse_labels(t, p):
    return t[..., 0] if t.dim() == p.dim() else t


def sparse_categorical_accuracy(t, p):
    return (sparse_labels(t, p).long() == p.argmax(-1)).double()


def in_top_k(target, p, k):
    at = p.gather(-1, target.long()[..., None])
    return ((p > at).sum(-1) < k).double()


def errors(t, p, squared):
    t, p = squeeze_or_expand(t, p)
    d = (t - p) ** 2 if squared else (t - p).abs()
    return per_row(d)


def bce_values(t, p):
    t, p = squeeze_or_expand(t, p)
    return per_row(F.binary_cross_entropy(p.clamp(EPS, 1 - EPS), t, reduction="none"))


def cosine_values(t, p):
    return F.cosine_similarity(t, p, dim=-1)


# ---- Keras's Mean and Sum (reduce_to_samplewise_values) ----

class Mean:
    def __init__(self, sqrt=False):
        self.total = self.count = 0.0
        self.sqrt = sqrt

    def update(self, values, w):
        if w is None:
            self.total += float(values.sum() if values.dim() <= 1 else values.mean(
                dim=tuple(range(1, values.dim()))).sum())
            self.count += values.shape[0] if values.dim() >= 1 else 1
            return
        values, w = squeeze_or_expand(values, w)
        if values.dim() > w.dim():
            values = values.mean(dim=tuple(range(w.dim(), values.dim())))
        w = torch.broadcast_to(w, values.shape)
        values = values * w
        if w.dim() > 1:
            w = w.mean(dim=tuple(range(1, w.dim())))
        if values.dim() > 1:
            values = values.mean(dim=tuple(range(1, values.dim())))
        self.total += float(values.sum())
        self.count += float(w.sum())

    def result(self):
        r = self.total / self.count if self.count else 0.0
        return math.sqrt(r) if self.sqrt else r


class Sum:
    def __init__(self):
        self.total = 0.0

    def update(self, values, w):
        if w is not None:
            values, w = squeeze_or_expand(values, w)
            if values.dim() > w.dim():
                values = values.sum(dim=tuple(range(w.dim(), values.dim())))
            values = values * torch.broadcast_to(w, values.shape)
        self.total += float(values.sum())

    def result(self):
        return self.total


class Wrapper:
    """A Mean of a per-sample function of (y_true, y_pred)."""

    def __init__(self, fn, sqrt=False):
        self.fn, self.mean = fn, Mean(sqrt)

    def update(self, t, p, w):
        self.mean.update(self.fn(t, p), w)

    def result(self):
        return self.mean.result()


class Values:
    """Mean or Sum fed with values (y_true absent)."""

    def __init__(self, m):
        self.m = m

    def update(self, t, p, w):
        self.m.update(p, w)

    def result(self):
        return self.m.result()


# ---- Keras's confusion-matrix metrics ----

def prepare(t, p, w, top_k=None, class_id=None):
    p, t = squeeze_or_expand(p, t)
    assert t.shape == p.shape
    if w is None:
        w = torch.ones_like(p)
    else:
        _, w = squeeze_or_expand(t, w[..., None], expand_rank_1=False)
        w = torch.broadcast_to(w, p.shape)
    if top_k is not None:
        idx = torch.topk(p, top_k, dim=-1).indices
        mask = torch.zeros_like(p).scatter(-1, idx, 1.0)
        p = p * mask + -1e10 * (1 - mask)
    if class_id is not None:
        t, p, w = t[..., class_id], p[..., class_id], w[..., class_id]
    return (t != 0).double().reshape(-1), p.reshape(-1), w.reshape(-1)


class AUC:
    def __init__(self, curve="ROC", summation="interpolation", from_logits=False, n=200):
        self.curve, self.summation, self.from_logits, self.n = curve, summation, from_logits, n
        self.tp, self.fp, self.tn, self.fn = (torch.zeros(n, dtype=torch.float64) for _ in range(4))
        self.exact = []  # (label, pred, weight) for the Mann-Whitney cross-check

    def update(self, t, p, w):
        lab, pred, wt = prepare(t, p, w)
        pred32 = np.asarray(pred.numpy(), dtype=np.float32)
        if self.from_logits:
            pred32 = f32(1 / (1 + np.exp(-pred32)))
        pred32 = np.clip(pred32, 0, 1)
        scaled = pred32 * np.float32(self.n - 1)  # float32, as Keras
        inside = (pred32 > 0) & (pred32 < 1)
        assert np.all(np.abs(scaled - np.round(scaled))[inside] > 1e-3), "prediction on a bucket edge"
        bucket = np.maximum(np.ceil(scaled) - 1, 0).astype(np.int64)
        self.exact += list(zip(lab.tolist(), pred32.tolist(), wt.tolist()))
        pos = torch.zeros(self.n, dtype=torch.float64).index_add(0, torch.tensor(bucket), lab * wt)
        neg = torch.zeros(self.n, dtype=torch.float64).index_add(0, torch.tensor(bucket), (1 - lab) * wt)
        tp = pos.flip(0).cumsum(0).flip(0)
        fp = neg.flip(0).cumsum(0).flip(0)
        self.tp += tp
        self.fp += fp
        self.tn += (neg.sum() - fp)
        self.fn += (pos.sum() - tp)

    def result(self):
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn

        def div(a, b):
            return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))

        if self.curve == "PR" and self.summation == "interpolation":
            dtp = tp[:-1] - tp[1:]
            p = tp + fp
            dp = p[:-1] - p[1:]
            slope = div(dtp, dp.clamp(min=0))
            intercept = tp[1:] - slope * p[1:]
            ratio = torch.where((p[:-1] > 0) & (p[1:] > 0), div(p[:-1], p[1:].clamp(min=0)),
                                torch.ones_like(p[1:]))
            return float(div(slope * (dtp + intercept * ratio.log()), (tp[1:] + fn[1:]).clamp(min=0)).sum())
        recall = div(tp, tp + fn)
        if self.curve == "ROC":
            x, y = div(fp, fp + tn), recall
        else:
            x, y = recall, div(tp, tp + fp)
        if self.summation == "interpolation":
            h = (y[:-1] + y[1:]) / 2
        elif self.summation == "minoring":
            h = torch.minimum(y[:-1], y[1:])
        else:
            h = torch.maximum(y[:-1], y[1:])
        return float(((x[:-1] - x[1:]) * h).sum())

    def mann_whitney(self):
        pos = [(p, w) for l, p, w in self.exact if l]
        neg = [(p, w) for l, p, w in self.exact if not l]
        num = sum(wp * wn * (1.0 if pp > pn else 0.5 if pp == pn else 0.0) for pp, wp in pos for pn, wn in neg)
        return num / (sum(w for _, w in pos) * sum(w for _, w in neg))


class Confusion:
    def __init__(self, kind, threshold=None, top_k=None, class_id=None):
        self.kind, self.top_k, self.class_id = kind, top_k, class_id
        self.threshold = threshold if threshold is not None else (-1e10 if top_k else 0.5)
        self.tp = self.other = 0.0

    def update(self, t, p, w):
        lab, pred, wt = prepare(t, p, w, self.top_k, self.class_id)
        pos = (pred > self.threshold).double()
        self.tp += float((lab * pos * wt).sum())
        other = (1 - lab) * pos if self.kind == "precision" else lab * (1 - pos)
        self.other += float((other * wt).sum())

    def result(self):
        return self.tp / (self.tp + self.other) if self.tp + self.other else 0.0


# ---- cases ----

def uniform(shape, lo=0.0, hi=1.0):
    return f32(rng.uniform(lo, hi, size=shape))


def binary(shape):
    return f32(rng.integers(0, 2, size=shape))


def one_hot(n, k):
    return f32(np.eye(k)[rng.integers(0, k, size=n)])


def labels(shape, k):
    return f32(rng.integers(0, k, size=shape))


def weights(shape):
    return uniform(shape, 0.2, 2.0)


def off_edges(p, logits, n=200):
    """Moves predictions off AUC's bucket edges (p (n - 1) an integer), where a last-bit
    difference in float32 arithmetic (expf of the sigmoid) could change the bucket."""
    p = f32(p)
    while True:
        q = f32(1 / (1 + np.exp(-p))) if logits else p
        scaled = np.clip(q, 0, 1) * np.float32(n - 1)
        # 0 and 1 themselves scale exactly.
        near = (np.abs(scaled - np.round(scaled)) < 1e-2) & (q > 0) & (q < 1)
        if not near.any():
            return p
        p = f32(np.where(near, p + (0.013 if logits else 0.013 / (n - 1)), p))


def cases():
    """(name, reference metric, [(y_true or None, y_pred, sample_weight or None), ...])."""
    yield "binary_accuracy", Wrapper(binary_accuracy), [
        (binary((6, 1)), uniform((6, 1)), None), (binary(5), uniform((5, 1)), weights(5))]
    yield "binary_accuracy_threshold", Wrapper(lambda t, p: binary_accuracy(t, p, 0.7)), [
        (binary((4, 3)), uniform((4, 3)), None), (binary((4, 3)), uniform((4, 3)), weights(4))]
    yield "categorical_accuracy", Wrapper(categorical_accuracy), [
        (one_hot(5, 4), uniform((5, 4)), None), (one_hot(5, 4), uniform((5, 4)), weights((5, 1)))]
    yield "sparse_categorical_accuracy", Wrapper(sparse_categorical_accuracy), [
        (labels(6, 4), uniform((6, 4)), None), (labels((4, 1), 4), uniform((4, 4)), weights(4))]
    yield "top_k_categorical_accuracy", Wrapper(lambda t, p: in_top_k(t.argmax(-1), p, 2)), [
        (one_hot(6, 5), uniform((6, 5)), None), (one_hot(6, 5), uniform((6, 5)), weights(6))]
    yield "sparse_top_k_categorical_accuracy", Wrapper(lambda t, p: in_top_k(sparse_labels(t, p), p, 5)), [
        (labels(8, 8), uniform((8, 8)), None), (labels(8, 8), uniform((8, 8)), weights(8))]
    yield "mean_squared_error", Wrapper(lambda t, p: errors(t, p, True)), [
        (uniform((4, 3), -2, 2), uniform((4, 3), -2, 2), None),
        (uniform((4, 3), -2, 2), uniform((4, 3), -2, 2), weights(4))]
    yield "mean_squared_error_rank1", Wrapper(lambda t, p: errors(t, p, True)), [
        (uniform(5, -2, 2), uniform((5, 1), -2, 2), None), (uniform(3, -2, 2), uniform(3, -2, 2), weights(3))]
    yield "mean_absolute_error", Wrapper(lambda t, p: errors(t, p, False)), [
        (uniform((4, 3), -2, 2), uniform((4, 3), -2, 2), None),
        (uniform((2, 3, 2), -2, 2), uniform((2, 3, 2), -2, 2), weights((2, 3)))]
    yield "root_mean_squared_error", Wrapper(lambda t, p: errors(t, p, True), sqrt=True), [
        (uniform((4, 3), -2, 2), uniform((4, 3), -2, 2), None),
        (uniform((4, 3), -2, 2), uniform((4, 3), -2, 2), weights(4))]
    for name, metric in (("auc_roc", AUC()), ("auc_pr", AUC("PR")), ("auc_roc_minoring", AUC(summation="minoring")),
                         ("auc_pr_majoring", AUC("PR", "majoring")), ("auc_logits", AUC(from_logits=True))):
        lo, hi = (-4, 4) if name == "auc_logits" else (0, 1)
        t1, t2 = binary(40), binary((10, 3))
        # Informative predictions: positives score higher on average.
        logits = name == "auc_logits"
        p1 = off_edges(np.clip(uniform(40, lo, hi) + 0.25 * (hi - lo) * (t1 - 0.5), lo, hi), logits)
        p2 = off_edges(np.clip(uniform((10, 3), lo, hi) + 0.25 * (hi - lo) * (t2 - 0.5), lo, hi), logits)
        yield name, metric, [(t1, p1, None), (t2, p2, weights(10))]
    yield "precision", Confusion("precision"), [
        (binary(10), uniform(10), None), (binary((6, 1)), uniform((6, 1)), weights(6))]
    yield "recall", Confusion("recall"), [(binary(10), uniform(10), None), (binary(6), uniform(6), weights(6))]
    yield "precision_top_k", Confusion("precision", top_k=2), [
        (binary((5, 4)), uniform((5, 4)), None), (binary((5, 4)), uniform((5, 4)), weights(5))]
    yield "recall_class_id", Confusion("recall", class_id=1), [
        (binary((6, 3)), uniform((6, 3)), None), (binary((6, 3)), uniform((6, 3)), weights(6))]
    yield "binary_crossentropy", Wrapper(bce_values), [
        (binary((4, 3)), uniform((4, 3), 0.05, 0.95), None), (binary(5), uniform((5, 1), 0.05, 0.95), weights(5))]
    yield "cosine_similarity", Wrapper(cosine_values), [
        (uniform((4, 3), -1, 1), uniform((4, 3), -1, 1), None), (uniform((4, 3), -1, 1), uniform((4, 3), -1, 1), weights(4))]
    yield "mean", Values(Mean()), [(None, uniform(4, -2, 2), None), (None, uniform((3, 2), -2, 2), weights(3)),
                                   (None, uniform(5, -2, 2), weights(())), (None, uniform((), -2, 2), None)]
    yield "sum", Values(Sum()), [(None, uniform(4, -2, 2), None), (None, uniform((3, 2), -2, 2), weights(3))]


def cpp_float(x):
    s = "%.9g" % x
    return (s if ("." in s or "e" in s or "n" in s) else s + ".") + "f"


def cpp_floats(a):
    return "{" + ", ".join(cpp_float(x) for x in np.asarray(a, dtype=np.float32).ravel()) + "}"


def cpp_shape(s):
    return "{" + ", ".join(str(int(d)) for d in s) + "}"


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metric_fixtures.hpp")
    lines = [
        "// Generated by test/metrics/make_fixtures.py (PyTorch %s, float64); do not edit."
        % torch.__version__,
        "#pragma once",
        "#include <vector>",
        "",
        "#include \"autodiff/tensor.hpp\"",
        "",
        "namespace metric_fixtures {",
        "",
        "struct Batch {",
        "  bool has_true;  // false: Mean/Sum fed with values (y_pred)",
        "  xtape::Shape y_true_shape;",
        "  std::vector<float> y_true;",
        "  xtape::Shape y_pred_shape;",
        "  std::vector<float> y_pred;",
        "  bool weighted;",
        "  xtape::Shape weight_shape;",
        "  std::vector<float> weight;",
        "  double result;  // after this batch",
        "};",
        "",
        "struct Case {",
        "  const char* name;",
        "  std::vector<Batch> batches;",
        "};",
        "",
        "inline const std::vector<Case>& cases() {",
        "  static const std::vector<Case> all = {",
    ]
    for name, metric, batches in cases():
        entries = []
        for t, p, w in batches:
            metric.update(None if t is None else T(t), T(p), None if w is None else T(w))
            entries.append("{%s, %s, %s, %s, %s, %s, %s, %s, %.17g}" % (
                "true" if t is not None else "false", cpp_shape(np.shape(t) if t is not None else ()),
                cpp_floats(t if t is not None else []), cpp_shape(np.shape(p)), cpp_floats(p),
                "true" if w is not None else "false", cpp_shape(np.shape(w) if w is not None else ()),
                cpp_floats(w if w is not None else []), metric.result()))
        if isinstance(metric, AUC) and metric.curve == "ROC" and metric.summation == "interpolation":
            exact = metric.mann_whitney()
            assert abs(exact - metric.result()) < 0.01, (name, exact, metric.result())
        lines.append("      {\"%s\", {%s}}," % (name, ", ".join(entries)))
    lines += ["  };", "  return all;", "}", "", "}  // namespace metric_fixtures", ""]
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(out + ".tmp", out)
    if shutil.which("clang-format"):
        subprocess.run(["clang-format", "-i", out], check=True)
    print("wrote %s" % out)


if __name__ == "__main__":
    main()
