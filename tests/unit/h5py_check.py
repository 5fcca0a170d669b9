#!/usr/bin/env python3
"""Reads a tessera packed-data file (format v1, docs/data-format.md) with h5py alone and checks it against
the spec: every dataset's dtype and shape, the attributes, the offsets, and a few values the C++ test
expects. It proves the file is plain HDF5 that Python tooling can use without tessera.

usage: h5py_check.py FILE EXPECTED_JSON_FILE     (prints "ok" and exits 0, or names what is wrong)
"""
import json
import sys

import h5py
import numpy as np


def fail(message):
    print(f"h5py_check: {message}")
    sys.exit(1)


def expect(cond, message):
    if not cond:
        fail(message)


def text(value):
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def main():
    path = sys.argv[1]
    with open(sys.argv[2]) as f:
        want = json.load(f)
    with h5py.File(path, "r") as f:
        a = f.attrs
        expect(int(a["format_version"]) == 1, f"format_version {a['format_version']}")
        for key in ("seq_length", "num_rows", "num_samples", "num_tokens", "num_vision_items", "vision_patch_dim",
                    "truncated", "dropped"):
            expect(int(a[key]) == want[key], f"attribute {key} = {a[key]}, expected {want[key]}")
        expect(text(a["tokenizer_sha256"]) == want["tokenizer_sha256"], "tokenizer_sha256")
        expect(text(a["packing_policy"]) == want["packing_policy"], "packing_policy")
        json.loads(text(a["source_checksums"]))  # must be JSON text
        expect(text(a["created_by"]) != "", "created_by is empty")
        rows, samples, tokens = want["num_rows"], want["num_samples"], want["num_tokens"]
        items, patch_dim = want["num_vision_items"], want["vision_patch_dim"]
        spec = {
            "tokens": (np.int32, (tokens,)),
            "labels": (np.uint8, (tokens,)),
            "position_ids": (np.int32, (tokens,)),
            "row_offsets": (np.int64, (rows + 1,)),
            "sample_offsets": (np.int64, (samples + 1,)),
            "row_sample_offsets": (np.int64, (rows + 1,)),
            "sample_source_index": (np.uint64, (samples,)),
            "vision_grid_thw": (np.int64, (items, 3)),
            "vision_patch_offsets": (np.int64, (items + 1,)),
            "vision_token_offsets": (np.int64, (items,)),
            "vision_token_counts": (np.int64, (items,)),
            "vision_is_video": (np.uint8, (items,)),
            "row_vision_offsets": (np.int64, (rows + 1,)),
        }
        for name, (dtype, shape) in spec.items():
            expect(name in f, f"dataset {name} missing")
            d = f[name]
            expect(d.dtype == dtype, f"dataset {name} has dtype {d.dtype}, expected {np.dtype(dtype)}")
            expect(d.shape == shape, f"dataset {name} has shape {d.shape}, expected {shape}")
        patches = f["vision_patches"]
        expect(patches.dtype == np.uint16 and patches.ndim == 2, f"vision_patches {patches.dtype} {patches.shape}")
        expect(items == 0 or patches.shape[1] == patch_dim, f"vision_patches shape {patches.shape}")

        row_offsets = f["row_offsets"][:]
        sample_offsets = f["sample_offsets"][:]
        row_sample_offsets = f["row_sample_offsets"][:]
        expect(row_offsets[0] == 0 and row_offsets[-1] == tokens, "row_offsets ends")
        expect(np.all(np.diff(row_offsets) > 0), "row_offsets not increasing")
        expect(np.all(np.diff(row_offsets) <= want["seq_length"]), "a row is longer than seq_length")
        expect(np.array_equal(sample_offsets[row_sample_offsets], row_offsets), "rows and samples disagree")
        positions = f["position_ids"][:]
        starts = np.repeat(sample_offsets[:-1], np.diff(sample_offsets))
        expect(np.array_equal(positions, np.arange(tokens) - starts), "position_ids do not restart per sample")
        expect(np.all(f["labels"][:] <= 1), "labels not 0/1")
        grid = f["vision_grid_thw"][:]
        patch_offsets = f["vision_patch_offsets"][:]
        expect(np.array_equal(np.prod(grid, axis=1), np.diff(patch_offsets)) if items else True, "grid vs patches")

        row0 = f["tokens"][row_offsets[0]:row_offsets[1]]
        expect(row0.tolist() == want["row0_tokens"], "row 0 tokens differ")
        bits_sum = int(patches[:].astype(np.uint64).sum()) if items else 0
        expect(bits_sum == want["patch_bits_sum"], f"patch bits sum {bits_sum}, expected {want['patch_bits_sum']}")
    print("ok")


if __name__ == "__main__":
    main()
