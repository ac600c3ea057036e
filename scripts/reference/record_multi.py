"""Records the reference pipeline on one volume with several objects, as MedSAM_infer_npz_3D does it:
objects in box order, object n's working mask holds the value n (1-based), later objects overwrite
earlier ones, and every slice is re-encoded per object.

    /work/venv-export/bin/python scripts/reference/record_multi.py

writes tests/fixtures/parity/multi_tsA_torch.npz (mask uint8 (D,H,W) with values 1..K, boxes int64 [K,6])
and prints the per-object Dice.
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cvpr24  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "data/totalsegmentator/example_ct_sm.nii.gz"
LABEL = ROOT / "data/totalsegmentator/example_seg.nii.gz"
LABELS = [5, 3, 1, 2]  # liver, kidney_left, spleen, kidney_right: overlapping slice ranges


def main():
    img, lab, _, _ = cvpr24.prepare_case(IMAGE, LABEL, LABELS[0], "CT")
    vol = cvpr24.intensity_map(img, "CT")
    backend = cvpr24.make_backend(sys.argv[1] if len(sys.argv) > 1 else "torch")
    segs = np.zeros_like(vol, dtype=np.uint8)
    boxes = []
    encoder_runs = 0
    for idx, value in enumerate(LABELS, start=1):
        box = cvpr24.box3d_from_label(lab, value)
        boxes.append([int(v) for v in box])
        one, _, runs = cvpr24.infer_3d(backend, vol, np.array(box), idx=idx)
        encoder_runs += runs
        segs[one > 0] = idx
    dice = {v: cvpr24.dice(segs == i, lab == v) for i, v in enumerate(LABELS, start=1)}
    out = ROOT / "tests/fixtures/parity/multi_tsA_torch.npz"
    np.savez_compressed(out, mask=segs, boxes=np.array(boxes, dtype=np.int64),
                        labels=np.array(LABELS, dtype=np.int64))
    print(json.dumps({"file": out.name, "labels": LABELS, "boxes": boxes, "dice": dice,
                      "encoder_runs": encoder_runs}, indent=1))


if __name__ == "__main__":
    main()
