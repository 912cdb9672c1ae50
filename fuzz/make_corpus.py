#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (committed under fuzz/corpus/; rerun to refresh).

corpus/read_idx: valid IDX files, plain and gzip-compressed, of ranks 1 to 3.
corpus/safetensors: a weights file and a full checkpoint for the model of fuzz_safetensors.cpp
(dense 3 -> 4, dropout, dense_1 4 -> 2, Adam), laid out as Sequential::save_weights and
save_checkpoint write them, plus a file in the layout of other safetensors writers.
"""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def idx(shape, payload):
    head = bytes([0, 0, 8, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)
    return head + bytes(payload)


def safetensors(tensors, metadata=None, pad=True):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        shape, values = tensors[name]
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write(folder, name, blob):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(blob)


def main():
    d = os.path.join(HERE, "corpus", "read_idx")
    write(d, "labels.idx", idx([10], [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]))
    write(d, "images.idx", idx([2, 3, 3], range(18)))
    write(d, "images.idx.gz", gzip.compress(idx([2, 4, 4], range(32)), mtime=0))
    write(d, "empty-axis.idx", idx([0, 28], []))

    def ramp(n, scale):
        return [scale * (i - n / 2) for i in range(n)]

    weights = {
        "dense/kernel": ([3, 4], ramp(12, 0.1)),
        "dense/bias": ([4], ramp(4, 0.01)),
        "dense_1/kernel": ([4, 2], ramp(8, 0.2)),
        "dense_1/bias": ([2], [0.0, 0.5]),
    }
    d = os.path.join(HERE, "corpus", "safetensors")
    write(d, "weights.safetensors", safetensors(weights, {"format": "xtape.weights"}))
    write(d, "other-writer.safetensors", safetensors(weights, None, pad=False))
    state = dict(weights)
    for var, (shape, values) in weights.items():
        state["optimizer/%s/momentum" % var] = (shape, [0.01] * len(values))
        state["optimizer/%s/velocity" % var] = (shape, [0.001] * len(values))
    words = " ".join("%016x" % (0x9E3779B97F4A7C15 * (i + 1) % 2**64) for i in range(4))
    meta = {
        "format": "xtape.checkpoint",
        "epoch": "2",
        "optimizer": "adam",
        "optimizer.iterations": "6",
        "optimizer.learning_rate": "0.001",
        "rng.shuffle": words,
        "rng.global": words,
        "state/dropout/rng": words,
    }
    write(d, "checkpoint.safetensors", safetensors(state, meta))


if __name__ == "__main__":
    main()
