"""The training step of bench_volume in PyTorch (NCDHW): Conv3d(same) + relu + MaxPool3d(2),
sum loss, zero_grad, backward; median over --steps steps. Offline reference only."""
import argparse
import statistics
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=10)
p.add_argument("--threads", default="1,2")
p.add_argument("--shape", default="4,16,32,32,8")
p.add_argument("--filters", type=int, default=16)
p.add_argument("--kernel", type=int, default=3)
p.add_argument("--input-grad", type=int, default=0)
a = p.parse_args()
n, d, h, w, c = map(int, a.shape.split(","))
torch.manual_seed(1)
x = (torch.rand(n, c, d, h, w) * 2 - 1).requires_grad_(bool(a.input_grad))
conv = torch.nn.Conv3d(c, a.filters, a.kernel, padding="same")
pool = torch.nn.MaxPool3d(2)
print(f"torch {torch.__version__}: Conv3d({a.filters}, {a.kernel}, same) + relu + MaxPool3d(2)"
      f" on NDHWC ({n}, {d}, {h}, {w}, {c})")
for t in map(int, a.threads.split(",")):
    torch.set_num_threads(t)
    times = []
    for s in range(a.steps + 2):
        t0 = time.perf_counter()
        conv.zero_grad()
        x.grad = None
        loss = pool(torch.relu(conv(x))).sum()
        loss.backward()
        _ = conv.weight.grad[0, 0, 0, 0, 0].item()
        t1 = time.perf_counter()
        if s >= 2:
            times.append((t1 - t0) * 1e3)
    print(f"RESULT step_ms_{t}threads {statistics.median(times):.2f}")
