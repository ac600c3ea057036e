"""Run by scripts/test-slicer-package from a copy of `make slicer-package`'s folder in a clean temporary directory,
with no VXP_* variables and a minimal environment: the module's library, ONNX Runtime and models must all be found
inside the folder.

    package_check.py PACKAGE CT SEG ok          segments case A's liver by text and by box from the package
    package_check.py PACKAGE CT SEG no-runtime  the package without its ONNX Runtime: a plain-words refusal naming
                                                the wheel to install, then the library of an installed wheel
                                                (a site folder given as 5th argument), found without importing it
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

package, ct, seg, mode = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3], sys.argv[4]
assert not [k for k in os.environ if k.startswith("VXP_")], "the check must run without VXP_* variables"
sys.path.insert(0, str(package))
from VoxPromptLib import (PINNED_ONNXRUNTIME, Engine, RuntimeMissing, dice, find_library,  # noqa: E402
                          locate_onnxruntime, open_engine)

lib = find_library()
assert lib.is_relative_to(package), f"the binding found {lib}, not the package's library"


def kji(path):
    img = nib.load(path)
    return np.asanyarray(img.dataobj).transpose(2, 1, 0), img.affine


def liver_by_text_and_box(engine: Engine) -> None:
    vol, affine = kji(ct)
    truth = (kji(seg)[0] == 5).astype(np.uint8)
    ks, js, is_ = np.nonzero(truth)
    box = (is_.min(), js.min(), ks.min(), is_.max(), js.max(), ks.max())
    with engine.session(vol, affine, intensity="ct") as s:
        s.add_text(1, "liver")
        by_text = s.run()
        s.clear_prompts()
        s.add_box_ijk(1, box)
        by_box = s.run()
    for how, mask, least in (("text", by_text, 0.85), ("box", by_box, 0.90)):
        d = dice(mask, truth)
        print(f"package: liver by {how}: Dice {d:.3f}")
        assert d >= least, (how, d)


if mode == "ok":
    engine = open_engine(threads=2)
    assert Path(engine.model_dir).resolve().is_relative_to(package), engine.model_dir
    print(f"package: {lib} on {engine.provider}, models {engine.model_dir}")
    liver_by_text_and_box(engine)
elif mode == "no-runtime":
    site = sys.argv[5]
    try:
        Engine(threads=2)
        raise AssertionError("an engine without ONNX Runtime")
    except Exception as e:  # the library's own RUNTIME_LOAD, raised by Engine
        assert e.code == 300, e
    try:
        open_engine(threads=2)
        raise AssertionError("open_engine found a runtime where there is none")
    except RuntimeMissing as e:
        assert PINNED_ONNXRUNTIME in e.message and "never imports" in e.message, e.message
        print(f"package: without ONNX Runtime: {e.message}")
    sys.path.append(site)
    wheel = locate_onnxruntime()
    assert wheel is not None and wheel.is_relative_to(Path(site).resolve()) or str(wheel).startswith(site), wheel
    engine = open_engine(threads=2)
    assert "onnxruntime" not in sys.modules, "the wheel was imported"
    print(f"package: ONNX Runtime from the wheel at {wheel}")
    liver_by_text_and_box(engine)
else:
    raise SystemExit(f"unknown mode {mode}")
print("package: ok")
