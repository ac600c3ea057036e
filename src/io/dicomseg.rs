//! DICOM Segmentation objects (`.dcm`): a label mask as a binary Segmentation IOD (PS3.3 A.51, SOP Class
//! 1.2.840.10008.5.1.4.1.1.66.4) derived from the DICOM series it was segmented on, built as a dicom-object
//! in-memory data set and written by its writer in explicit VR little endian.
//!
//! - One segment per object, numbered 1, 2, … in label order (the label itself when labels are 1..n), with
//!   its label (the name), `SegmentAlgorithmType` SEMIAUTOMATIC (the mask is computed from prompts a user
//!   gave: PS3.3 C.8.20.2.3 keeps AUTOMATIC for masks computed without user input) named "VoxPrompt", the
//!   terminology's category, type (+ its modifier, the side) and anatomic region codes, and
//!   `RecommendedDisplayCIELabValue` from the sRGB colour (`cielab`, as highdicom and dcmqi convert).
//! - Frames: one per segment and source slice holding that segment's voxels (slices without them are not
//!   written, as highdicom writes by default), segment by segment, each slice in source position order. A
//!   mask with no voxels at all gets the first slice of segment 1 (empty), as the object needs a frame.
//! - `SegmentationType` BINARY: 1 bit per pixel, the frames' bits packed one after another with no padding
//!   between frames (PS3.5 8.1.1, PS3.3 C.8.20.2), first pixel in the lowest bit, the whole value padded
//!   with zero bits to an even number of bytes.
//! - Functional groups: shared PixelMeasures (the source's pixel spacing, slice thickness and step) and
//!   PlaneOrientation; per frame its FrameContent (DimensionIndexValues: segment number, then the slice's
//!   1-based position index), PlanePosition (the source slice's ImagePositionPatient, as that file states
//!   it), DerivationImage with the slice's SOP Class and Instance UIDs as SourceImage (spatial locations
//!   preserved: the frame is on the slice's pixel grid), and
//!   SegmentIdentification. The dimensions are those highdicom writes for a volume: ReferencedSegmentNumber
//!   in SegmentIdentificationSequence, then ImagePositionPatient in PlanePositionSequence.
//! - The source's Study Instance UID, Frame of Reference UID and Patient and General Study attributes are
//!   copied; a new Series and SOP Instance UID (`new_uid`). An anonymised source with no Study Instance UID
//!   gets a new one (the SEG then sits in a study of its own), and one with no Series Instance UID is
//!   referenced in `ReferencedSeriesSequence` by the empty UID it has.
//!
//! The caller describes the segments (`segnrrd::Segment`, as for a Slicer segmentation); this module knows
//! nothing of concepts or sessions.

use std::io::Write;

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

use super::dicom::SourceSeries;
use super::segnrrd::{Code, Segment};
use crate::error::{Error, Result};
use crate::volume::U8Volume;

/// Segmentation Storage.
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// What `SegmentAlgorithmName` and the equipment modules name.
pub const ALGORITHM_NAME: &str = "VoxPrompt";

/// The identity of a new object: its UIDs and when it was made (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    /// The study of a source that has no Study Instance UID.
    pub study_instance_uid: String,
    /// YYYYMMDD.
    pub date: String,
    /// HHMMSS.
    pub time: String,
}

impl Created {
    /// New UIDs, now.
    pub fn now() -> Result<Created> {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (date, time) = utc(secs);
        Ok(Created {
            series_instance_uid: new_uid()?,
            sop_instance_uid: new_uid()?,
            study_instance_uid: new_uid()?,
            date,
            time,
        })
    }
}

/// A new UID under the 2.25 root (PS3.5 B.2, ITU-T X.667): a random (version 4) UUID as one decimal integer.
pub fn new_uid() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Unsupported(format!("no random numbers for a new UID: {e}")))?;
    Ok(uuid_uid(b))
}

/// `2.25.` and the UUID of 16 random bytes with its version (4) and variant (RFC 4122) bits set.
fn uuid_uid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// `secs` after the Unix epoch as a UTC date (YYYYMMDD) and time (HHMMSS).
fn utc(secs: u64) -> (String, String) {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to the civil calendar (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}{month:02}{day:02}"), format!("{:02}{:02}{:02}", rest / 3600, rest / 60 % 60, rest % 60))
}

/// An sRGB colour as DICOM's CIELab value (PS3.3 C.10.7.1.1): L* in 0..=100 scaled to 0..=65535, a* and b* in
/// −128..=127 scaled to 0..=65535. The sRGB values are linearised (IEC 61966-2-1), taken to XYZ with the sRGB
/// (D65) matrix, then to CIELab relative to the D65 white, with no chromatic adaptation: the conversion
/// pixelmed, highdicom and dcmqi (3D Slicer's DICOM SEG reader) make, so their CIELab → RGB gives the colour
/// back. (PS3.3 speaks of ICC PCS values, whose white is D50; a D50-adapted value would come back shifted
/// in those readers.)
pub fn cielab(rgb: [u8; 3]) -> [u16; 3] {
    let lin = rgb.map(|c| {
        let v = f64::from(c) / 255.0;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    });
    const M: [[f64; 3]; 3] = [
        [0.412_456_4, 0.357_576_1, 0.180_437_5],
        [0.212_672_9, 0.715_152_2, 0.072_175_0],
        [0.019_333_9, 0.119_192_0, 0.950_304_1],
    ];
    const WHITE: [f64; 3] = [0.950_47, 1.0, 1.088_83];
    let xyz: [f64; 3] = std::array::from_fn(|r| (0..3).map(|c| M[r][c] * lin[c]).sum::<f64>() / WHITE[r]);
    let f = |t: f64| {
        let e: f64 = 216.0 / 24_389.0;
        let k: f64 = 24_389.0 / 27.0;
        if t > e {
            t.cbrt()
        } else {
            (k * t + 16.0) / 116.0
        }
    };
    let (fx, fy, fz) = (f(xyz[0]), f(xyz[1]), f(xyz[2]));
    let (l, a, b) = (116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz));
    let scale = |v: f64, lo: f64, hi: f64| ((v.clamp(lo, hi) - lo) / (hi - lo) * 65535.0).round() as u16;
    [scale(l, 0.0, 100.0), scale(a, -128.0, 127.0), scale(b, -128.0, 127.0)]
}

/// One frame: a segment (its number) on a source slice (k).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    segment: u16,
    label: u8,
    k: usize,
}

/// The frames written, in order: segment by segment (in label order), the slices holding its voxels by k.
fn frames(mask: &U8Volume, labels: &[u8]) -> Vec<Frame> {
    let n = mask.dims[0] * mask.dims[1];
    let mut on = vec![[false; 256]; mask.dims[2]];
    for (k, slice) in mask.data.chunks_exact(n.max(1)).enumerate().take(mask.dims[2]) {
        for &v in slice {
            on[k][v as usize] = true;
        }
    }
    let mut out: Vec<Frame> = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        for (k, present) in on.iter().enumerate() {
            if present[label as usize] {
                out.push(Frame { segment: (i + 1) as u16, label, k });
            }
        }
    }
    if out.is_empty() {
        out.push(Frame { segment: 1, label: labels[0], k: 0 });
    }
    out
}

/// The frames' pixels (1 where the voxel holds the frame's label), one bit each, packed across frames with
/// no padding between them, first pixel in the lowest bit; padded with zeros to an even number of bytes.
fn pack_frames(mask: &U8Volume, frames: &[Frame]) -> Vec<u8> {
    let n = mask.dims[0] * mask.dims[1];
    let bits = n * frames.len();
    let mut out = vec![0u8; bits.div_ceil(8)];
    let mut at = 0usize;
    for f in frames {
        for &v in &mask.data[f.k * n..(f.k + 1) * n] {
            if v == f.label {
                out[at / 8] |= 1 << (at % 8);
            }
            at += 1;
        }
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

fn el(tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, v.into())
}

fn strs(tag: Tag, vr: VR, v: &[&str]) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::Strs(v.iter().map(|s| s.to_string()).collect()))
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn item(elements: impl IntoIterator<Item = DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

/// Decimal strings (DS) of at most 16 characters.
fn ds(v: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(v.iter().map(|&x| ds_one(x)).collect())
}

fn ds_one(x: f64) -> String {
    let s = format!("{x}");
    if s.len() <= 16 {
        return s;
    }
    // Fewer significant digits until it fits (an exponent form if need be).
    (1..=15)
        .rev()
        .map(|p| format!("{x:.p$e}"))
        .map(|e| format!("{}", e.parse::<f64>().unwrap_or(x)))
        .find(|s| s.len() <= 16)
        .unwrap_or_else(|| format!("{x:.6e}"))
}

/// A code sequence item: CodeValue (LongCodeValue past 16 characters), scheme, meaning.
fn code_item(c: &Code, extra: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    let value = if c.value.len() > 16 {
        el(tags::LONG_CODE_VALUE, VR::UC, c.value.as_str())
    } else {
        el(tags::CODE_VALUE, VR::SH, c.value.as_str())
    };
    item(
        [
            value,
            el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, c.scheme.as_str()),
            el(tags::CODE_MEANING, VR::LO, c.meaning.as_str()),
        ]
        .into_iter()
        .chain(extra),
    )
}

fn dcm(value: &str, meaning: &str) -> Code {
    Code { scheme: "DCM".into(), value: value.into(), meaning: meaning.into() }
}

/// Refuses what no valid SEG of `source` can hold: a mask not on the source's grid, no segment, label 0 or a
/// label given twice, and a mask value no segment describes.
fn check(mask: &U8Volume, source: &SourceSeries, segments: &[Segment]) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    let grid = [source.columns, source.rows, source.instances.len()];
    if mask.dims != grid || mask.data.len() != grid.iter().product::<usize>() {
        return bad(format!(
            "the mask's dims {:?} are not the source series' {grid:?} (columns, rows, slices)",
            mask.dims
        ));
    }
    if segments.is_empty() {
        return bad("a DICOM SEG needs at least one segment".into());
    }
    let mut described = [false; 256];
    for s in segments {
        if s.label == 0 {
            return bad(format!("segment {:?}: label 0 is the background", s.name));
        }
        if std::mem::replace(&mut described[s.label as usize], true) {
            return bad(format!("label {} is described by two segments", s.label));
        }
    }
    if let Some(&l) = mask.data.iter().find(|&&v| v != 0 && !described[v as usize]) {
        return bad(format!("the mask holds label {l}, which no segment describes"));
    }
    Ok(())
}

/// The SEG of `mask` (i fastest, on the grid of `source`: columns, rows, slices in its order) with `segments`.
pub fn build(
    mask: &U8Volume,
    source: &SourceSeries,
    segments: &[Segment],
    created: &Created,
) -> Result<InMemDicomObject> {
    check(mask, source, segments)?;
    let mut order: Vec<&Segment> = segments.iter().collect();
    order.sort_by_key(|s| s.label);
    let labels: Vec<u8> = order.iter().map(|s| s.label).collect();
    let frames = frames(mask, &labels);
    let version = env!("CARGO_PKG_VERSION");
    let study =
        if source.study_instance_uid.is_empty() { &created.study_instance_uid } else { &source.study_instance_uid };
    let dimension_uid = format!("{}.1", created.series_instance_uid);
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |e| {
        obj.put(e);
    };

    // SOP Common, General Series, Segmentation Series, General Equipment, Enhanced General Equipment.
    put(el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
    put(el(tags::SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE));
    put(el(tags::SOP_INSTANCE_UID, VR::UI, created.sop_instance_uid.as_str()));
    put(el(tags::INSTANCE_CREATION_DATE, VR::DA, created.date.as_str()));
    put(el(tags::INSTANCE_CREATION_TIME, VR::TM, created.time.as_str()));
    put(el(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"));
    put(el(tags::MODALITY, VR::CS, "SEG"));
    put(el(tags::SERIES_INSTANCE_UID, VR::UI, created.series_instance_uid.as_str()));
    put(el(tags::SERIES_NUMBER, VR::IS, "99"));
    put(el(tags::SERIES_DATE, VR::DA, created.date.as_str()));
    put(el(tags::SERIES_TIME, VR::TM, created.time.as_str()));
    put(el(tags::SERIES_DESCRIPTION, VR::LO, "VoxPrompt segmentation"));
    put(el(tags::MANUFACTURER, VR::LO, ALGORITHM_NAME));
    put(el(tags::MANUFACTURER_MODEL_NAME, VR::LO, "voxprompt"));
    put(el(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0"));
    put(el(tags::SOFTWARE_VERSIONS, VR::LO, version));

    // Patient and General Study, copied; Frame of Reference.
    for (tag, vr, value) in &source.copied {
        put(el(*tag, *vr, value.as_str()));
    }
    put(el(tags::STUDY_INSTANCE_UID, VR::UI, study.as_str()));
    put(el(tags::FRAME_OF_REFERENCE_UID, VR::UI, source.frame_of_reference_uid.as_str()));
    put(el(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""));

    // General Image, Segmentation Image, Image Pixel.
    put(el(tags::INSTANCE_NUMBER, VR::IS, "1"));
    put(el(tags::CONTENT_DATE, VR::DA, created.date.as_str()));
    put(el(tags::CONTENT_TIME, VR::TM, created.time.as_str()));
    put(strs(tags::IMAGE_TYPE, VR::CS, &["DERIVED", "PRIMARY"]));
    put(el(tags::CONTENT_LABEL, VR::CS, "VOXPROMPT"));
    put(el(tags::CONTENT_DESCRIPTION, VR::LO, "Prompted segmentation"));
    put(el(tags::CONTENT_CREATOR_NAME, VR::PN, ALGORITHM_NAME));
    put(el(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"));
    put(el(tags::SAMPLES_PER_PIXEL, VR::US, 1u16));
    put(el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
    put(el(tags::ROWS, VR::US, source.rows as u16));
    put(el(tags::COLUMNS, VR::US, source.columns as u16));
    put(el(tags::BITS_ALLOCATED, VR::US, 1u16));
    put(el(tags::BITS_STORED, VR::US, 1u16));
    put(el(tags::HIGH_BIT, VR::US, 0u16));
    put(el(tags::PIXEL_REPRESENTATION, VR::US, 0u16));
    put(el(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
    put(el(tags::NUMBER_OF_FRAMES, VR::IS, frames.len().to_string()));

    // The segments.
    let algorithm = item([
        seq(tags::ALGORITHM_FAMILY_CODE_SEQUENCE, vec![code_item(&dcm("123110", "Artificial Intelligence"), vec![])]),
        el(tags::ALGORITHM_NAME, VR::LO, ALGORITHM_NAME),
        el(tags::ALGORITHM_VERSION, VR::LO, version),
    ]);
    let segment_items = order
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let t = &s.terminology;
            let modifier = t
                .modifier
                .iter()
                .map(|m| seq(tags::SEGMENTED_PROPERTY_TYPE_MODIFIER_CODE_SEQUENCE, vec![code_item(m, vec![])]))
                .collect();
            let mut e = vec![
                el(tags::SEGMENT_NUMBER, VR::US, (i + 1) as u16),
                el(tags::SEGMENT_LABEL, VR::LO, s.name.as_str()),
                el(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "SEMIAUTOMATIC"),
                el(tags::SEGMENT_ALGORITHM_NAME, VR::LO, ALGORITHM_NAME),
                seq(tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE, vec![algorithm.clone()]),
                seq(tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE, vec![code_item(&t.category, vec![])]),
                seq(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![code_item(&t.kind, modifier)]),
                DataElement::new(
                    tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
                    VR::US,
                    PrimitiveValue::U16(cielab(s.color).into_iter().collect()),
                ),
            ];
            if let Some(r) = &t.region {
                let m = t
                    .region_modifier
                    .iter()
                    .map(|m| seq(tags::ANATOMIC_REGION_MODIFIER_SEQUENCE, vec![code_item(m, vec![])]))
                    .collect();
                e.push(seq(tags::ANATOMIC_REGION_SEQUENCE, vec![code_item(r, m)]));
            }
            item(e)
        })
        .collect();
    put(seq(tags::SEGMENT_SEQUENCE, segment_items));

    // Multi-frame Dimension: segment number, then position, as highdicom writes for a volume.
    put(seq(
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![item([el(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dimension_uid.as_str())])],
    ));
    let dimension = |pointer: Tag, group: Tag, label: &str| {
        item([
            el(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dimension_uid.as_str()),
            DataElement::new(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags([pointer].into_iter().collect()),
            ),
            DataElement::new(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags([group].into_iter().collect()),
            ),
            el(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };
    put(seq(
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dimension(tags::REFERENCED_SEGMENT_NUMBER, tags::SEGMENT_IDENTIFICATION_SEQUENCE, "Segment Number"),
            dimension(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE, "Image Position Patient"),
        ],
    ));
    put(el(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D"));

    // Functional groups.
    let mut measures = vec![
        DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&source.pixel_spacing)),
        DataElement::new(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[source.spacing_between_slices])),
    ];
    measures.push(DataElement::new(
        tags::SLICE_THICKNESS,
        VR::DS,
        ds(&[source.slice_thickness.unwrap_or(source.spacing_between_slices)]),
    ));
    let shared = item([
        seq(tags::PIXEL_MEASURES_SEQUENCE, vec![item(measures)]),
        seq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item([DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&source.orientation))])],
        ),
    ]);
    put(seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]));
    let per_frame = frames
        .iter()
        .map(|f| {
            let src = &source.instances[f.k];
            // A frame of a multi-frame source is referenced by its instance and its frame number.
            let frame_number = src.frame.map(|n| el(tags::REFERENCED_FRAME_NUMBER, VR::IS, n.to_string()));
            let source_image = item(
                [
                    el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, src.sop_class_uid.as_str()),
                    el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, src.sop_instance_uid.as_str()),
                ]
                .into_iter()
                .chain(frame_number)
                .chain([
                    el(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES"),
                    seq(
                        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                        vec![code_item(&dcm("121322", "Source image for image processing operation"), vec![])],
                    ),
                ]),
            );
            item([
                seq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![item([
                        seq(tags::DERIVATION_CODE_SEQUENCE, vec![code_item(&dcm("113076", "Segmentation"), vec![])]),
                        seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source_image]),
                    ])],
                ),
                seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![item([DataElement::new(
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        PrimitiveValue::U32([u32::from(f.segment), f.k as u32 + 1].into_iter().collect()),
                    )])],
                ),
                seq(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![item([DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&src.position))])],
                ),
                seq(
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    vec![item([el(tags::REFERENCED_SEGMENT_NUMBER, VR::US, f.segment)])],
                ),
            ])
        })
        .collect();
    put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));

    // Common Instance Reference: every source instance, once however many of its frames the volume holds.
    let mut seen = std::collections::HashSet::new();
    let instances = source
        .instances
        .iter()
        .filter(|i| seen.insert(i.sop_instance_uid.as_str()))
        .map(|i| {
            item([
                el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, i.sop_class_uid.as_str()),
                el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, i.sop_instance_uid.as_str()),
            ])
        })
        .collect();
    put(seq(
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![item([
            el(tags::SERIES_INSTANCE_UID, VR::UI, source.series_instance_uid.as_str()),
            seq(tags::REFERENCED_INSTANCE_SEQUENCE, instances),
        ])],
    ));

    put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(pack_frames(mask, &frames).into())));
    Ok(obj)
}

/// Writes `mask` as a DICOM SEG file (preamble, file meta group, data set) derived from `source`.
pub fn write_to(
    w: &mut dyn Write,
    mask: &U8Volume,
    source: &SourceSeries,
    segments: &[Segment],
    created: &Created,
) -> Result<()> {
    let obj = build(mask, source, segments, created)?;
    // The implementation class UID and version name are dicom-rs's own: it is what encodes the file.
    let meta = FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN);
    let file = obj.with_meta(meta).map_err(|e| Error::io("DICOM SEG", e.to_string()))?;
    file.write_all(w).map_err(|e| Error::io("DICOM SEG", e.to_string().replace('\n', " ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::dicom::Instance;
    use crate::io::segnrrd::Terminology;

    /// A 5-column, 3-row series of 3 slices (15 pixels a frame: not a whole number of bytes).
    fn source() -> SourceSeries {
        SourceSeries {
            study_instance_uid: "1.2.3".into(),
            series_instance_uid: "1.2.3.4".into(),
            frame_of_reference_uid: "1.2.3.5".into(),
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            pixel_spacing: [0.5, 0.25],
            spacing_between_slices: 2.0,
            slice_thickness: None,
            rows: 3,
            columns: 5,
            copied: crate::io::dicom::COPIED.iter().map(|&(t, vr)| (t, vr, String::new())).collect(),
            instances: (0..3)
                .map(|k| Instance {
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                    sop_instance_uid: format!("1.2.3.4.{}", k + 10),
                    frame: None,
                    position: [-10.0, -20.0, 30.0 + 2.0 * k as f64],
                })
                .collect(),
        }
    }

    fn segments() -> Vec<Segment> {
        let kidney = Terminology {
            category: Code::sct("123037004", "Anatomical Structure"),
            kind: Code::sct("64033007", "Kidney"),
            modifier: Some(Code::sct("7771000", "Left")),
            region: None,
            region_modifier: None,
        };
        let seg = |label: u8, name: &str, color: [u8; 3], terminology: Terminology| Segment {
            label,
            name: name.into(),
            name_auto_generated: false,
            color,
            color_auto_generated: false,
            terminology,
        };
        // Given out of order: segments are numbered in label order.
        vec![seg(2, "Segment_2", [0, 0, 0], Terminology::tissue()), seg(1, "left kidney", [255, 255, 255], kidney)]
    }

    fn created() -> Created {
        Created {
            series_instance_uid: "2.25.1".into(),
            sop_instance_uid: "2.25.2".into(),
            study_instance_uid: "2.25.3".into(),
            date: "20240229".into(),
            time: "235959".into(),
        }
    }

    /// Label 1 on pixels 0 and 14 (the last) of slice 0 and on pixel 7 of slice 2; label 2 on all of slice 2
    /// but pixel 7; slice 1 empty.
    fn mask() -> U8Volume {
        let mut m = U8Volume::zeros([5, 3, 3]);
        m.data[0] = 1;
        m.data[14] = 1;
        for p in 0..15 {
            m.data[30 + p] = if p == 7 { 1 } else { 2 };
        }
        m
    }

    fn text(o: &InMemDicomObject, tag: Tag) -> String {
        o.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string()
    }

    fn items(o: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
        o.element(tag).unwrap().items().unwrap()
    }

    /// The pixel data of `mask()`: segment 1 on slices 0 and 2, then segment 2 on slice 2, 45 bits one after
    /// another. Frame 1: bits 0 and 14. Frame 2, from bit 15: bit 15 + 7 = 22. Frame 3, from bit 30: bits 30
    /// to 44 but 37. Six bytes, an even number: no padding byte.
    const PIXELS: [u8; 6] = [0x01, 0x40, 0x40, 0xC0, 0xDF, 0x1F];

    #[test]
    fn frames_hold_only_slices_with_voxels_and_their_bits_are_packed_without_padding_between_frames() {
        let obj = build(&mask(), &source(), &segments(), &created()).unwrap();
        assert_eq!(text(&obj, tags::SOP_CLASS_UID), SEGMENTATION_STORAGE);
        assert_eq!(text(&obj, tags::SEGMENTATION_TYPE), "BINARY");
        assert_eq!(text(&obj, tags::NUMBER_OF_FRAMES), "3");
        let us = |tag| obj.element(tag).unwrap().to_int::<u16>().unwrap();
        assert_eq!([us(tags::ROWS), us(tags::COLUMNS), us(tags::BITS_ALLOCATED), us(tags::BITS_STORED)], [3, 5, 1, 1]);
        let px = obj.element(tags::PIXEL_DATA).unwrap();
        assert_eq!(px.vr(), VR::OB);
        assert_eq!(&*px.to_bytes().unwrap(), &PIXELS);
        let per_frame = items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
        let want = [(1u16, 0usize), (1, 2), (2, 2)];
        assert_eq!(per_frame.len(), want.len());
        for (f, &(segment, k)) in per_frame.iter().zip(&want) {
            let id = &items(f, tags::SEGMENT_IDENTIFICATION_SEQUENCE)[0];
            assert_eq!(id.element(tags::REFERENCED_SEGMENT_NUMBER).unwrap().to_int::<u16>().unwrap(), segment);
            let index = items(f, tags::FRAME_CONTENT_SEQUENCE)[0].element(tags::DIMENSION_INDEX_VALUES).unwrap();
            assert_eq!(index.to_multi_int::<u32>().unwrap(), [u32::from(segment), k as u32 + 1]);
            let ipp = items(f, tags::PLANE_POSITION_SEQUENCE)[0].element(tags::IMAGE_POSITION_PATIENT).unwrap();
            assert_eq!(ipp.to_multi_float64().unwrap(), [-10.0, -20.0, 30.0 + 2.0 * k as f64]);
            let derivation = &items(f, tags::DERIVATION_IMAGE_SEQUENCE)[0];
            let src = &items(derivation, tags::SOURCE_IMAGE_SEQUENCE)[0];
            assert_eq!(text(src, tags::REFERENCED_SOP_INSTANCE_UID), format!("1.2.3.4.{}", k + 10));
            assert_eq!(text(src, tags::REFERENCED_SOP_CLASS_UID), "1.2.840.10008.5.1.4.1.1.2");
        }
        let shared = &items(&obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)[0];
        let measures = &items(shared, tags::PIXEL_MEASURES_SEQUENCE)[0];
        assert_eq!(measures.element(tags::PIXEL_SPACING).unwrap().to_multi_float64().unwrap(), [0.5, 0.25]);
        assert_eq!(text(measures, tags::SLICE_THICKNESS), "2", "the step, where the source states no thickness");
        let dims: Vec<_> = items(&obj, tags::DIMENSION_INDEX_SEQUENCE)
            .iter()
            .map(|d| d.element(tags::DIMENSION_INDEX_POINTER).unwrap().value().to_tag().unwrap())
            .collect();
        assert_eq!(dims, [tags::REFERENCED_SEGMENT_NUMBER, tags::IMAGE_POSITION_PATIENT]);
        // Every source instance is referenced, empty slice 1 included.
        let series = &items(&obj, tags::REFERENCED_SERIES_SEQUENCE)[0];
        assert_eq!(text(series, tags::SERIES_INSTANCE_UID), "1.2.3.4");
        let refs: Vec<String> = items(series, tags::REFERENCED_INSTANCE_SEQUENCE)
            .iter()
            .map(|i| text(i, tags::REFERENCED_SOP_INSTANCE_UID))
            .collect();
        assert_eq!(refs, ["1.2.3.4.10", "1.2.3.4.11", "1.2.3.4.12"]);
        assert_eq!(
            [tags::STUDY_INSTANCE_UID, tags::FRAME_OF_REFERENCE_UID, tags::SERIES_INSTANCE_UID].map(|t| text(&obj, t)),
            ["1.2.3", "1.2.3.5", "2.25.1"]
        );
        // A source with no study UID gets the new one.
        let mut anonymous = source();
        anonymous.study_instance_uid.clear();
        let obj = build(&mask(), &anonymous, &segments(), &created()).unwrap();
        assert_eq!(text(&obj, tags::STUDY_INSTANCE_UID), "2.25.3");
        // No voxel at all: one empty frame of segment 1 (15 bits, two bytes).
        let obj = build(&U8Volume::zeros([5, 3, 3]), &source(), &segments(), &created()).unwrap();
        assert_eq!(text(&obj, tags::NUMBER_OF_FRAMES), "1");
        assert_eq!(&*obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap(), &[0u8; 2]);
        // 7 bits: one byte, padded to two.
        let one = SourceSeries { rows: 1, columns: 7, instances: source().instances[..1].to_vec(), ..source() };
        let mut m = U8Volume::zeros([7, 1, 1]);
        m.data[6] = 1;
        let obj = build(&m, &one, &segments()[1..], &created()).unwrap();
        assert_eq!(&*obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap(), &[0x40, 0]);
    }

    #[test]
    fn segments_carry_number_label_algorithm_codes_and_colour() {
        let obj = build(&mask(), &source(), &segments(), &created()).unwrap();
        let segs = items(&obj, tags::SEGMENT_SEQUENCE);
        assert_eq!(segs.len(), 2);
        let (kidney, other) = (&segs[0], &segs[1]);
        assert_eq!(kidney.element(tags::SEGMENT_NUMBER).unwrap().to_int::<u16>().unwrap(), 1);
        assert_eq!(other.element(tags::SEGMENT_NUMBER).unwrap().to_int::<u16>().unwrap(), 2);
        assert_eq!(text(kidney, tags::SEGMENT_LABEL), "left kidney");
        assert_eq!(text(kidney, tags::SEGMENT_ALGORITHM_TYPE), "SEMIAUTOMATIC");
        assert_eq!(text(kidney, tags::SEGMENT_ALGORITHM_NAME), "VoxPrompt");
        let code = |o: &InMemDicomObject| {
            [tags::CODE_VALUE, tags::CODING_SCHEME_DESIGNATOR, tags::CODE_MEANING].map(|t| text(o, t))
        };
        assert_eq!(
            code(&items(kidney, tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE)[0]),
            ["123037004", "SCT", "Anatomical Structure"]
        );
        let kind = &items(kidney, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE)[0];
        assert_eq!(code(kind), ["64033007", "SCT", "Kidney"]);
        assert_eq!(
            code(&items(kind, tags::SEGMENTED_PROPERTY_TYPE_MODIFIER_CODE_SEQUENCE)[0]),
            ["7771000", "SCT", "Left"]
        );
        let other_kind = &items(other, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE)[0];
        assert_eq!(code(other_kind), ["85756007", "SCT", "Tissue"]);
        assert!(other_kind.element(tags::SEGMENTED_PROPERTY_TYPE_MODIFIER_CODE_SEQUENCE).is_err());
        let lab = |o: &InMemDicomObject| {
            o.element(tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE).unwrap().to_multi_int::<u16>().unwrap()
        };
        assert_eq!((lab(kidney), lab(other)), (vec![65535, 32896, 32896], vec![0, 32896, 32896]), "white, black");
        let algorithm = &items(kidney, tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE)[0];
        assert_eq!(text(algorithm, tags::ALGORITHM_VERSION), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn the_file_reads_back_in_explicit_vr_little_endian_and_bad_masks_are_refused() {
        let mut bytes = Vec::new();
        write_to(&mut bytes, &mask(), &source(), &segments(), &created()).unwrap();
        assert_eq!(&bytes[128..132], b"DICM");
        let file = dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Always)
            .from_reader(&bytes[..])
            .unwrap();
        assert_eq!(file.meta().transfer_syntax().trim_end_matches('\0'), EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(file.meta().media_storage_sop_class_uid().trim_end_matches('\0'), SEGMENTATION_STORAGE);
        assert_eq!(file.meta().media_storage_sop_instance_uid().trim_end_matches('\0'), "2.25.2");
        assert_eq!(&*file.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap(), &PIXELS);
        assert_eq!(file.element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).unwrap().items().unwrap().len(), 3);

        let err = |m: &U8Volume, s: &[Segment]| build(m, &source(), s, &created()).unwrap_err().to_string();
        assert!(err(&U8Volume::zeros([3, 5, 3]), &segments()).contains("not the source series' [5, 3, 3]"));
        assert!(err(&mask(), &segments()[1..]).contains("holds label 2, which no segment describes"));
        assert!(err(&mask(), &[]).contains("at least one segment"));
    }

    #[test]
    fn colours_become_d65_cielab_and_uids_are_random_uuids_under_2_25() {
        // sRGB red is L* 53.24, a* 80.09, b* 67.20 relative to D65.
        let [l, a, b] = cielab([255, 0, 0]).map(f64::from);
        let (l, a, b) = (l / 65535.0 * 100.0, a / 65535.0 * 255.0 - 128.0, b / 65535.0 * 255.0 - 128.0);
        assert!((l - 53.24).abs() < 0.05 && (a - 80.09).abs() < 0.05 && (b - 67.20).abs() < 0.05, "{l} {a} {b}");
        // All bits set but those the version (0100) and variant (10) clear.
        assert_eq!(uuid_uid([0xFF; 16]), format!("2.25.{}", !(0xB_u128 << 76) & !(1 << 62)));
        let (u, v) = (new_uid().unwrap(), new_uid().unwrap());
        assert_ne!(u, v);
        for x in [&u, &v] {
            assert!(x.starts_with("2.25.") && x.len() <= 64 && x[5..].bytes().all(|c| c.is_ascii_digit()), "{x}");
            let n: u128 = x[5..].parse().unwrap();
            assert_eq!((n >> 76) & 0xF, 4, "version 4: {x}");
            assert_eq!((n >> 62) & 0x3, 2, "RFC 4122 variant: {x}");
        }
        assert_eq!(utc(0), ("19700101".into(), "000000".into()));
        assert_eq!(utc(951_782_400 + 3_723), ("20000229".into(), "010203".into()));
        assert_eq!(utc(1_700_000_000), ("20231114".into(), "221320".into()));
    }
}
