"""The Slicer module's logic without Slicer: the real libvoxprompt, the real LiteMedSAM package and a real CT.

Run by `make test-plugin` (part of `make test`) after `cargo build`; VXP_LIB and VXP_ORT_LIB name the library
and ONNX Runtime (the Makefile sets both). Volumes are read with nibabel and handed over as Slicer hands
them: numpy arrays indexed [k, j, i] with the IJK->RAS matrix.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugin" / "VoxPrompt"))

from VoxPromptLib import BackgroundRun, Engine, PromptSync, VoxPromptError, box_of, dice, library  # noqa: E402

CT = REPO / "tests/fixtures/data/example_ct_sm.nii.gz"
SEG = REPO / "tests/fixtures/data/example_seg.nii.gz"
PARITY = REPO / "tests/fixtures/parity"
LIVER = 5


def kji(path: Path):
    img = nib.load(str(path))
    a = np.asanyarray(img.dataobj)  # [i, j, k]
    return a.transpose(2, 1, 0), img.affine  # a [k, j, i] view, not a copy


@pytest.fixture(scope="module")
def engine():
    e = Engine(threads=2)
    yield e
    e.close()


@pytest.fixture(scope="module")
def ct():
    return kji(CT)


@pytest.fixture(scope="module")
def liver():
    seg, _ = kji(SEG)
    return (seg == LIVER).astype(np.uint8)


def torch_case():
    index = json.loads((PARITY / "index.json").read_text())
    case = next(c for c in index["cases"] if c["id"] == "tsA_liver")
    return case, np.load(PARITY / case["runs"]["torch"]["file"])["mask"]


def test_library_reports_its_abi_and_provider(engine):
    lib = library()
    assert lib.abi[0] == 0 and lib.abi[1] >= 3
    assert lib.version.startswith("voxprompt ")
    assert engine.provider.split(";")[0] == "cpu"


def test_reference_policy_matches_pytorch_voxel_for_voxel(engine, ct, liver):
    case, want = torch_case()
    vol, affine = ct
    with engine.session(vol, affine, intensity="ct") as s:
        s.set_policy("reference")
        s.add_box_ijk(1, case["box3d"])
        assert tuple(case["box3d"]) == box_of(liver)
        mask = s.run()
        stats = s.stats()
    agree = float((mask == (want > 0)).mean())
    d = dice(mask, liver)
    print(f"plugin logic: agreement with PyTorch {agree:.6f}, Dice {d:.4f} (PyTorch {case['runs']['torch']['dice']:.4f})")
    assert mask.shape == vol.shape and mask.dtype == np.uint8
    assert agree >= 0.999
    assert d >= case["runs"]["torch"]["dice"] - 0.002
    assert stats["slices_encoded"] == case["slices"] == 30
    assert stats["objects_full"] == 1


def test_a_text_prompt_alone_segments_its_organ(engine, ct, liver):
    vol, affine = ct
    with engine.session(vol, affine, intensity="ct") as s:
        s.add_text(5, "the liver")
        mask = s.run()
        with pytest.raises(VoxPromptError) as e:
            s.add_text(6, "banana bread")
        assert e.value.name == "UNKNOWN_CONCEPT" and "closest:" in str(e.value)
        report = s.report()
    assert set(np.unique(mask)) == {0, 5}
    d = dice(mask, liver)
    assert d >= 0.85, d
    # The report says the liver object came from the text: its boxes and seed from the concept, the limit
    # from its prior, which holds the whole result.
    (obj,) = report
    assert obj["label"] == 5 and obj["voxels"] == int((mask == 5).sum())
    kinds = {(p["kind"], p["source"]["from"]) for p in obj["prompts"]}
    assert {("text", "user"), ("box", "text"), ("seed", "anatomy"), ("limit", "anatomy")} <= kinds, kinds
    text = next(p for p in obj["prompts"] if p["kind"] == "text")
    assert text["contribution"]["resolution"]["name"] == "liver"
    limit = next(p for p in obj["prompts"] if p["kind"] == "limit")
    assert limit["contribution"]["result_inside"] == 1.0


def test_one_click_alone_segments_its_organ(engine, ct, liver):
    vol, affine = ct
    with engine.session(vol, affine, intensity="ct") as s:
        # The liver's most interior voxel on its widest slice, as tests/clicks.rs aims (Dice 0.935 there).
        s.add_point_ijk(5, (86, 49, 24))
        mask = s.run()
    assert set(np.unique(mask)) == {0, 5}
    d = dice(mask, liver)
    assert d >= 0.88, d


def test_text_in_prompt_sync_and_segment_identity(engine, ct, liver):
    from VoxPromptLib.logic import PromptSync, segment_identity
    vol, affine = ct
    with engine.session(vol, affine, intensity="ct") as s:
        sync = PromptSync(label=2)
        assert sync.apply(s, text="liver") == "new"
        first = s.run()
        assert sync.apply(s, text="liver") == "unchanged"
        assert sync.apply(s, text="spleen") == "reset"
        assert sync.apply(s, text="liver") == "reset"
        assert np.array_equal(s.run(), first)
    name, term, color = segment_identity(engine.lookup("left kidney"))
    assert name == "left kidney" and color is not None
    assert term.split("~")[2:4] == ["SCT^64033007^Kidney", "SCT^7771000^Left"], term
    assert segment_identity(engine.lookup("kidneys"))[1] is None  # two structures: no single code
    # models/minilm sits beside models/litemedsam, so the engine took the text encoder too.
    assert engine.lookup("heart muscle")["method"] == "embedding"


def test_default_policy_gives_mask_and_confidence(engine, ct, liver):
    vol, affine = ct
    with engine.session(vol, affine, intensity="ct") as s:
        s.add_box_ijk(3, box_of(liver))
        mask, conf = s.run(confidence=True)
        # No new prompt: the next run writes the same result without inference.
        again = s.run()
        assert s.stats()["slices_encoded"] == 0
    assert set(np.unique(mask)) == {0, 3}
    assert dice(mask, liver) >= 0.92
    assert np.array_equal(again, mask)
    assert conf.dtype == np.float32 and conf.shape == vol.shape
    assert 0.0 <= conf.min() and conf.max() <= 1.0
    assert conf[mask == 3].mean() > 0.5
    # A look at it: the liver's widest slice with the mask outlined, beside the confidence.
    from VoxPromptLib.render import COLORS, render_slice

    out = REPO / "target" / "plugin-test"
    out.mkdir(parents=True, exist_ok=True)
    k = render_slice(out / "liver.png", vol, mask, conf)
    png = (out / "liver.png").read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (width, height) == (2 * vol.shape[2], vol.shape[1])
    import zlib
    rows = zlib.decompress(png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8])
    pixels = np.frombuffer(rows, np.uint8).reshape(height, 1 + 3 * width)[:, 1:].reshape(height, width, 3)
    assert k == int(np.argmax((mask == 3).reshape(mask.shape[0], -1).sum(axis=1)))
    # Label 3's colour is drawn on its edge, and the confidence panel is white where the liver is sure.
    assert (pixels[:, :vol.shape[2]] == COLORS[2]).all(axis=2).sum() > 20
    sure = conf[k] > 0.99
    assert (pixels[:, vol.shape[2]:][sure] >= 252).all()


def test_any_strides_give_the_same_mask(engine, ct, liver):
    vol, affine = ct
    sub, sub_liver = vol[10:17], liver[10:17]  # 7 slices keep this quick
    box = box_of(sub_liver)

    def reference_mask(array):
        with engine.session(array, affine, intensity="ct") as s:
            s.set_policy("reference")
            s.add_box_ijk(1, box)
            return s.run()

    plain = reference_mask(np.ascontiguousarray(sub))
    assert dice(plain, sub_liver) >= 0.9
    # i slowest: other strides
    assert np.array_equal(reference_mask(np.asfortranarray(sub)), plain)
    # The same voxels stored back to front along i and k: negative strides, read in place.
    backwards = np.ascontiguousarray(sub[::-1, :, ::-1])[::-1, :, ::-1]
    assert backwards.strides[0] < 0 and backwards.strides[2] < 0 and np.array_equal(backwards, sub)
    assert np.array_equal(reference_mask(backwards), plain)


def ras(affine, ijk):
    return tuple(float(v) for v in (affine @ np.array([*ijk, 1.0]))[:3])


def test_resent_prompts_refine_instead_of_starting_over(engine, ct, liver):
    """What the Slicer module does on every Apply: send the ROI and all points again."""
    vol, affine = ct
    sub, sub_liver = vol[8:20], liver[8:20]
    i0, j0, k0, i1, j1, k1 = box_of(sub_liver)
    box = ras(affine, (i0, j0, k0)) + ras(affine, (i1, j1, k1))
    sync = PromptSync(label=1)
    with engine.session(sub, affine, intensity="ct") as s:
        assert sync.apply(s, box) == "new"
        first = s.run()
        assert s.stats()["objects_full"] == 1 and s.stats()["slices_encoded"] == 12
        assert dice(first, sub_liver) >= 0.9
        # the same ROI again plus one negative point on the middle slice, outside the liver
        k = (k0 + k1) // 2
        jj, ii = np.nonzero(sub_liver[k] == 0)
        far = int(np.argmax((jj - (j0 + j1) / 2) ** 2 + (ii - (i0 + i1) / 2) ** 2))
        point = ras(affine, (int(ii[far]), int(jj[far]), k)) + (False,)
        assert sync.apply(s, box, [point]) == "refine"
        s.run()
        st = s.stats()
        assert st["objects_refined"] == 1 and st["objects_full"] == 0 and st["slices_encoded"] == 0, st
        assert sync.apply(s, box, [point]) == "unchanged"
        # a smaller box starts the object over, from embeddings already cached
        smaller = ras(affine, (i0 + 5, j0 + 5, k0)) + ras(affine, (i1 - 5, j1 - 5, k1))
        assert sync.apply(s, smaller, [point]) == "reset"
        s.run()
        st = s.stats()
        assert st["objects_full"] == 1 and st["slices_encoded"] == 0, st
        with pytest.raises(VoxPromptError) as e:
            PromptSync().apply(s, None, [point])
        assert e.value.code == 106


def test_result_names_and_texts_come_from_the_library(engine):
    dll = engine.lib.dll
    for code in (106, 303, 400, 900):
        e = VoxPromptError(code, "")
        assert "VXP_RESULT_" + e.name == dll.vxp_result_name(code).decode()
        assert e.description == dll.vxp_result_str(code).decode() and e.description != "unknown result code"
    assert VoxPromptError(106, "").description == "invalid prompt"
    assert VoxPromptError(12345, "").name == "UNKNOWN_12345"


def test_phrases_resolve_to_concepts_or_a_refusal_with_suggestions(engine):
    c = engine.lookup("tumour of the right kidney")
    assert [x["id"] for x in c["concepts"]] == ["kidney_right"] and c["lesion"] == "tumor"
    assert c["concepts"][0]["snomed"]["type"] == "64033007" and c["concepts"][0]["side"] == "right"
    with pytest.raises(VoxPromptError) as e:
        engine.lookup("banana bread")
    assert e.value.name == "UNKNOWN_CONCEPT" and "closest:" in str(e.value), e.value
    with pytest.raises(VoxPromptError) as e:
        engine.lookup("")
    assert e.value.name == "INVALID_ARGUMENT"
    names = [x["name"] for x in engine.complete("hippo", 2)]
    assert names == ["left hippocampus", "right hippocampus"], names


def test_bad_input_is_a_typed_error_with_a_message(engine, ct):
    vol, affine = ct
    with engine.session(vol, affine, intensity="ct") as s:
        with pytest.raises(VoxPromptError) as e:
            s.run()
        assert e.value.name == "INVALID_PROMPT" and e.value.code == 106, e.value
        with pytest.raises(VoxPromptError) as e:
            s.add_box_ijk(1, (0, 0, 0, 500, 10, 5))
        assert e.value.code == 106 and "outside" in e.value.message, e.value.message
        with pytest.raises(VoxPromptError) as e:
            s.add_box_ijk(1, (20, 20, 9, 10, 30, 12))
        assert e.value.code == 106, e.value
        with pytest.raises(VoxPromptError) as e:
            s.set_policy("best")
        assert e.value.code == 101
    with pytest.raises(VoxPromptError) as e:
        engine.session(np.full((4, 8, 8), 7, np.int16), affine)
    assert e.value.name == "INVALID_VOLUME" and "constant" in e.value.message, e.value.message
    nan = vol.astype(np.float32)
    nan[3, 4, 5] = np.nan
    with pytest.raises(VoxPromptError) as e:
        engine.session(nan, affine)
    assert e.value.name == "INVALID_VOLUME" and "NaN" in e.value.message, e.value.message
    with pytest.raises(VoxPromptError) as e:
        engine.session(vol[0], affine)
    assert e.value.name == "SHAPE_MISMATCH"
    with pytest.raises(VoxPromptError) as e:
        engine.session(vol.astype(np.float16), affine)
    assert e.value.name == "UNSUPPORTED_DTYPE"
    with pytest.raises(VoxPromptError) as e:
        Engine(model_dir="/nonexistent/model")
    assert e.value.name == "MODEL_NOT_FOUND" and "/nonexistent/model" in e.value.message


def test_progress_can_cancel_and_the_session_stays_usable(engine, ct, liver):
    vol, affine = ct
    sub, sub_liver = vol[12:19], liver[12:19]
    with engine.session(sub, affine, intensity="ct") as s:
        s.add_box_ijk(1, box_of(sub_liver))
        seen = []
        with pytest.raises(VoxPromptError) as e:
            s.run(lambda f: seen.append(f) or False)
        assert e.value.name == "CANCELLED" and len(seen) == 1
        # An exception in the host's callback cancels the run and comes back as itself.
        with pytest.raises(ZeroDivisionError):
            s.run(lambda f: 1 / 0)
        fractions = []
        mask = s.run(lambda f: fractions.append(f) or True)
    assert dice(mask, sub_liver) >= 0.85
    assert fractions and fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)


def test_background_run_reports_progress_and_cancels_from_another_thread(engine, ct, liver):
    vol, affine = ct
    with engine.session(vol, affine, intensity="ct") as s:
        s.add_box_ijk(1, box_of(liver))
        run = BackgroundRun(s)
        deadline = time.monotonic() + 120
        while run.fraction == 0.0 and not run.done and time.monotonic() < deadline:
            time.sleep(0.02)
        assert 0.0 < run.fraction < 1.0
        run.cancel()  # from this (the "GUI") thread while the worker runs
        assert run.wait(120)
        assert run.cancelled
        with pytest.raises(VoxPromptError) as e:
            run.result()
        assert e.value.name == "CANCELLED"


def test_brain_structures_by_text_through_the_binding():
    template = REPO / "data/mni/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    aseg = REPO / "data/covale/aseg-auto.nii.gz"
    vol, affine = kji(template)
    e = Engine(threads=2, brain_atlas=(template, aseg))
    try:
        with e.session(vol, affine, intensity="mr") as s:
            s.add_text(1, "left hippocampus")
            s.add_text(2, "right hippocampus")
            mask = s.run()
            report = s.report()
    finally:
        e.close()
    # The atlas registered onto its own template: each hippocampus on its side of the head in world x
    # (RAS), about 4 ml at 1 mm, and the prior is the answer ("prior only", no model ran).
    ijk = {label: np.argwhere(mask == label)[:, ::-1] for label in (1, 2)}  # rows of (i, j, k)
    for label, side in ((1, -1), (2, 1)):
        assert 2500 < len(ijk[label]) < 6500, (label, len(ijk[label]))
        x = (affine[:3, :3] @ ijk[label].mean(axis=0) + affine[:3, 3])[0]
        assert np.sign(x) == side and abs(x) > 15, (label, x)
        hints = [p for p in report[label - 1]["prompts"] if p["kind"] == "hint"]
        assert hints[0]["contribution"]["hint"] == "prior only"


def test_an_installed_onnxruntime_wheel_is_found_on_disk_without_importing_it(tmp_path):
    from VoxPromptLib import locate_onnxruntime

    for site, version in (("a", "1.31.0"), ("b", "1.32.0"), ("c", "1.9.0")):
        capi = tmp_path / site / "onnxruntime" / "capi"
        capi.mkdir(parents=True)
        (capi / f"libonnxruntime.so.{version}").write_bytes(b"")
    found = locate_onnxruntime([str(tmp_path / s) for s in "abc"] + [str(tmp_path / "missing")])
    assert found == tmp_path / "b" / "onnxruntime" / "capi" / "libonnxruntime.so.1.32.0"  # 1.32 > 1.31 > 1.9
    assert locate_onnxruntime([str(tmp_path / "missing")]) is None
    assert "onnxruntime" not in sys.modules



def _header():
    """include/voxprompt.h without comments: its prototypes (name -> (return type, [argument types])) and its
    struct definitions (name -> [(field, type, array length)]). Types are (base, pointer depth), const dropped."""
    import re

    text = (REPO / "include" / "voxprompt.h").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)

    def typ(t: str) -> tuple[str, int]:
        t = t.replace("const ", "")
        return t.replace("*", "").strip(), t.count("*")

    def arg_type(a: str) -> tuple[str, int]:
        a = re.sub(r"\s+", " ", a.strip())
        return typ(re.sub(r"\b\w+$", "", a) if not a.endswith("*") else a)

    protos = {}
    for ret, name, args in re.findall(r"^([A-Za-z_][\w *]*?)\s*\b(vxp_\w+)\(([^)]*)\);", text, flags=re.M):
        protos[name] = (typ(ret), [] if args.strip() == "void" else [arg_type(a) for a in args.split(",")])
    structs = {}
    for name, body in re.findall(r"typedef struct (vxp_\w+) \{(.*?)\}", text, flags=re.S):
        structs[name] = [(f, typ(t), int(n) if n else 1)
                         for t, f, n in re.findall(r"([\w ]+?[\s*]+)(\w+)(?:\[(\d+)\])?;", body)]
    return protos, structs


def _ctype(base: str, depth: int):
    """How the binding must declare a header type to ctypes."""
    from ctypes import (POINTER, c_bool, c_char_p, c_double, c_float, c_int64, c_size_t, c_uint8, c_uint32, c_uint64,
                        c_void_p)

    from VoxPromptLib.binding import LOG_FN, PROGRESS_FN, VxpRunStats, VxpVolume
    enums = ("vxp_result", "vxp_policy", "vxp_overlap", "vxp_log_level", "vxp_stage", "vxp_dtype", "vxp_intensity")
    scalars = {"uint8_t": c_uint8, "uint32_t": c_uint32, "uint64_t": c_uint64, "int64_t": c_int64, "size_t": c_size_t,
               "double": c_double, "float": c_float, "bool": c_bool, "vxp_progress_fn": PROGRESS_FN,
               "vxp_log_fn": LOG_FN, **{e: c_uint32 for e in enums}}
    if depth == 0:
        return None if base == "void" else scalars[base]
    if depth == 1:
        special = {"char": c_char_p, "void": c_void_p, "struct vxp_volume": POINTER(VxpVolume),
                   "struct vxp_run_stats": POINTER(VxpRunStats)}
        if base in special:
            return special[base]
        if base.startswith("struct vxp_"):
            return c_void_p  # an opaque handle
        return POINTER(scalars[base])
    assert depth == 2 and base.startswith("struct vxp_"), (base, depth)
    return POINTER(c_void_p)  # where a new handle is written


def test_the_binding_declares_every_function_and_struct_as_the_header_does():
    import ctypes

    from VoxPromptLib import binding

    def same(a, b) -> bool:
        if a == b:
            return True
        if isinstance(a, type) and isinstance(b, type):
            if issubclass(a, ctypes._Pointer) and issubclass(b, ctypes._Pointer):
                return a._type_ == b._type_
            if issubclass(a, ctypes.Array) and issubclass(b, ctypes.Array):
                return (a._length_, a._type_) == (b._length_, b._type_)
        return False

    protos, structs = _header()
    assert len(protos) > 40 and "vxp_session_report" in protos, sorted(protos)
    for name, (restype, argtypes) in binding._SIGNATURES.items():
        assert name in protos, f"{name} is declared by the binding but not in include/voxprompt.h"
        ret, args = protos[name]
        assert same(restype, _ctype(*ret)), (name, "returns", ret, restype)
        assert len(args) == len(argtypes), f"{name}: the binding has {len(argtypes)} arguments, the header {args}"
        for i, (c, py) in enumerate(zip(args, argtypes)):
            # A voxel buffer (uint8_t *, float *) may be passed as a numpy array's address.
            buffer = c[1] == 1 and c[0] in ("uint8_t", "float") and py is ctypes.c_void_p
            assert buffer or same(py, _ctype(*c)), (name, f"argument {i}", c, py, _ctype(*c))
    # Struct layouts: the same fields in the same order and types, so the same offsets and size.
    for py, c in ((binding.VxpVolume, "vxp_volume"), (binding.VxpRunStats, "vxp_run_stats")):
        fields = structs[c]
        assert [f for f, _, _ in fields] == [f for f, _ in py._fields_], (c, fields)
        for (fname, t, n), (_, pytype) in zip(fields, py._fields_):
            want = _ctype(*t) * n if n > 1 else _ctype(*t)
            assert same(pytype, want), (c, fname, t, n, pytype)
