#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (committed under fuzz/corpus/; rerun to refresh).

corpus/read_idx: valid IDX files, plain and gzip-compressed, of ranks 1 to 3, two gzip
members, and a gzip stream followed by garbage.
corpus/safetensors: a weights file and a full checkpoint for the model of fuzz_safetensors.cpp
(dense 3 -> 4, dropout, dense_1 4 -> 2, Adam), laid out as Sequential::save_weights and
save_checkpoint write them, a file in the layout of other safetensors writers, and the lax
forms the reader refuses (a byte order mark, a NUL byte, a repeated field).
corpus/read_idx_big, corpus/safetensors_big: recipes of the size-aware targets
(fuzz_read_idx_big.cpp, fuzz_safetensors_big.cpp) for large claims, compression ratios near
deflate's limit, entry counts around the cap, long shapes and long strings.
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
    whole = idx([2, 4, 4], range(32))
    write(d, "two-members.idx.gz", gzip.compress(whole[:9], mtime=0) + gzip.compress(whole[9:], mtime=0))
    write(d, "garbage-after-gzip.idx.gz", gzip.compress(whole, mtime=0) + b"JUNK")

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
    good = safetensors(weights, {"format": "xtape.weights"})
    n = struct.unpack("<Q", good[:8])[0]
    text, data = good[8:8 + n], good[8 + n:]

    def with_header(t):
        return struct.pack("<Q", len(t)) + t + data

    write(d, "bom.safetensors", with_header(b"\xef\xbb\xbf" + text))
    write(d, "nul.safetensors", with_header(text.rstrip(b" ") + b"\0" + b" " * (len(text) - len(text.rstrip(b" ")))))
    write(d, "repeated-dtype.safetensors", with_header(text.replace(b'"dtype":"F32"', b'"dtype":"I32","dtype":"F32"', 1)))

    # Recipes of fuzz_safetensors_big: e (1 byte), m (2 bytes), then prefix 0xFF unit 0xFF
    # suffix 0xFF data; the unit is repeated 2^e + m mod 2^e times.
    def recipe(count, prefix, unit, suffix, data=b""):
        e = count.bit_length() - 1
        head = bytes([e]) + struct.pack("<H", (count - (1 << e)) & 0xFFFF)
        return head + b"\xff".join([prefix, unit, suffix, data])

    entry = b'"t#":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},'
    last = b'"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'
    d = os.path.join(HERE, "corpus", "safetensors_big")
    write(d, "entries-1000", recipe(1000, b"{", entry, last))
    write(d, "entries-9000", recipe(9000, b"{", entry, last))
    write(d, "metadata-40000", recipe(40000, b'{"__metadata__":{', b'"#":"",', b'"end":"v"}}'))
    write(d, "rank-64", recipe(63, b'{"a":{"dtype":"U8","shape":[', b"1,", b'1],"data_offsets":[0,1]}}', b"x"))
    write(d, "rank-65", recipe(64, b'{"a":{"dtype":"U8","shape":[', b"1,", b'1],"data_offsets":[0,1]}}', b"x"))
    write(d, "string-500k", recipe(30000, b'{"__metadata__":{"k":"', b"v" * 16, b'"}}'))
    write(d, "repeated-fields", recipe(3000, b"{", b'"t#":{"dtype":"F32","shape":[0],"shape":[0],"data_offsets":[0,0]},', last))
    write(d, "deep", recipe(100000, b'{"a":', b"[", b"]"))

    # Recipes of fuzz_read_idx_big: members (bits 0-5; bit 7: raw head), fill, head 0xFF tail.
    def idx_recipe(members, fill, head, tail=None, raw=False):
        out = bytes([members | (0x80 if raw else 0), fill]) + head
        return out + (b"\xff" + tail if tail is not None else b"")

    d = os.path.join(HERE, "corpus", "read_idx_big")
    write(d, "zeros-8mib", idx_recipe(8, 0, idx([8, 1 << 20], [])))
    write(d, "sevens-63mib", idx_recipe(63, 7, idx([63, 1024, 1024], [])))
    write(d, "claim-short", idx_recipe(8, 0, idx([4, 1 << 20], [])))
    write(d, "claim-long", idx_recipe(8, 0, idx([16, 1 << 20], [])))
    write(d, "claim-beyond-ratio", idx_recipe(2, 0, idx([1 << 20, 1 << 20], [])))
    write(d, "garbage-after", idx_recipe(4, 0, idx([4, 1 << 20], []), b"JUNK"))
    write(d, "raw-head", idx_recipe(1, 0, gzip.compress(idx([1 << 20, 2], []), mtime=0), raw=True))


if __name__ == "__main__":
    main()
