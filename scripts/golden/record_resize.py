#!/usr/bin/env python3
"""Record golden outputs of cv2.resize(..., interpolation=cv2.INTER_AREA) on uint8 images.

These goldens pin down the Rust port in src/pipeline/resize.rs, which must be bit-identical to
OpenCV's INTER_AREA (the reference LiteMedSAM pipeline's `resize_longest_side`, METHODS.md §0.4b step 2).

Source images are NOT stored: they are produced by a deterministic, integer-only generator
(`make_image`) that the Rust test re-implements exactly. Each case records a checksum of its source
so a generator mismatch is caught before any pixel is compared.

Usage (from the repo root):
    python3 -m venv .deps/golden-venv
    .deps/golden-venv/bin/pip install numpy opencv-python-headless==5.0.0.93
    .deps/golden-venv/bin/python scripts/golden/record_resize.py

Writes tests/fixtures/resize/resize_goldens.npz (format: tests/fixtures/resize/README.md).
"""

import os
import sys

import cv2
import numpy as np

M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15

# Image kinds (the Rust test mirrors these numbers and formulas exactly).
K_RANDOM = 0  # uniform random bytes
K_GRADIENT = 1  # diagonal integer gradient
K_CHECKER = 2  # checkerboard 0/255, cell size 1..4 from seed
K_SPOTS = 3  # zeros with sparse single-pixel spots (random values)
K_MASK = 4  # binary 0/1 mask: discs + 1-px lines
K_BLOCKY = 5  # 8x8 blocky random + small random noise
K_RINGS = 6  # concentric rings
K_LOWRANGE = 7  # random values in 0..3 (mask-like multi-label)
KIND_NAMES = ["random", "gradient", "checker", "spots", "mask", "blocky", "rings", "lowrange"]


def mix64(z):
    """splitmix64 finaliser on a numpy uint64 array (wrapping arithmetic)."""
    z = z.astype(np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def rand_stream(seed, stream, n):
    """n pseudo-random u64 (counter-based splitmix64):
    base = seed*0x100000001B3 + stream*0xC2B2AE3D27D4EB4F (mod 2^64); value_i = mix64(base + (i+1)*GAMMA)."""
    base = (seed * 0x100000001B3 + stream * 0xC2B2AE3D27D4EB4F) & M64
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(base) + i * np.uint64(GAMMA)
    return mix64(z)


def rand_scalar(seed, stream, idx):
    """The idx-th (0-based) value of rand_stream(seed, stream, ...) as a python int."""
    return int(rand_stream(seed, stream, idx + 1)[idx])


def make_image(kind, seed, h, w):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.int64)
    if kind == K_RANDOM:
        r = rand_stream(seed, 0, h * w)
        img = (r >> np.uint64(56)).astype(np.int64).reshape(h, w)
    elif kind == K_GRADIENT:
        img = (xs * 255 // max(w - 1, 1) + ys * 255 // max(h - 1, 1)) // 2
    elif kind == K_CHECKER:
        c = 1 + (seed % 4)
        img = ((xs // c + ys // c) % 2) * 255
    elif kind == K_SPOTS:
        r = rand_stream(seed, 0, h * w).reshape(h, w)
        on = (r & np.uint64(63)) == np.uint64(0)
        val = (r >> np.uint64(56)).astype(np.int64)
        img = np.where(on, val, 0)
    elif kind == K_MASK:
        img = np.zeros((h, w), dtype=np.int64)
        for d in range(3):
            cx = rand_scalar(seed, 1, 3 * d) % w
            cy = rand_scalar(seed, 1, 3 * d + 1) % h
            r = 1 + rand_scalar(seed, 1, 3 * d + 2) % (max(h, w) // 4 + 1)
            img[(xs - cx) ** 2 + (ys - cy) ** 2 <= r * r] = 1
        # thin 1-px structures: a row, a column and a diagonal
        img[rand_scalar(seed, 2, 0) % h, :] = 1
        img[:, rand_scalar(seed, 2, 1) % w] = 1
        off = rand_scalar(seed, 2, 2) % (w + h)
        img[(xs - ys + h) == off] = 1
    elif kind == K_BLOCKY:
        bh, bw = (h + 7) // 8, (w + 7) // 8
        blocks = (rand_stream(seed, 0, bh * bw) >> np.uint64(56)).astype(np.int64).reshape(bh, bw)
        noise = (rand_stream(seed, 1, h * w) >> np.uint64(60)).astype(np.int64).reshape(h, w)
        img = np.clip(blocks[ys // 8, xs // 8] + noise - 8, 0, 255)
    elif kind == K_RINGS:
        cx, cy = w // 3, h // 2
        img = (((xs - cx) ** 2 + (ys - cy) ** 2) // (1 + seed % 7)) % 256
    elif kind == K_LOWRANGE:
        r = rand_stream(seed, 0, h * w)
        img = (r >> np.uint64(62)).astype(np.int64).reshape(h, w)
    else:
        raise ValueError(kind)
    return np.ascontiguousarray(img.astype(np.uint8))


def checksum(img):
    """FNV-1a 64 over the row-major bytes."""
    h = 0xCBF29CE484222325
    for b in img.tobytes():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def checksum_fast(img):
    # FNV-1a is sequential; do it in python over bytes (fine: < 1 M bytes per image).
    return checksum(img)


def to_i64(u):
    """u64 -> the i64 with the same two's-complement bits (stored in the int64 meta array)."""
    return u - (1 << 64) if u >= (1 << 63) else u


def longest_side(h, w, target=256):
    scale = target * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def build_cases():
    cases = []  # (src_h, src_w, dst_h, dst_w, kind, seed)
    seed = 1000

    def add(sh, sw, dh, dw, kinds):
        nonlocal seed
        for k in kinds:
            seed += 1
            cases.append((sh, sw, dh, dw, k, seed))

    # The real reference cases (H, W) -> (newh, neww).
    real = [
        ((101, 122), (212, 256)),
        ((512, 512), (256, 256)),
        ((256, 256), (256, 256)),
        ((233, 197), (256, 216)),
        ((128, 128), (256, 256)),
        ((120, 45), (256, 96)),
        ((167, 233), (183, 256)),
        ((300, 400), (192, 256)),
        ((1000, 700), (256, 179)),
        ((7, 300), (6, 256)),
        ((1, 1), (256, 256)),
    ]
    for (sh, sw), (dh, dw) in real:
        assert longest_side(sh, sw) == (dh, dw), ((sh, sw), longest_side(sh, sw), (dh, dw))
        add(sh, sw, dh, dw, [K_RANDOM, K_MASK, K_BLOCKY])
    # structured extras on a few real sizes
    add(101, 122, 212, 256, [K_GRADIENT, K_CHECKER, K_SPOTS, K_RINGS, K_LOWRANGE])
    add(512, 512, 256, 256, [K_CHECKER, K_SPOTS, K_LOWRANGE])
    add(300, 400, 192, 256, [K_CHECKER, K_SPOTS, K_GRADIENT])
    add(233, 197, 256, 216, [K_CHECKER, K_SPOTS])

    # ~40 random (H, W) in [1, 700] mapped by the reference rule.
    rng = np.random.default_rng(20240601)
    n = 0
    kinds_cycle = [K_RANDOM, K_MASK, K_BLOCKY, K_SPOTS, K_CHECKER, K_RINGS, K_GRADIENT, K_LOWRANGE]
    while n < 40:
        sh, sw = (int(v) for v in rng.integers(1, 701, size=2))
        dh, dw = longest_side(sh, sw)
        if dh < 1 or dw < 1:
            continue  # the reference would fail on a 0-sized target (cv2 asserts)
        add(sh, sw, dh, dw, [kinds_cycle[n % len(kinds_cycle)]])
        n += 1

    # Arbitrary non-reference pairs: every code path and edge.
    arbitrary = [
        ((9, 9), (3, 3)),  # area-fast 3x3 (float scale 1/9)
        ((12, 8), (4, 4)),  # area-fast 3x2 (area 6)
        ((512, 256), (256, 256)),  # area-fast 1x2 (scale 0.5, ties to even)
        ((256, 512), (256, 256)),  # area-fast 2x1
        ((40, 40), (10, 10)),  # area-fast 4x4
        ((50, 35), (10, 7)),  # area-fast 5x5
        ((6, 6), (6, 6)),  # copy
        ((2, 2), (1, 1)),
        ((5, 1), (2, 1)),  # area, width 1
        ((1, 5), (3, 10)),  # upscale from a single row
        ((5, 7), (13, 3)),  # mixed: y up, x down
        ((100, 300), (250, 120)),  # mixed
        ((300, 100), (120, 250)),  # mixed
        ((7, 7), (5, 5)),  # area non-integer
        ((700, 700), (256, 256)),
        ((255, 257), (256, 256)),  # tiny up/down
        ((10, 10), (11, 9)),
        ((3, 1000), (1, 256)),
        ((640, 480), (333, 250)),
        ((17, 23), (64, 64)),
        ((64, 64), (63, 65)),
        ((2, 3), (257, 129)),
        ((256, 256), (128, 256)),  # area-fast 1x2 other axis
        ((31, 29), (256, 240)),
    ]
    for (sh, sw), (dh, dw) in arbitrary:
        add(sh, sw, dh, dw, [K_RANDOM, K_MASK])
    return cases


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_dir = os.path.join(repo, "tests", "fixtures", "resize")
    os.makedirs(out_dir, exist_ok=True)
    print("cv2", cv2.__version__, "numpy", np.__version__, file=sys.stderr)

    cases = build_cases()
    meta = []
    arrays = {}
    n3 = 0
    for i, (sh, sw, dh, dw, kind, seed) in enumerate(cases):
        src = make_image(kind, seed, sh, sw)
        out = cv2.resize(src, (dw, dh), interpolation=cv2.INTER_AREA)
        assert out.shape == (dh, dw) and out.dtype == np.uint8, out.shape
        # The reference resizes np.repeat(gray[:,:,None], 3, -1): each channel must equal the 1-channel result.
        src3 = np.repeat(src[:, :, None], 3, -1)
        out3 = cv2.resize(src3, (dw, dh), interpolation=cv2.INTER_AREA)
        if out3.ndim == 2:
            out3 = out3[:, :, None]
        for c in range(3):
            assert np.array_equal(out3[:, :, c], out), f"case {i}: 3-channel resize differs in channel {c}"
        n3 += 1
        meta.append([sh, sw, dh, dw, kind, seed, to_i64(checksum_fast(src))])
        arrays[f"out_{i:03d}"] = out
    arrays["meta"] = np.array(meta, dtype=np.int64)
    path = os.path.join(out_dir, "resize_goldens.npz")
    np.savez_compressed(path, **arrays)
    print(f"wrote {len(cases)} cases ({n3} checked 3ch == 1ch) to {path} "
          f"({os.path.getsize(path)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
