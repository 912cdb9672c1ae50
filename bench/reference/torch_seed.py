#!/usr/bin/python3
"""The founding model (examples/standardized_conv2d_mnist.cpp) in PyTorch, for comparison.

Same layers as the Keras recipe: StandardizedConv2D(32, 3x3) [the call() override: conv + bias,
no activation], MaxPool 2x2, StandardizedConv2D(64, 3x3) + relu [the convolution_op override],
MaxPool 2x2, Flatten, Dropout(0.5), Dense(10) + softmax, categorical cross-entropy, Adam(lr 1e-3,
eps 1e-7), batch 128. Weight standardization over (in, kh, kw) per output channel.

Runs on 2 threads (override with --threads), tries NCHW and channels_last and keeps the faster
(PyTorch's best configuration). Run it with GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:
glibc.malloc.trim_threshold=1073741824 (bench/compare.sh sets it). Data: MNIST IDX files from
$XTAPE_DATA_DIR/mnist (or ~/.cache/xtape/mnist), synthetic when absent.

Prints a table and "RESULT key value" lines read by bench/compare.sh.
Usage: /usr/bin/python3 bench/reference/torch_seed.py [--steps N] [--threads T] [--epoch]
"""
import argparse
import gzip
import os
import resource
import statistics
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # optional: never needed by the tests
    print(f"torch_seed.py: PyTorch is not available ({e}); install python3-torch "
          "(apt-get install -y python3-torch) and run with /usr/bin/python3. Skipping.")
    sys.exit(3)

BATCH = 128
TRAIN_N = 54000


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_data(synthetic):
    if not synthetic:
        base = os.environ.get("XTAPE_DATA_DIR", os.path.expanduser("~/.cache/xtape"))
        d = os.path.join(base, "mnist")
        for suffix in ("", ".gz"):
            xi = os.path.join(d, "train-images-idx3-ubyte" + suffix)
            yi = os.path.join(d, "train-labels-idx1-ubyte" + suffix)
            if os.path.exists(xi) and os.path.exists(yi):
                x = read_idx(xi).astype(np.float32) / 255.0
                y = read_idx(yi).astype(np.int64)
                return torch.from_numpy(x).reshape(-1, 1, 28, 28), torch.from_numpy(y), True
        print(f"MNIST not found in {d}; using synthetic data")
    g = torch.Generator().manual_seed(1337)
    return torch.rand(60000, 1, 28, 28, generator=g), torch.randint(0, 10, (60000,), generator=g), False


def standardize(w):
    # Keras kernel (kh, kw, in, out) standardized over axes (0, 1, 2) = torch (out, in, kh, kw)
    # over (1, 2, 3); population variance, eps 1e-10 inside the sqrt.
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    var = ((w - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    return (w - mean) / torch.sqrt(var + 1e-10)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 32, 3)
        self.conv2 = torch.nn.Conv2d(32, 64, 3)
        self.dense = torch.nn.Linear(5 * 5 * 64, 10)
        for m in (self.conv1, self.conv2, self.dense):  # Keras defaults: glorot_uniform, zeros
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)

    def forward(self, x):
        # conv1: the call() override adds the bias and applies no activation.
        x = F.conv2d(x, standardize(self.conv1.weight), self.conv1.bias)
        x = F.max_pool2d(x, 2)
        # conv2: the convolution_op override keeps Conv2D.call: bias + relu.
        x = F.relu(F.conv2d(x, standardize(self.conv2.weight), self.conv2.bias))
        x = F.max_pool2d(x, 2)
        # Keras flattens NHWC; the order does not change the cost.
        x = torch.flatten(x, 1)
        x = F.dropout(x, 0.5, self.training)
        return self.dense(x)  # logits; softmax + cross-entropy fused in the loss


def measure(x, y, memory_format, steps, epoch):
    torch.manual_seed(1337)
    model = Model().to(memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    model.train()
    gen = torch.Generator().manual_seed(7)

    def step(idx):
        xb = x[idx].contiguous(memory_format=memory_format)
        yb = y[idx]
        opt.zero_grad(set_to_none=True)
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        loss.backward()
        opt.step()
        loss.item()
        (out.argmax(1) == yb).float().mean().item()

    for _ in range(10):
        step(torch.randint(0, TRAIN_N, (BATCH,), generator=gen))
    times = []
    for _ in range(steps):
        idx = torch.randint(0, TRAIN_N, (BATCH,), generator=gen)
        t0 = time.perf_counter()
        step(idx)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    # Inference per batch (no grad, eval mode).
    model.eval()
    xb = x[TRAIN_N:TRAIN_N + BATCH].contiguous(memory_format=memory_format)
    yb = y[TRAIN_N:TRAIN_N + BATCH]
    inf = []
    with torch.no_grad():
        for i in range(steps + 5):
            t0 = time.perf_counter()
            F.cross_entropy(model(xb), yb).item()
            if i >= 5:
                inf.append(time.perf_counter() - t0)
    model.train()
    epoch_s = None
    if epoch:
        perm = torch.randperm(TRAIN_N, generator=gen)
        t0 = time.perf_counter()
        for s in range(0, TRAIN_N, BATCH):
            step(perm[s:s + BATCH])
        epoch_s = time.perf_counter() - t0
    return step_s, statistics.median(inf), epoch_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epoch", action="store_true", help="also time one real epoch (422 steps)")
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y, real = load_data(args.synthetic)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, "
          f"{'MNIST' if real else 'synthetic'} data, {args.steps} timed steps; "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}")
    results = {}
    for name, fmt in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
        results[name] = measure(x, y, fmt, args.steps, args.epoch)
    print(f"{'layout':<14} {'step ms':>9} {'epoch s(proj)':>14} {'epoch s':>9} {'infer us/smp':>13}")
    for name, (st, inf, ep) in results.items():
        eps = f"{ep:.2f}" if ep is not None else "-"
        print(f"{name:<14} {st * 1e3:9.2f} {st * 422:14.2f} {eps:>9} {inf * 1e6 / BATCH:13.1f}")
    best = min(results, key=lambda k: results[k][0])
    st, inf, ep = results[best]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"best layout: {best}; peak RSS {rss:.0f} MB")
    print(f"RESULT torch_layout {best}")
    print(f"RESULT torch_step_ms {st * 1e3:.3f}")
    if ep is not None:
        print(f"RESULT torch_epoch_s {ep:.3f}")
    print(f"RESULT torch_peak_rss_mb {rss:.0f}")


if __name__ == "__main__":
    main()
