#!/usr/bin/python3
"""PyTorch's equivalents of the layers of bench/bench_layers.cpp, on the same shapes.

Each case times the training step of one layer (module in train mode, forward + backward of a
fixed random output gradient, the input's gradient included, gradients zeroed first), median of
--steps steps after --warmup. Keras layers are NHWC / NWC; PyTorch's are NCHW / NCW, so each
case runs in PyTorch's own layout (the transposes are not timed). 4-D cases are timed in both
NCHW and channels_last and the faster is kept (printed in the layout column).

Prints a table and "RESULT <case> <threads> <ms> <layout>" lines read by bench/compare_layers.sh.
Usage: /usr/bin/python3 bench/reference/torch_layers.py [--steps N] [--warmup N] [--threads 1,2]
"""
import argparse
import statistics
import sys
import time

try:
    import torch
    from torch_blas import torch_blas
except ImportError as e:  # optional: never needed by the tests
    print(f"torch_layers.py: PyTorch is not available ({e}); install python3-torch. Skipping.")
    sys.exit(3)

nn = torch.nn


class Fn(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class Separable(nn.Module):  # Keras SeparableConv2D: depthwise (multiplier 1) then pointwise
    def __init__(self, c, filters):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.pw = nn.Conv2d(c, filters, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class EinsumDense(nn.Module):
    def __init__(self, eq, kshape, bshape):
        super().__init__()
        self.eq = eq
        self.w = nn.Parameter(torch.randn(*kshape) * 0.05)
        self.b = nn.Parameter(torch.zeros(*bshape))

    def forward(self, x):
        return torch.einsum(self.eq, x, self.w) + self.b


def gaussian_noise(x):
    return x + 0.1 * torch.randn_like(x)


# name -> (Keras-layout input shape, module factory). Names and shapes as in bench_layers.cpp.
# Keras defaults: BatchNormalization momentum 0.99 (torch momentum 0.01), epsilon 1e-3.
IMG, SMALL, SEQ, S1D = (32, 28, 28, 32), (32, 14, 14, 32), (32, 64, 256), (32, 128, 64)
CASES = [
    ("scale", IMG, lambda: Fn(lambda x: x * 2)),
    ("scale(rank-3)", SEQ, lambda: Fn(lambda x: x * 2)),
    ("BatchNormalization", IMG, lambda: nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)),
    ("Conv2D+BN+relu", IMG, lambda: nn.Sequential(nn.Conv2d(32, 32, 3, padding=1),
                                                  nn.BatchNorm2d(32, eps=1e-3, momentum=0.01),
                                                  nn.ReLU())),
    ("Conv2D(3x3,same)", IMG, lambda: nn.Conv2d(32, 32, 3, padding=1)),
    ("LayerNormalization", SEQ, lambda: nn.LayerNorm(256, eps=1e-3)),
    ("GroupNormalization", IMG, lambda: nn.GroupNorm(8, 32, eps=1e-3)),
    ("Conv2DTranspose", SMALL, lambda: nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1)),
    ("DepthwiseConv2D", IMG, lambda: nn.Conv2d(32, 32, 3, padding=1, groups=32)),
    ("SeparableConv2D", IMG, lambda: Separable(32, 64)),
    ("Conv1D(groups=4)", S1D, lambda: nn.Conv1d(64, 64, 3, padding=1, groups=4)),
    ("Conv1DTranspose", (32, 64, 32), lambda: nn.ConvTranspose1d(32, 32, 3, stride=2, padding=1, output_padding=1)),
    ("AveragePooling1D", S1D, lambda: nn.AvgPool1d(2)),
    ("AveragePooling2D", IMG, lambda: nn.AvgPool2d(2)),
    ("MaxPooling2D", IMG, lambda: nn.MaxPool2d(2)),
    ("GlobalAveragePooling2D", IMG, lambda: Fn(lambda x: x.mean((2, 3)))),
    ("UpSampling2D(nearest)", SMALL, lambda: nn.Upsample(scale_factor=2, mode="nearest")),
    ("UpSampling2D(bilinear)", SMALL, lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)),
    ("ZeroPadding2D", IMG, lambda: nn.ZeroPad2d(1)),
    ("Dense(rank-3)", SEQ, lambda: nn.Linear(256, 256)),
    ("EinsumDense(abc,cd->abd)", SEQ, lambda: EinsumDense("abc,cd->abd", (256, 256), (256,))),
    ("EinsumDense(abc,cde->abde)", SEQ, lambda: EinsumDense("abc,cde->abde", (256, 8, 32), (8, 32))),
    ("Activation(relu)", SEQ, lambda: nn.ReLU()),
    ("Activation(gelu)", SEQ, lambda: nn.GELU()),
    ("Activation(silu)", SEQ, lambda: nn.SiLU()),
    ("Activation(mish)", SEQ, lambda: nn.Mish()),
    ("Activation(elu)", SEQ, lambda: nn.ELU()),
    ("Activation(leaky_relu)", SEQ, lambda: nn.LeakyReLU(0.2)),
    ("Activation(softplus)", SEQ, lambda: nn.Softplus()),
    ("Activation(sigmoid)", SEQ, lambda: nn.Sigmoid()),
    ("Activation(tanh)", SEQ, lambda: nn.Tanh()),
    ("Softmax", SEQ, lambda: nn.Softmax(-1)),
    ("Dropout(0.5)", SEQ, lambda: nn.Dropout(0.5)),
    ("GaussianNoise(0.1)", SEQ, lambda: Fn(gaussian_noise)),
]


def torch_shape(shape):
    """Keras NHWC / NWC / (N, T, C) -> PyTorch NCHW / NCW (sequence cases stay (N, T, C))."""
    if len(shape) == 4:
        n, h, w, c = shape
        return (n, c, h, w)
    return shape


def time_case(factory, shape, fmt, steps, warmup, conv1d):
    torch.manual_seed(5)
    m = factory()
    m.train()
    if fmt is not None:
        m = m.to(memory_format=fmt)
    tshape = torch_shape(shape)
    if conv1d:  # Keras (N, W, C) -> PyTorch (N, C, W)
        tshape = (shape[0], shape[2], shape[1])
    x = torch.rand(*tshape) * 2 - 1
    if fmt is not None:
        x = x.contiguous(memory_format=fmt)
    x.requires_grad_(True)
    with torch.no_grad():
        y0 = m(x)
    gy = torch.rand_like(y0) * 2 - 1
    params = [p for p in m.parameters() if p.requires_grad]

    def step():
        for p in params:
            p.grad = None
        x.grad = None
        y = m(x)
        y.backward(gy)

    for _ in range(warmup):
        step()
    t = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    torch.set_num_interop_threads(1)
    print(f"torch {torch.__version__}: forward (train) + backward, median of {args.steps} steps "
          f"after {args.warmup} warm-up; BLAS: {torch_blas()}")
    print(f"{'layer':<28} {'input (Keras)':<16} {'threads':>8} {'ms':>10}  layout")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, shape, factory in CASES:
            if only and not any(name.startswith(o) for o in only):
                continue
            conv1d = name.startswith(("Conv1D", "AveragePooling1D"))
            if len(shape) == 4:
                options = [("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)]
            else:
                options = [("NCW" if conv1d else "NTC", None)]
            best = None
            for label, fmt in options:
                t = time_case(factory, shape, fmt, args.steps, args.warmup, conv1d)
                if best is None or t < best[0]:
                    best = (t, label)
            ms, label = best[0] * 1e3, best[1]
            dims = "x".join(str(d) for d in shape)
            print(f"{name:<28} {dims:<16} {threads:>8} {ms:10.3f}  {label}")
            print(f"RESULT {name} {threads} {ms:.4f} {label}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
