"""The Slicer Logic's Slicer-free half (VoxPromptLib.workflow) on the real library and CT: settings into the
engine (OpenVINO among them), several objects in one Apply named after their prompts, refine and undo on the
same segments, and the memory refusal before a run. test_logic.py covers the Engine / Session layer below it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugin" / "VoxPrompt"))

from VoxPromptLib import VoxPromptError, box_of, dice, find_library  # noqa: E402
from VoxPromptLib.workflow import (CONFIDENCE_BYTES_PER_VOXEL, DEFAULT_CACHE_MB, NotEnoughMemory,  # noqa: E402
                                   ObjectPrompt, SegmentationLogic, Settings, available_memory, confidence_colors,
                                   objects_from_inputs, run_memory, split_phrases)

CT = REPO / "tests/fixtures/data/example_ct_sm.nii.gz"
SEG = REPO / "tests/fixtures/data/example_seg.nii.gz"
SPLEEN, LIVER = 1, 5
SLAB = slice(12, 16)  # four slices holding both liver and spleen: quick runs


def kji(path: Path):
    img = nib.load(str(path))
    return np.asanyarray(img.dataobj).transpose(2, 1, 0), img.affine


@pytest.fixture(scope="module")
def ct():
    return kji(CT)


@pytest.fixture(scope="module")
def labels():
    return kji(SEG)[0]


def ras_box(affine, mask):
    """A markups ROI's bounds around a [k, j, i] mask, as the Slicer Logic reads them (RAS, mm)."""
    i0, j0, k0, i1, j1, k1 = box_of(mask)
    corners = np.array([affine @ np.array([i, j, k, 1.0]) for i in (i0, i1) for j in (j0, j1) for k in (k0, k1)])
    lo, hi = corners[:, :3].min(axis=0), corners[:, :3].max(axis=0)
    return tuple(float(v) for v in (*lo, *hi))


def slab_mask(logic: SegmentationLogic, vol, affine, box, key="slab"):
    run = logic.start(key, vol, affine, [ObjectPrompt("roi:1", "box", box)], intensity="ct", policy="reference")
    result = logic.finish(run)
    (seg,) = result.segments
    return seg.mask, result


# ---- settings into the engine ----

def test_openvino_from_the_settings_runs_and_gives_the_cpu_masks(ct, labels):
    vol, affine = ct
    slab, liver = vol[SLAB], labels[SLAB] == LIVER
    box = ras_box(affine, liver)
    cpu = SegmentationLogic(Settings(providers="cpu", threads=2))
    ov = SegmentationLogic(Settings(providers="openvino", threads=2))
    assert cpu.engine().provider == "cpu"
    assert ov.engine().provider == "openvino"
    want, r_cpu = slab_mask(cpu, slab, affine, box)
    got, r_ov = slab_mask(ov, slab, affine, box)
    assert r_cpu.provider == "cpu" and r_ov.provider == "openvino"
    assert dice(want, liver) >= 0.9
    assert int((want != got).sum()) == 0
    cpu.forget()
    ov.forget()


def test_a_bogus_openvino_library_falls_back_to_cpu_with_the_reason():
    bogus = "/nonexistent/openvino/libopenvino_c.so.2640"
    logic = SegmentationLogic(Settings(providers="openvino", openvino_library=bogus, threads=2))
    provider = logic.engine().provider
    head, _, reason = provider.partition(";")
    assert head == "cpu", provider
    assert bogus in reason and "No such file" in reason, provider


def test_precision_and_cache_budget_reach_the_engine(ct, labels):
    with pytest.raises(VoxPromptError) as e:
        SegmentationLogic(Settings(precision="sloppy")).engine()
    assert e.value.name == "INVALID_ARGUMENT" and "sloppy" in e.value.message
    # One LiteMedSAM embedding is 4 MiB: a 4 MiB budget holds one of the slab's four, the default all four.
    vol, affine = ct
    slab, liver = vol[SLAB], labels[SLAB] == LIVER
    small = SegmentationLogic(Settings(threads=2, cache_mb=4))
    _, result = slab_mask(small, slab, affine, ras_box(affine, liver))
    assert result.stats["slices_encoded"] == 4
    assert result.stats["cache_entries"] == 1 and result.stats["cache_bytes"] <= 4 << 20, result.stats
    small.forget()


def test_the_library_folder_setting_finds_the_library_in_it(tmp_path, monkeypatch):
    monkeypatch.delenv("VXP_LIB", raising=False)
    (tmp_path / "libvoxprompt.so").write_bytes(b"")
    assert find_library(str(tmp_path)) == tmp_path / "libvoxprompt.so"
    (tmp_path / "libvoxprompt.so.0").write_bytes(b"")
    assert find_library(str(tmp_path)) == tmp_path / "libvoxprompt.so.0"  # the SONAME first
    assert Settings(library=str(tmp_path), cache_mb=64).engine_options()["library_path"] == str(tmp_path)
    assert Settings(providers=" ").engine_options()["providers"] == "cpu"


# ---- objects from the host's inputs ----

def test_phrases_and_boxes_make_objects():
    box_a, box_b = (0, 0, 0, 9, 9, 9), (10, 10, 10, 19, 19, 19)
    p = (1.0, 2.0, 3.0, True)
    assert split_phrases(" liver;spleen\n\nLiver ; tumour of the right kidney, upper pole ") == [
        "liver", "spleen", "tumour of the right kidney, upper pole"]
    # One ROI and one phrase: one object, the box where, the text what.
    (o,) = objects_from_inputs([("n1", "ROI", box_a)], [p], "liver")
    assert (o.key, o.box_ras, o.text, o.points_ras) == ("roi:n1", box_a, "liver", (p,))
    # Phrases name the boxes in order; the rest are objects of their own; points refine the first.
    objs = objects_from_inputs([("n1", "A", box_a), ("n2", "B", box_b)], [p], "liver; spleen; left kidney")
    assert [(o.key, o.text, bool(o.points_ras)) for o in objs] == [
        ("roi:n1", "liver", True), ("roi:n2", "spleen", False), ("text:left kidney", "left kidney", False)]
    objs = objects_from_inputs([("n1", "A", box_a), ("n2", "B", box_b)], [], "liver")
    assert [(o.key, o.name, o.text) for o in objs] == [("roi:n1", "A", "liver"), ("roi:n2", "B", None)]
    (o,) = objects_from_inputs([], [p], None)
    assert (o.key, o.name, o.points_ras) == ("points", "VoxPrompt", (p,))
    assert objects_from_inputs([], [], "  ;  ") == []


# ---- several objects, refine, removal, undo ----

def test_several_objects_in_one_apply_each_a_segment_named_after_its_prompt(ct, labels):
    vol, affine = ct
    liver, spleen = labels == LIVER, labels == SPLEEN
    roi = [("vtkMRMLMarkupsROINode1", "R", ras_box(affine, liver))]
    logic = SegmentationLogic(Settings(threads=2))
    run = logic.start("ct", vol, affine, objects_from_inputs(roi, [], "liver; spleen"), version=1,
                      intensity="ct", confidence=True)
    first = logic.finish(run)
    by_name = {s.name: s for s in first.segments}
    assert sorted(by_name) == ["liver", "spleen"], list(by_name)
    assert first.stats["objects_full"] == 2 and first.stats["slices_encoded"] == vol.shape[0]
    assert dice(by_name["liver"].mask, liver) >= 0.9
    assert dice(by_name["spleen"].mask, spleen) >= 0.8
    # Named and coded as the library resolves them (SNOMED CT liver 10200004, spleen 78961009).
    assert by_name["liver"].terminology.split("~")[2] == "SCT^10200004^Liver"
    assert by_name["spleen"].terminology.split("~")[2] == "SCT^78961009^Spleen"
    assert by_name["spleen"].color == pytest.approx((50 / 255, 170 / 255, 60 / 255))
    for s in first.segments:
        assert s.mask.shape == vol.shape and s.voxels == int(s.mask.sum()) > 1000
        assert 0.5 < s.confidence <= 1.0
        assert not (s.mask.astype(bool) & (first.confidence == 0)).any()  # confidence on the same grid
    assert first.confidence.shape == vol.shape and first.removed == []
    ids = {s.name: s.segment_id for s in first.segments}
    assert len(set(ids.values())) == 2

    # Refine: the same inputs plus a negative point on the liver's worst false positive refine the boxed
    # liver only, into the same segments.
    wrong = by_name["liver"].mask.astype(bool) & ~liver
    k = int(np.argmax(wrong.reshape(wrong.shape[0], -1).sum(axis=1)))
    jj, ii = np.nonzero(wrong[k])
    centre = np.array([jj.mean(), ii.mean()])
    n = int(np.argmin((jj - centre[0]) ** 2 + (ii - centre[1]) ** 2))
    point = tuple(float(v) for v in (affine @ np.array([ii[n], jj[n], k, 1.0]))[:3]) + (False,)
    run = logic.start("ct", vol, affine, objects_from_inputs(roi, [point], "liver; spleen"), version=1,
                      intensity="ct")
    second = logic.finish(run)
    st = second.stats
    assert st["slices_encoded"] == 0 and st["objects_refined"] == 1 and st["objects_unchanged"] == 1, st
    assert {s.name: s.segment_id for s in second.segments} == ids
    assert np.array_equal({s.name: s for s in second.segments}["spleen"].mask, by_name["spleen"].mask)

    # The spleen no longer asked for: its segment is reported removed, the liver kept as it was.
    run = logic.start("ct", vol, affine, objects_from_inputs(roi, [point], "liver"), version=1, intensity="ct")
    third = logic.finish(run)
    assert third.removed == [ids["spleen"]]
    assert [s.segment_id for s in third.segments] == [ids["liver"]]
    assert third.stats["objects_unchanged"] == 1 and third.stats["slices_encoded"] == 0, third.stats
    # The removal ran nothing, so the library made no checkpoint of it: undo drops it (the spleen is back
    # under its old segment id, without inference) and it cannot be redone.
    back = logic.undo("ct")
    assert {s.name: s.segment_id for s in back.segments} == ids and back.removed == []
    assert back.stats["slices_encoded"] == 0 and back.stats["decoder_runs"] == 0, back.stats
    assert np.array_equal({s.name: s for s in back.segments}["spleen"].mask, by_name["spleen"].mask)
    with pytest.raises(VoxPromptError) as e:
        logic.redo("ct")
    assert e.value.code == 109
    # Undo again: before the negative point; redo: after it.
    refined = {s.name: s for s in second.segments}["liver"].mask
    assert not np.array_equal(refined, by_name["liver"].mask)
    assert np.array_equal({s.name: s for s in logic.undo("ct").segments}["liver"].mask, by_name["liver"].mask)
    assert np.array_equal({s.name: s for s in logic.redo("ct").segments}["liver"].mask, refined)
    assert sorted(p.name for p in logic.segments("ct")) == ["liver", "spleen"]
    logic.forget()
    assert logic.segments("ct") == []


def test_an_unknown_phrase_fails_the_apply_and_the_next_one_goes_on(ct, labels):
    vol, affine = ct
    slab, liver = vol[SLAB], labels[SLAB] == LIVER
    logic = SegmentationLogic(Settings(threads=2))
    objs = [ObjectPrompt("roi:1", "box", ras_box(affine, liver)), ObjectPrompt("text:x", "x", text="banana bread")]
    with pytest.raises(VoxPromptError) as e:
        logic.start("slab", slab, affine, objs, intensity="ct")
    assert e.value.name == "UNKNOWN_CONCEPT" and "closest:" in str(e.value)
    result = logic.finish(logic.start("slab", slab, affine, objs[:1], intensity="ct"))
    (seg,) = result.segments
    assert seg.name == "box" and seg.terminology is None and dice(seg.mask, liver) >= 0.85
    assert result.stats["objects_full"] == 1 and result.stats["slices_encoded"] == 4
    # Apply (restart) computes the object anew into the same segment, from the cached embeddings.
    again = logic.finish(logic.start("slab", slab, affine, objs[:1], intensity="ct", restart=True))
    assert [s.segment_id for s in again.segments] == [seg.segment_id]
    assert again.stats["objects_full"] == 1 and again.stats["slices_encoded"] == 0, again.stats
    assert np.array_equal(again.segments[0].mask, seg.mask)
    logic.undo("slab")
    # The first run is the history's first checkpoint: nothing before it to undo to.
    with pytest.raises(VoxPromptError) as e:
        logic.undo("slab")
    assert e.value.code == 109
    logic.forget()


# ---- memory ----

def test_a_run_too_large_for_memory_is_refused_before_it_starts(ct, tmp_path):
    vol, affine = ct
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        8000000 kB\nMemFree:          200000 kB\nMemAvailable:     102400 kB\n")
    assert available_memory(meminfo) == 100 << 20
    logic = SegmentationLogic(Settings(threads=2), meminfo=meminfo)
    with pytest.raises(NotEnoughMemory) as e:
        logic.start("ct", vol, affine, [ObjectPrompt("text:liver", text="liver")], confidence=True)
    voxels = 30 * 101 * 122
    assert e.value.need == voxels * (10 + 1 + CONFIDENCE_BYTES_PER_VOXEL) + (DEFAULT_CACHE_MB << 20)
    assert e.value.available == 100 << 20 and e.value.name == "TOO_LARGE"
    assert "122 x 101 x 30 volume needs about 133 MiB" in e.value.message, e.value.message
    assert "100 MiB is available" in e.value.message
    assert logic.segments("ct") == [] and not logic._volumes  # no session was made
    # A refine of a session that exists needs only the outputs.
    assert run_memory(vol.shape, 128 << 20, False, new_session=False) == voxels
    assert available_memory(tmp_path / "absent") is None
    real = available_memory()
    assert real is not None and real > 64 << 20


def test_the_confidence_colour_table_runs_from_unsure_red_to_sure_green():
    c = confidence_colors(256)
    assert c.shape == (256, 4) and (0 <= c).all() and (c <= 1).all()
    assert tuple(c[-1]) == (0.0, 1.0, 0.0, 1.0) and tuple(c[128, :3]) == pytest.approx((1.0, 1.0, 0.0), abs=0.01)
    assert c[0, 3] == 0.0 and c[20, 3] == 1.0  # no opinion stays transparent over the image
    assert (np.diff(c[:, 1]) >= 0).all() and (np.diff(c[:, 0]) <= 0).all()
