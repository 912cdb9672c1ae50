#!/usr/bin/python3
"""The models of bench/bench_models.cpp in PyTorch: median training step (zero_grad, forward in
train mode, cross-entropy, backward, Adam step, loss.item()) and inference batch (eval mode,
no_grad), synthetic data. 2-D convolution models run in NCHW and channels_last and keep the
faster in a short probe (printed); the Conv1D model runs in NCW.

The founding model is torch_seed.py's (weight-standardized convolutions).
Prints "RESULT <model> <threads> <train ms> <infer ms> <layout>" lines read by
bench/compare_models.sh.
Usage: /usr/bin/python3 bench/reference/torch_models.py [--steps N] [--threads 1,2] [--only a,b]
"""
import argparse
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torch_blas import torch_blas
except ImportError as e:  # optional: never needed by the tests
    print(f"torch_models.py: PyTorch is not available ({e}); install python3-torch. Skipping.")
    sys.exit(3)

nn = torch.nn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_seed import Model as Founding  # noqa: E402


def glorot(m):
    for mod in m.modules():  # Keras defaults: glorot_uniform kernels, zero biases
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(mod.weight)
            nn.init.zeros_(mod.bias)
    return m


def mlp():
    return glorot(nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                nn.Linear(512, 10)))


def vgg():
    def conv(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.ReLU()]
    return glorot(nn.Sequential(*conv(3, 32), *conv(32, 32), nn.MaxPool2d(2), *conv(32, 64),
                                *conv(64, 64), nn.MaxPool2d(2), *conv(64, 128), nn.MaxPool2d(2),
                                nn.Flatten(), nn.Linear(4 * 4 * 128, 256), nn.ReLU(),
                                nn.Linear(256, 10)))


def conv1d_net():
    return glorot(nn.Sequential(nn.Conv1d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
                                nn.Conv1d(16, 32, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(),
                                nn.Linear(15 * 32, 3)))


# name -> (sample shape in PyTorch layout, classes, batch, factory, 2-D convolutions?)
CASES = [
    ("founding_b32", (1, 28, 28), 10, 32, Founding, True),
    ("founding_b128", (1, 28, 28), 10, 128, Founding, True),
    ("founding_b512", (1, 28, 28), 10, 512, Founding, True),
    ("mlp_b128", (784,), 10, 128, mlp, False),
    ("vgg_b64", (3, 32, 32), 10, 64, vgg, True),
    ("conv1d_b32", (1, 64), 3, 32, conv1d_net, False),
]


def measure(factory, sample, classes, batch, fmt, steps, warmup=5, inference=True):
    torch.manual_seed(1337)
    model = factory()
    if fmt is not None:
        model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    g = torch.Generator().manual_seed(7)
    pool = 2048
    x = torch.rand(pool, *sample, generator=g)
    y = torch.randint(0, classes, (pool,), generator=g)

    def step():
        idx = torch.randint(0, pool, (batch,), generator=g)
        xb = x[idx]
        if fmt is not None:
            xb = xb.contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), y[idx])
        loss.backward()
        opt.step()
        loss.item()

    model.train()
    for _ in range(warmup):
        step()
    t = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        t.append(time.perf_counter() - t0)
    if not inference:
        return statistics.median(t), None
    model.eval()
    xb = x[:batch] if fmt is None else x[:batch].contiguous(memory_format=fmt)
    ti = []
    with torch.no_grad():
        for i in range(steps + 5):
            t0 = time.perf_counter()
            F.softmax(model(xb), -1)[0, 0].item()
            if i >= 5:
                ti.append(time.perf_counter() - t0)
    return statistics.median(t), statistics.median(ti)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    torch.set_num_interop_threads(1)
    print(f"torch {torch.__version__}: median training step and inference batch of {args.steps} "
          f"steps; BLAS: {torch_blas()}")
    print(f"{'model':<16} {'threads':>8} {'train ms':>10} {'infer ms':>10}  layout")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, sample, classes, batch, factory, conv2d in CASES:
            if only and name not in only:
                continue
            options = ([("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)]
                       if conv2d else [("-", None)])
            if len(options) > 1:  # a short probe picks the layout, then the full measurement
                probe = [measure(factory, sample, classes, batch, fmt, 3, 2, False)[0] for _, fmt in options]
                options = [options[probe.index(min(probe))]]
            label, fmt = options[0]
            tr, inf = measure(factory, sample, classes, batch, fmt, args.steps)
            print(f"{name:<16} {threads:>8} {tr * 1e3:10.3f} {inf * 1e3:10.3f}  {label}")
            print(f"RESULT {name} {threads} {tr * 1e3:.4f} {inf * 1e3:.4f} {label}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
