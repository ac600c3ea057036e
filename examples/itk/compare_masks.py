#!/usr/bin/env python3
"""Compares two NIfTI-1 label masks voxel for voxel and their geometry, with the standard library only.

    compare_masks.py A.nii[.gz] B.nii[.gz] [--grid INPUT.nii[.gz]]

Checks: same dims; uint8 data (datatype 2); identical voxels; at least one foreground voxel; the same
effective IJK->RAS matrix (sform when sform_code > 0, else qform, else pixdim), compared exactly (float32
values as stored, so -0.0 == 0.0); the same pixdim spacing. A file whose qform and sform are both set must
have them agree (to 1e-4 mm: the qform is a quaternion). With --grid, both masks must also lie on that
volume's grid. Exits 1 on any difference, printing each.
"""

import gzip
import math
import struct
import sys


def read_nifti(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 348:
        raise SystemExit(f"{path}: too short for a NIfTI-1 header")
    e = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    if struct.unpack(e + "i", raw[:4])[0] != 348:
        raise SystemExit(f"{path}: not NIfTI-1 (sizeof_hdr != 348)")
    magic = raw[344:348]
    if magic not in (b"n+1\0", b"ni1\0"):
        raise SystemExit(f"{path}: magic {magic!r}: only single-file NIfTI-1 is handled")
    h = {"path": path, "endian": e}
    h["dim"] = struct.unpack(e + "8h", raw[40:56])
    h["datatype"], h["bitpix"] = struct.unpack(e + "2h", raw[70:74])
    h["pixdim"] = struct.unpack(e + "8f", raw[76:108])
    (h["vox_offset"],) = struct.unpack(e + "f", raw[108:112])
    h["scl_slope"], h["scl_inter"] = struct.unpack(e + "2f", raw[112:120])
    h["xyzt_units"] = raw[123]
    h["qform_code"], h["sform_code"] = struct.unpack(e + "2h", raw[252:256])
    h["quatern"] = struct.unpack(e + "6f", raw[256:280])
    s = struct.unpack(e + "12f", raw[280:328])
    h["srow"] = [list(s[0:4]), list(s[4:8]), list(s[8:12])]
    nd = h["dim"][0]
    dims = [h["dim"][a + 1] if a < nd else 1 for a in range(3)]
    if any(h["dim"][a] > 1 for a in range(4, nd + 1)):
        raise SystemExit(f"{path}: not 3D: dim {h['dim']}")
    h["dims"] = dims
    n = dims[0] * dims[1] * dims[2]
    off = int(h["vox_offset"])
    h["data"] = raw[off : off + n * max(h["bitpix"] // 8, 1)]
    return h


def qform_matrix(h):
    b, c, d, qx, qy, qz = (float(v) for v in h["quatern"])
    a = math.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    qfac = -1.0 if h["pixdim"][0] < 0 else 1.0
    r = [
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ]
    sc = [h["pixdim"][1], h["pixdim"][2], h["pixdim"][3] * qfac]
    t = [qx, qy, qz]
    return [[r[i][j] * sc[j] for j in range(3)] + [t[i]] for i in range(3)]


def ijk_to_ras(h):
    """The matrix a NIfTI reader uses: sform, else qform, else pixdim (as the voxprompt CLI and ITK)."""
    if h["sform_code"] > 0:
        return "sform", [list(map(float, row)) for row in h["srow"]]
    if h["qform_code"] > 0:
        return "qform", qform_matrix(h)
    p = h["pixdim"]
    return "pixdim", [[p[1], 0, 0, 0], [0, p[2], 0, 0], [0, 0, p[3], 0]]


def max_diff(m, n):
    return max(abs(m[i][j] - n[i][j]) for i in range(3) for j in range(4))


def fmt(m):
    return "; ".join(" ".join(f"{v:g}" for v in row) for row in m)


def main(argv):
    grid = None
    if "--grid" in argv:
        i = argv.index("--grid")
        grid = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = (read_nifti(p) for p in argv)
    errors = []

    for h in (a, b):
        if h["datatype"] != 2 or h["bitpix"] != 8:
            errors.append(f"{h['path']}: datatype {h['datatype']} bitpix {h['bitpix']}, expected uint8 (2, 8)")
        if h["scl_slope"] not in (0.0, 1.0) or h["scl_inter"] != 0.0:
            errors.append(f"{h['path']}: scl_slope/inter {h['scl_slope']}/{h['scl_inter']} rescale the labels")
        if h["qform_code"] > 0 and h["sform_code"] > 0:
            d = max_diff(qform_matrix(h), [list(map(float, r)) for r in h["srow"]])
            print(f"{h['path']}: qform_code {h['qform_code']} and sform_code {h['sform_code']} agree to {d:.3g} mm")
            if d > 1e-4:
                errors.append(f"{h['path']}: qform and sform differ by {d:g} mm")

    if a["dims"] != b["dims"]:
        errors.append(f"dims differ: {a['dims']} vs {b['dims']}")
    (sa, ma), (sb, mb) = ijk_to_ras(a), ijk_to_ras(b)
    print(f"{a['path']}: IJK->RAS from {sa}: {fmt(ma)}")
    print(f"{b['path']}: IJK->RAS from {sb}: {fmt(mb)}")
    if ma != mb:
        errors.append(f"IJK->RAS differs by up to {max_diff(ma, mb):g} mm")
    if list(a["pixdim"][1:4]) != list(b["pixdim"][1:4]):
        errors.append(f"spacing differs: {a['pixdim'][1:4]} vs {b['pixdim'][1:4]}")
    if grid is not None:
        g = read_nifti(grid)
        sg, mg = ijk_to_ras(g)
        for h, m in ((a, ma), (b, mb)):
            if h["dims"] != g["dims"] or m != mg:
                errors.append(f"{h['path']} is not on the grid of {grid} ({h['dims']} vs {g['dims']}, "
                              f"matrix differs by {max_diff(m, mg):g} mm)")

    if a["dims"] == b["dims"] and not any("datatype" in e for e in errors):
        da, db = a["data"], b["data"]
        n = a["dims"][0] * a["dims"][1] * a["dims"][2]
        if len(da) != n or len(db) != n:
            errors.append(f"truncated data: {len(da)} and {len(db)} bytes for {n} voxels")
        else:
            nx, ny = a["dims"][0], a["dims"][1]
            diff = [v for v in range(n) if da[v] != db[v]]
            fg = sum(1 for v in da if v)
            labels = sorted(set(da))
            print(f"voxels: {n}, foreground {fg} in A, {sum(1 for v in db if v)} in B, labels {labels}, "
                  f"differing {len(diff)}")
            if diff:
                v = diff[0]
                ijk = (v % nx, (v // nx) % ny, v // (nx * ny))
                errors.append(f"{len(diff)} voxels differ; first at ijk {ijk}: {da[v]} vs {db[v]}")
            if fg == 0:
                errors.append("the masks are empty")

    for e in errors:
        print("DIFFERENCE: " + e, file=sys.stderr)
    if not errors:
        print("masks identical: same voxels, same dims, same IJK->RAS and spacing")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
