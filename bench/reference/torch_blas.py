"""Which BLAS library Debian's PyTorch really calls (it links libblas.so.3, which the
libblas.so.3 alternative resolves to the reference BLAS or OpenBLAS)."""
import os


def torch_blas():
    """The BLAS shared objects mapped into this process after a float32 matmul, resolved."""
    import torch

    a = torch.ones(64, 64)
    (a @ a).sum().item()
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if "blas" in name or "openblas" in path:
                libs.add(os.path.realpath(path))
    if not libs:
        return "none found in /proc/self/maps"
    kind = "OpenBLAS" if any("openblas" in p for p in libs) else "reference BLAS (netlib)"
    return f"{kind}: {', '.join(sorted(libs))}"


if __name__ == "__main__":
    print(torch_blas())
