"""A quick look at a result without Slicer: one slice of the volume with the mask outlined in colour beside the
confidence map, written as a PNG with numpy and zlib only (for logs, reports and tests)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

# Label colours (RGB), cycled: the PNG montage's first ones (src/io/mod.rs LABEL_COLORS).
COLORS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                   [145, 30, 180], [70, 240, 240], [240, 50, 230]], np.uint8)


def _png(path: Path, rgb: np.ndarray) -> None:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def render_slice(path, image_kji: np.ndarray, mask_kji: np.ndarray, confidence_kji: Optional[np.ndarray] = None,
                 k: Optional[int] = None, window: tuple[float, float] = (40.0, 400.0)) -> int:
    """Writes slice `k` (default: the one with most labelled voxels) as a PNG: the image under `window`
    (level, width) with each label's voxels tinted and its edge drawn in its colour, and, beside it, the
    confidence in grey (white = sure). Rows are j, columns i, as stored. Returns the slice written."""
    if k is None:
        k = int(np.argmax((mask_kji > 0).reshape(mask_kji.shape[0], -1).sum(axis=1)))
    level, width = window
    grey = np.clip((image_kji[k].astype(np.float64) - (level - width / 2)) / width * 255.0, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    m = mask_kji[k]
    for label in np.unique(m[m > 0]):
        inside = m == label
        color = COLORS[(int(label) - 1) % len(COLORS)]
        rgb[inside] = (0.6 * rgb[inside] + 0.4 * color).astype(np.uint8)
        edge = inside & ~(np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1) & np.roll(inside, -1, 1))
        rgb[edge] = color
    panels = [rgb]
    if confidence_kji is not None:
        c = (np.clip(confidence_kji[k], 0, 1) * 255).astype(np.uint8)
        panels.append(np.repeat(c[:, :, None], 3, axis=2))
    _png(Path(path), np.concatenate(panels, axis=1))
    return k


def module_icon(path, size: int = 128) -> None:
    """The module's icon (Resources/Icons/VoxPrompt.png), drawn here so that it is made, not downloaded: an
    organ-like blob in grey on dark blue, outlined in the first label colour, inside a dashed prompt box."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1.0)
    rgb = np.empty((size, size, 3), np.uint8)
    rgb[:] = (24, 42, 72)
    # The blob: an ellipse bent by a sine, so it reads as anatomy rather than a circle.
    r = ((x - 0.5) / 0.30) ** 2 + ((y - 0.52 - 0.05 * np.sin(6.0 * x)) / 0.22) ** 2
    inside = r <= 1.0
    rgb[inside] = (170, 170, 178)
    edge = inside & (r >= 0.80)
    rgb[edge] = COLORS[0]
    # The box prompt around it, dashed every 8 pixels.
    lo, hi = int(0.12 * size), int(0.88 * size)
    dash = (np.arange(size) // max(1, size // 16)) % 2 == 0
    for line in (lo, lo + 1, hi - 1, hi):
        rgb[line, lo:hi + 1][dash[lo:hi + 1]] = (255, 225, 25)
        rgb[lo:hi + 1, line][dash[lo:hi + 1]] = (255, 225, 25)
    _png(Path(path), rgb)
