"""The CLI's DICOM SEG (`-o .dcm`) read back by a maintained reader: highdicom (with pydicom).

Run by `make test-plugin` with the rest of this folder; the CLI, the library and ONNX Runtime are found as in
test_slicer_segmentation.py. TotalSegmentator case B (data/, from `make setup`): a 20-slice anonymised CT
series; one object, the liver, from its reference mask's box with the reference policy. The same run is made
twice, once to `.dcm` and once to `.nii.gz` (the engine is deterministic), and the SEG's mask, rebuilt on the
source series by highdicom, must equal the NIfTI's voxel for voxel.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.sr.coding import Code

REPO = Path(__file__).resolve().parents[2]
SERIES = REPO / "data/totalsegmentator/example_ct_dicom"
SEG = REPO / "data/totalsegmentator/example_seg_dicom.nii.gz"


def cli() -> Path:
    if os.environ.get("VXP_CLI"):
        return Path(os.environ["VXP_CLI"])
    lib = Path(os.environ.get("VXP_LIB", REPO / "target/debug/libvoxprompt.so"))
    return lib.parent / "voxprompt"


def source_series() -> list[pydicom.Dataset]:
    """The series' headers in the CLI's slice order: by position along the normal. Case B is anonymised: its
    data sets' SOP UIDs are empty, and its file meta groups name the instances."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(SERIES.iterdir())]
    o = np.array(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(o[:3], o[3:])
    return sorted(headers, key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, dtype=float), normal)))


def uid_of(d: pydicom.Dataset) -> str:
    return d.SOPInstanceUID or d.file_meta.MediaStorageSOPInstanceUID


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    if not SERIES.is_dir():
        pytest.skip(f"{SERIES} is missing: run `make setup`")
    d = tmp_path_factory.mktemp("dicomseg")
    env = dict(os.environ, VXP_MODEL_DIR=str(REPO / "models/litemedsam"))
    reports = []
    for out in (d / "liver.dcm", d / "liver.nii.gz"):
        run = subprocess.run(
            [str(cli()), "segment", str(SERIES), "-o", str(out),
             "--reference", str(SEG), "--reference-label", "5", "--box-from-reference",
             "--policy", "reference", "--modality", "ct", "--threads", "2", "--json"],
            capture_output=True, text=True, env=env, timeout=600,
        )
        assert run.returncode == 0, run.stderr
        reports.append(json.loads(run.stdout))
    assert reports[0]["objects"][0]["voxels"] == reports[1]["objects"][0]["voxels"]
    return d / "liver.dcm", d / "liver.nii.gz", reports[0]


def test_highdicom_reads_the_segment_descriptions(outputs):
    dcm, _, _ = outputs
    seg = hd.seg.segread(str(dcm))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.segmentation_type == hd.seg.SegmentationTypeValues.BINARY
    assert seg.number_of_segments == 1
    d = seg.get_segment_description(1)
    assert d.segment_number == 1 and d.segment_label == "reference label 5"
    # No text named the object: Slicer's default "Tissue" terminology, as the .seg.nrrd has.
    assert d.segmented_property_category == Code("85756007", "SCT", "Tissue")
    assert d.segmented_property_type == Code("85756007", "SCT", "Tissue")
    assert d.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    assert d.SegmentAlgorithmName == "VoxPrompt"
    # Label 1's montage colour [255, 64, 64], converted as highdicom converts (its matrix has 4 digits, ours
    # 7), and back to the same colour.
    lab = d.RecommendedDisplayCIELabValue
    assert np.allclose(lab, hd.color.CIELabColor.from_rgb(255, 64, 64).value, atol=16), lab
    assert np.allclose(hd.color.CIELabColor.from_dicom_value(lab).to_rgb(clip=True), [255, 64, 64], atol=1), lab
    headers = source_series()
    assert seg.FrameOfReferenceUID == headers[0].FrameOfReferenceUID
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    assert referenced == {uid_of(h) for h in headers}


def test_the_mask_on_the_source_instances_equals_the_nifti_of_the_same_run(outputs):
    dcm, nii, report = outputs
    seg = hd.seg.segread(str(dcm))
    headers = source_series()
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[uid_of(h) for h in headers], combine_segments=True)
    # (instances, rows, columns); the NIfTI's array is (i = column, j = row, k = slice).
    labels = np.asanyarray(nib.load(str(nii)).dataobj)
    assert pixels.shape == (20, 512, 512) and labels.shape == (512, 512, 20)
    assert np.array_equal(pixels, labels.transpose(2, 1, 0))
    assert int(pixels.sum()) == report["objects"][0]["voxels"] > 300_000


def test_the_volume_highdicom_builds_lies_where_the_nifti_says(outputs):
    dcm, nii, _ = outputs
    volume = hd.seg.segread(str(dcm)).get_volume(combine_segments=True)
    image = nib.load(str(nii))
    labels = np.asanyarray(image.dataobj)
    # NIfTI voxel -> RAS -> LPS -> highdicom's (slice, row, column): a whole-voxel permutation of axes.
    to_seg = np.linalg.inv(volume.affine) @ np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine
    assert np.allclose(to_seg, np.round(to_seg), atol=1e-4), to_seg
    ijk = np.argwhere(labels == 1)
    src = (np.round(to_seg) @ np.c_[ijk, np.ones(len(ijk))].T)[:3].T.astype(int)
    assert (src >= 0).all() and (src < volume.array.shape).all()
    assert (volume.array[tuple(src.T)] == 1).all()
    assert int((volume.array == 1).sum()) == len(ijk)
