#!/usr/bin/env python3
"""Golden data for tessera's Qwen2-VL vision preprocessing (tests/unit/vision_test.cpp).

Draws small test images (PNG of every colour type and bit depth, interlaced, with tRNS and palettes; JPEG
baseline / progressive / gray / CMYK), then records what PIL and transformers compute from them:

  expected/decode/<image>.<alpha>.rgb.gz   PIL decode -> RGB bytes (alpha "drop": .convert("RGB");
                                           "over_white": transformers 5's convert_to_rgb)
  expected/resize/<case>.rgb.gz           PIL Image.resize(..., BICUBIC) of a decoded image
  expected/patches/<case>.f32.gz          transformers' Qwen2VLImageProcessor pixel_values (float32 LE)
  manifest.json                           every case: inputs, settings, grid_thw, files, versions

CI never runs this. Run it in two environments (see README.md):

  python generate.py            with transformers 4.57.x (the slow Qwen2VLImageProcessor, which still has the
                                video path and drops alpha) -- writes everything
  python generate.py --v5       with transformers 5.x (Qwen2VLImageProcessorPil) -- adds the over_white
                                cases for images with transparency, and checks that every other case is
                                unchanged in transformers 5.
"""

import argparse
import gzip
import hashlib
import io
import json
import platform
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
EXPECTED = HERE / "expected"
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


# ---------------------------------------------------------------------------------------------------------
# A tiny PNG writer: full control over colour type, bit depth, PLTE, tRNS and Adam7 interlacing, which PIL's
# encoder does not give.

def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _pack_row(samples, bit_depth):
    flat = samples.reshape(-1)
    if bit_depth == 16:
        return flat.astype(">u2").tobytes()
    if bit_depth == 8:
        return flat.astype(np.uint8).tobytes()
    per = 8 // bit_depth
    out = bytearray((len(flat) + per - 1) // per)
    for i, v in enumerate(flat):
        out[i // per] |= int(v) << (8 - bit_depth * (i % per + 1))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filter_rows(rows, bpp, filters):
    """PNG row filters; `filters` picks each row's type (cycled), so every filter type gets decoded."""
    out = b""
    prev = bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        kind = filters[i % len(filters)]
        cur = np.frombuffer(row, dtype=np.uint8).astype(np.int64)
        up = np.frombuffer(prev, dtype=np.uint8).astype(np.int64)
        left = np.concatenate([np.zeros(bpp, np.int64), cur[:-bpp]]) if len(cur) > bpp else np.zeros(len(cur), np.int64)
        upleft = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]]) if len(up) > bpp else np.zeros(len(up), np.int64)
        if kind == 0:
            f = cur
        elif kind == 1:
            f = cur - left
        elif kind == 2:
            f = cur - up
        elif kind == 3:
            f = cur - (left + up) // 2
        else:
            f = cur - np.array([_paeth(a, b, c) for a, b, c in zip(left, up, upleft)], dtype=np.int64)
        out += bytes([kind]) + (f % 256).astype(np.uint8).tobytes()
        prev = row
    return out


def write_png(path, samples, bit_depth, color_type, plte=None, trns=None, interlace=False, filters=(0, 1, 2, 3, 4)):
    """samples: integer array [H, W, C] of raw sample values (palette indices for colour type 3)."""
    h, w = samples.shape[:2]
    bpp = max(1, samples.shape[2] * bit_depth // 8)
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            raw += _filter_rows([_pack_row(row, bit_depth) for row in sub], bpp, filters)
    else:
        raw = _filter_rows([_pack_row(row, bit_depth) for row in samples], bpp, filters)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, int(interlace)))
    if plte is not None:
        data += _chunk(b"PLTE", bytes(plte))
    if trns is not None:
        data += _chunk(b"tRNS", bytes(trns))
    data += _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    path.write_bytes(data)


# ---------------------------------------------------------------------------------------------------------
# Test pictures: smooth gradients, a few hard edges and some noise, so that resampling and JPEG have
# something to do in every region.

def picture(h, w, seed, channels=3):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(channels):
        fx, fy, ph = rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.3), rng.uniform(0, 6.3)
        v = 127.5 + 90 * np.sin(fx * x + ph) * np.cos(fy * y + ph / 2) + 30 * (x / max(w - 1, 1) - 0.5)
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, max(4, min(h, w) / 2))
        v = np.where((y - cy) ** 2 + (x - cx) ** 2 < r * r, 255 - v, v)  # a disc with a hard edge
        v += rng.normal(0, 8, size=v.shape)
        planes.append(v)
    return np.clip(np.stack(planes, axis=-1), 0, 255).round().astype(np.uint8)


def smooth_picture(h, w, seed):
    """Large but compressible: gradients and bands only (for the big PNG)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / (w - 1)
    g = 255 * y / (h - 1)
    b = np.where(((x // 64) + (y // 48)) % 2 == 0, 40.0, 215.0)
    b += 20 * np.sin(x / 17.0 + rng.uniform(0, 3))
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).round().astype(np.uint8)


def make_images():
    IMAGES.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    made = {}

    def png(name, *args, **kwargs):
        write_png(IMAGES / name, *args, **kwargs)
        made[name] = "png"

    def jpeg(name, im, **kwargs):
        im.save(IMAGES / name, format="JPEG", **kwargs)
        made[name] = "jpeg"

    rgb = picture(45, 67, 1)
    png("rgb8_67x45.png", rgb, 8, 2)
    png("rgb8_interlaced_53x38.png", picture(38, 53, 2), 8, 2, interlace=True)
    alpha = np.concatenate([np.zeros((38, 10)), np.tile(np.linspace(0, 255, 40), (38, 1))], axis=1).round()
    png("rgba8_50x38.png", np.dstack([picture(38, 50, 3), alpha.astype(np.uint8)]), 8, 6)
    rgba16 = np.dstack([picture(29, 31, 4).astype(np.uint16) * 257 + rng.integers(0, 257, (29, 31, 3)),
                        np.tile(np.linspace(0, 65535, 31), (29, 1)).round()]).astype(np.uint16)
    png("rgba16_31x29.png", rgba16, 16, 6)
    rgb16 = picture(22, 30, 5).astype(np.uint16) * 256 + rng.integers(0, 256, (22, 30, 3))
    # PIL compares a pixel's high bytes with the tRNS colour's low bytes (0x01, 0x02, 0x03): the exact tRNS
    # colour stays opaque, while (0x01.., 0x02.., 0x03..) becomes transparent.
    rgb16[0, :5] = [0x1201, 0x3402, 0x5603]
    rgb16[1, :5] = [0x0111, 0x0222, 0x0333]
    png("rgb16_trns_30x22.png", rgb16, 16, 2, trns=struct.pack(">HHH", 0x1201, 0x3402, 0x5603))
    gray = picture(29, 41, 6, channels=1)
    gray[0, :3, 0] = 77
    png("gray8_trns_41x29.png", gray, 8, 0, trns=struct.pack(">H", 77))
    g16 = (picture(23, 37, 7, channels=1).astype(np.uint16) * 3)  # 0..765: PIL clips everything above 255
    g16[0, :4, 0] = [232, 1000, 255, 256]
    png("gray16_trns_37x23.png", g16, 16, 0, trns=struct.pack(">H", 1000))  # PIL: low byte 232 is transparent
    png("gray1_33x21.png", (picture(21, 33, 8, channels=1) > 127).astype(np.uint8), 1, 0)
    png("gray2_interlaced_35x19.png", picture(19, 35, 9, channels=1) // 64, 2, 0, interlace=True)
    g4 = picture(17, 27, 10, channels=1) // 16
    png("gray4_trns_27x17.png", g4, 4, 0, trns=struct.pack(">H", 5))  # PIL compares 5 with 5*17: never
    plte = rng.integers(0, 256, 3 * 200).tolist()
    idx = (picture(31, 45, 11, channels=1).astype(np.int64) * 210 // 256).astype(np.uint8)  # 0..209: 200+ are past PLTE
    png("palette8_trns_45x31.png", idx, 8, 3, plte=plte, trns=rng.integers(0, 256, 150).tolist())
    idx4 = picture(26, 39, 12, channels=1) // 16
    trns4 = [255] * 16
    trns4[3] = 0  # one fully transparent entry: PIL stores it as an int index
    png("palette4_trns_39x26.png", idx4, 4, 3, plte=rng.integers(0, 256, 48).tolist(), trns=trns4)
    png("palette1_20x14.png", picture(14, 20, 13, channels=1) // 128, 1, 3, plte=[200, 30, 30, 20, 20, 220])
    la = np.dstack([picture(25, 34, 14, channels=1), picture(25, 34, 15, channels=1)])
    png("la8_34x25.png", la, 8, 4)
    la16 = la.astype(np.uint16) * 257
    png("la16_34x25.png", la16, 16, 4)
    png("tiny_12x9.png", picture(9, 12, 16), 8, 2)
    png("wide_300x20.png", picture(20, 300, 17), 8, 2)
    png("large_1400x1000.png", smooth_picture(1000, 1400, 18), 8, 2, filters=(1,))

    photo = Image.fromarray(picture(71, 97, 20))
    jpeg("baseline420_97x71.jpg", photo, quality=90)
    jpeg("progressive422_97x71.jpg", photo, quality=80, progressive=True, subsampling=1)
    jpeg("baseline444_q75_64x48.jpg", Image.fromarray(picture(48, 64, 21)), quality=75, subsampling=0)
    jpeg("restart_odd_45x33.jpg", Image.fromarray(picture(33, 45, 22)), quality=85, restart_marker_rows=1)
    jpeg("gray_53x37.jpg", Image.fromarray(picture(37, 53, 23, channels=1)[..., 0], "L"), quality=85)
    cmyk = Image.fromarray(np.dstack([picture(30, 40, 24), picture(30, 40, 25, channels=1)]), "CMYK")
    jpeg("cmyk_40x30.jpg", cmyk, quality=90)
    jpeg("big_420_640x480.jpg", Image.fromarray(picture(480, 640, 26)), quality=70)

    for i in range(5):  # a short video: a disc moving over a fixed background, each frame a PNG
        frame = picture(43, 61, 30).astype(np.int64)
        y, x = np.mgrid[0:43, 0:61]
        frame[(y - 21) ** 2 + (x - 8 - 11 * i) ** 2 < 64] = [250, 40 * i, 20]
        png(f"video_frame{i}_61x43.png", frame.astype(np.uint8), 8, 2)
    return made


# ---------------------------------------------------------------------------------------------------------

def convert_over_white(im):
    """transformers 5's convert_to_rgb for PIL images."""
    has_alpha = "A" in im.getbands() or im.info.get("transparency") is not None
    if not has_alpha:
        return im.convert("RGB")
    im = im.convert("RGBA")
    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, im).convert("RGB")


def has_transparency(path):
    im = Image.open(path)
    return "A" in im.getbands() or im.info.get("transparency") is not None


def write_gz(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0, compresslevel=9) as f:  # mtime 0: reproducible bytes
        f.write(data)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# The processor cases: (case name, image, settings). Settings default to transformers' defaults.
SMALL = 28 * 28 * 4
# Small settings for the cases that only add a decode path (1 or 2 merge groups of patches), to keep the
# committed data small.
MINI = {"min_pixels": 28 * 28, "max_pixels": 28 * 28 * 2}
PATCH_CASES = [
    ("rgb8_default", "rgb8_67x45.png", {}),
    ("rgb8_min6", "rgb8_67x45.png", {"min_pixels": 28 * 28 * 6}),
    ("rgb8_interlaced_mini", "rgb8_interlaced_53x38.png", MINI),
    ("rgba8_default", "rgba8_50x38.png", {}),
    ("rgba16_mini", "rgba16_31x29.png", MINI),
    ("rgb16_trns_mini", "rgb16_trns_30x22.png", MINI),
    ("gray8_trns_mini", "gray8_trns_41x29.png", MINI),
    ("gray16_trns_mini", "gray16_trns_37x23.png", MINI),
    ("gray1_mini", "gray1_33x21.png", MINI),
    ("gray2_interlaced_mini", "gray2_interlaced_35x19.png", MINI),
    ("gray4_trns_mini", "gray4_trns_27x17.png", MINI),
    ("palette8_trns_default", "palette8_trns_45x31.png", {}),
    ("palette4_trns_mini", "palette4_trns_39x26.png", MINI),
    ("palette1_mini", "palette1_20x14.png", MINI),
    ("la8_mini", "la8_34x25.png", MINI),
    ("la16_mini", "la16_34x25.png", MINI),
    ("tiny_default", "tiny_12x9.png", {}),
    ("tiny_min12", "tiny_12x9.png", {"min_pixels": 28 * 28 * 12}),
    ("wide_default", "wide_300x20.png", {}),
    ("wide_max4", "wide_300x20.png", {"max_pixels": SMALL}),
    ("large_max8", "large_1400x1000.png", {"max_pixels": 28 * 28 * 8}),
    ("large_min_max_patch16", "large_1400x1000.png", {"min_pixels": 32 * 32 * 4, "max_pixels": 32 * 32 * 8, "patch_size": 16}),
    ("baseline420_default", "baseline420_97x71.jpg", {}),
    ("baseline420_merge1_t3", "baseline420_97x71.jpg", {"merge_size": 1, "temporal_patch_size": 3, "max_pixels": 14 * 14 * 12}),
    ("progressive422_default", "progressive422_97x71.jpg", {}),
    ("baseline444_mini", "baseline444_q75_64x48.jpg", MINI),
    ("restart_mini", "restart_odd_45x33.jpg", MINI),
    ("gray_jpeg_default", "gray_53x37.jpg", {}),
    ("cmyk_default", "cmyk_40x30.jpg", {}),
    ("big_jpeg_max4", "big_420_640x480.jpg", {"max_pixels": SMALL}),
]
# Cases whose full patches would be too large to commit: only some rows are stored (plus the exact grid);
# the resized bytes they come from are checked bit for bit through their hash.
SAMPLED_CASES = [
    ("large_default", "large_1400x1000.png", {}),
]
VIDEO_CASES = [
    ("video5_default", [f"video_frame{i}_61x43.png" for i in range(5)], {}),
    ("video5_t3_mini", [f"video_frame{i}_61x43.png" for i in range(5)], {**MINI, "temporal_patch_size": 3}),
]
# PIL resizes checked byte for byte: (case, image, width, height).
RESIZE_CASES = [
    ("rgb8_down_31x20", "rgb8_67x45.png", 31, 20),
    ("rgb8_up_140x97", "rgb8_67x45.png", 140, 97),
    ("rgb8_mixed_90x17", "rgb8_67x45.png", 90, 17),  # height shrinks more than twice the width: vertical first
    ("rgb8_vertical_first_60x20", "rgb8_67x45.png", 60, 20),  # 25 > 2 * 7: vertical first
    ("rgb8_horizontal_first_55x21", "rgb8_67x45.png", 55, 21),  # 24 == 2 * 12: horizontal first
    ("rgb8_width_only_50x45", "rgb8_67x45.png", 50, 45),
    ("rgb8_height_only_67x101", "rgb8_67x45.png", 67, 101),
    ("tiny_up_56x56", "tiny_12x9.png", 56, 56),
    ("tiny_to_1x1", "tiny_12x9.png", 1, 1),
    ("wide_down_112x28", "wide_300x20.png", 112, 28),
    ("photo_down_3x", "baseline420_97x71.jpg", 33, 23),
    ("large_down_150x107", "large_1400x1000.png", 150, 107),
]


def smart_resize_table():
    """transformers' smart_resize on edge cases (ties of Python's round, both clamps, aspect ratio 200) and
    random sizes; "error" where it raises."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    rng = np.random.default_rng(99)
    inputs = [(42, 70, 28, 3136, 1003520), (14, 14, 28, 3136, 1003520), (70, 98, 28, 3136, 1003520),
              (1, 200, 28, 3136, 1003520), (1, 201, 28, 3136, 1003520), (2001, 10, 28, 3136, 1003520),
              (10000, 50, 28, 3136, 1003520), (1000, 1400, 28, 3136, 1003520), (1003, 1001, 28, 0, 1003520),
              (4032, 3024, 28, 3136, 16384 * 28 * 28), (3024, 4032, 32, 1024, 1024), (7, 9, 28, 784, 784),
              (28, 28, 28, 784, 784), (29, 27, 28, 784, 1568), (1, 1, 28, 3136, 1003520)]
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 5000, 2))
        if rng.random() < 0.3:
            w = max(1, h // int(rng.integers(1, 300)))
        factor = int(rng.choice([14, 28, 32]))
        lo = int(rng.choice([0, 784, 3136, 128 * 28 * 28]))
        hi = int(rng.choice([784 * 2, 3136 * 4, 28 * 28 * 1280, 28 * 28 * 16384]))
        inputs.append((h, w, factor, lo, max(lo, hi)))
    table = []
    for h, w, factor, lo, hi in inputs:
        try:
            rh, rw = smart_resize(h, w, factor, lo, hi)
            if rh == 0 or rw == 0:  # transformers fails later; tessera refuses here
                table.append({"in": [h, w, factor, lo, hi], "error": "zero"})
            else:
                table.append({"in": [h, w, factor, lo, hi], "out": [rh, rw]})
        except ValueError as e:
            table.append({"in": [h, w, factor, lo, hi], "error": str(e)})
    return table


def settings_of(overrides):
    s = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "min_pixels": 56 * 56, "max_pixels": 28 * 28 * 1280}
    s.update(overrides)
    return s


def processor_v4(settings):
    from transformers import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor(min_pixels=settings["min_pixels"], max_pixels=settings["max_pixels"],
                                 patch_size=settings["patch_size"], temporal_patch_size=settings["temporal_patch_size"],
                                 merge_size=settings["merge_size"])


def processor_v5(settings):
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(size={"shortest_edge": settings["min_pixels"], "longest_edge": settings["max_pixels"]},
                                    patch_size=settings["patch_size"], temporal_patch_size=settings["temporal_patch_size"],
                                    merge_size=settings["merge_size"])


def run_v4(made):
    import transformers

    manifest = {
        "note": "written by generate.py; see README.md",
        "versions": {"python": platform.python_version(), "transformers": transformers.__version__,
                     "pillow": PIL.__version__, "numpy": np.__version__,
                     "pillow_libjpeg_turbo": features.version("libjpeg_turbo"), "pillow_zlib": features.version("zlib")},
        "config_defaults": settings_of({}),
        "mean": MEAN, "std": STD,
        "images": [], "decode": [], "resize": [], "patches": [], "sampled_patches": [], "video": [],
    }
    for name in sorted(made):
        path = IMAGES / name
        im = Image.open(path)
        entry = {"file": name, "format": made[name], "pil_mode": im.mode, "width": im.width, "height": im.height,
                 "transparency": has_transparency(path)}
        manifest["images"].append(entry)
        rgb = np.asarray(im.convert("RGB"))
        if name.startswith(("large_", "big_")):  # too big to store: its hash
            manifest["decode"].append({"image": name, "alpha": "drop", "fnv1a64": fnv1a64(rgb.tobytes())})
            continue
        out = f"expected/decode/{name}.drop.rgb.gz"
        write_gz(HERE / out, rgb.tobytes())
        manifest["decode"].append({"image": name, "alpha": "drop", "file": out})

    manifest["smart_resize"] = smart_resize_table()

    for case, name, w, h in RESIZE_CASES:
        src = Image.open(IMAGES / name).convert("RGB")
        out_bytes = np.asarray(src.resize((w, h), resample=Image.Resampling.BICUBIC)).tobytes()
        out = f"expected/resize/{case}.rgb.gz"
        write_gz(HERE / out, out_bytes)
        manifest["resize"].append({"case": case, "image": name, "width": w, "height": h, "file": out})

    for case, name, overrides in PATCH_CASES:
        settings = settings_of(overrides)
        im = Image.open(IMAGES / name)
        result = processor_v4(settings)(images=[im], return_tensors="np")
        pv = np.ascontiguousarray(result["pixel_values"], dtype=np.float32)
        grid = [int(v) for v in result["image_grid_thw"][0]]
        out = f"expected/patches/{case}.drop.f32.gz"
        write_gz(HERE / out, pv.astype("<f4").tobytes())
        manifest["patches"].append({"case": case, "image": name, "alpha": "drop", "settings": settings,
                                    "grid_thw": grid, "shape": list(pv.shape), "file": out})

    for case, name, overrides in SAMPLED_CASES:
        settings = settings_of(overrides)
        im = Image.open(IMAGES / name)
        result = processor_v4(settings)(images=[im], return_tensors="np")
        pv = np.ascontiguousarray(result["pixel_values"], dtype=np.float32)
        grid = [int(v) for v in result["image_grid_thw"][0]]
        rows = sorted({0, 1, 2, 3, 5, 97, pv.shape[0] // 2, pv.shape[0] - 4, pv.shape[0] - 1})
        out = f"expected/patches/{case}.rows.f32.gz"
        write_gz(HERE / out, pv[rows].astype("<f4").tobytes())
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize
        f = settings["patch_size"] * settings["merge_size"]
        rh, rw = smart_resize(im.height, im.width, f, settings["min_pixels"], settings["max_pixels"])
        resized = np.asarray(im.convert("RGB").resize((rw, rh), resample=Image.Resampling.BICUBIC)).tobytes()
        manifest["sampled_patches"].append({"case": case, "image": name, "alpha": "drop", "settings": settings,
                                            "grid_thw": grid, "shape": list(pv.shape), "rows": rows, "file": out,
                                            "resized_width": rw, "resized_height": rh,
                                            "resized_fnv1a64": fnv1a64(resized)})

    for case, names, overrides in VIDEO_CASES:
        settings = settings_of(overrides)
        frames = [np.asarray(Image.open(IMAGES / n).convert("RGB")) for n in names]
        result = processor_v4(settings)(images=None, videos=[frames], return_tensors="np")
        pv = np.ascontiguousarray(result["pixel_values_videos"], dtype=np.float32)
        grid = [int(v) for v in result["video_grid_thw"][0]]
        out = f"expected/patches/{case}.f32.gz"
        write_gz(HERE / out, pv.astype("<f4").tobytes())
        manifest["video"].append({"case": case, "frames": names, "settings": settings, "grid_thw": grid,
                                  "shape": list(pv.shape), "file": out})
    return manifest


def run_v5(manifest):
    """transformers 5: alpha is composited over white. Adds those cases; checks the rest did not change."""
    import transformers

    manifest["versions"]["transformers_v5"] = transformers.__version__
    manifest["decode"] = [d for d in manifest["decode"] if d["alpha"] != "over_white"]
    manifest["patches"] = [p for p in manifest["patches"] if p["alpha"] != "over_white"]
    unchanged = 0
    for d in list(manifest["decode"]):
        name = d["image"]
        if not has_transparency(IMAGES / name):
            continue
        rgb = np.asarray(convert_over_white(Image.open(IMAGES / name)))
        out = f"expected/decode/{name}.over_white.rgb.gz"
        write_gz(HERE / out, rgb.tobytes())
        manifest["decode"].append({"image": name, "alpha": "over_white", "file": out})
    for p in list(manifest["patches"]):
        result = processor_v5(p["settings"])(images=[Image.open(IMAGES / p["image"])], return_tensors="np")
        pv = np.ascontiguousarray(result["pixel_values"], dtype=np.float32)
        grid = [int(v) for v in result["image_grid_thw"][0]]
        if has_transparency(IMAGES / p["image"]):
            out = f"expected/patches/{p['case']}.over_white.f32.gz"
            write_gz(HERE / out, pv.astype("<f4").tobytes())
            manifest["patches"].append({**p, "alpha": "over_white", "grid_thw": grid, "shape": list(pv.shape), "file": out})
        else:
            v4 = np.frombuffer(gzip.decompress((HERE / p["file"]).read_bytes()), dtype="<f4").reshape(pv.shape)
            assert grid == p["grid_thw"], (p["case"], grid, p["grid_thw"])
            diff = float(np.max(np.abs(v4 - pv)))
            assert diff == 0.0, (p["case"], diff)
            unchanged += 1
    print(f"transformers {transformers.__version__}: {unchanged} opaque cases identical to the 4.x golden")
    return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--v5", action="store_true", help="add the transformers 5 (over_white) cases")
    args = parser.parse_args()
    import transformers

    major = int(transformers.__version__.split(".")[0])
    manifest_path = HERE / "manifest.json"
    if args.v5:
        if major < 5:
            sys.exit("--v5 needs transformers >= 5")
        manifest = run_v5(json.loads(manifest_path.read_text()))
    else:
        if major != 4:
            sys.exit("the main run needs transformers 4.x (its Qwen2VLImageProcessor still processes videos)")
        manifest = run_v4(make_images())
    files = sorted(p for d in (IMAGES, EXPECTED) for p in d.rglob("*") if p.is_file())
    manifest["sizes"] = {str(p.relative_to(HERE)): p.stat().st_size for p in files}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(manifest["sizes"].values()) + manifest_path.stat().st_size
    print(f"wrote {manifest_path} ({total} bytes in all)")


if __name__ == "__main__":
    main()
