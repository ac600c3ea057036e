//! DICOM series in (dicom-rs): a folder or a list of files, one series picked by its SeriesInstanceUID,
//! slices sorted by their position along the slice normal (never by file name), the geometry from
//! ImagePositionPatient / ImageOrientationPatient / PixelSpacing (LPS, turned into RAS), and each slice's
//! rescale slope and intercept applied. Compressed transfer syntaxes are decoded by dicom-pixeldata
//! (JPEG baseline and lossless, RLE; JPEG 2000 through OpenJPEG, linked statically).
//!
//! A multi-frame instance gives one slice per frame, sorted with any others of its series by position:
//! Enhanced CT and MR state each frame's position, orientation, pixel spacing and rescale in the per-frame
//! or shared functional groups (PlanePosition, PlaneOrientation, PixelMeasures, PixelValueTransformation);
//! a legacy multi-frame states the first frame's position at the top level and SpacingBetweenSlices, its
//! frames taken as evenly stepped along the normal. A folder holding one multi-frame file is a series of
//! one instance.
//!
//! Each file is read once (`read_inputs`): whole up to 16 MiB, else its header first and the rest only if
//! its series is the one read. The series' files keep their pixel data still encoded, their bytes bounded
//! by `Limits::max_bytes` and the voxels they declare checked against the limits as they are read; the
//! slices are decoded from them, on two threads where there are two cores (`decode_all`). `list_series`
//! reads headers only.
//!
//! Refused, with a message naming the files (and the frame, in a multi-frame file): several series without
//! a choice (the message lists them), slices of different size or orientation, a gap where a slice is
//! missing, a gantry tilt (positions not along the normal), colour images, a frame without a position,
//! pixel data holding fewer frames than NumberOfFrames declares.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use dicom_core::header::HasLength;
use dicom_core::value::Value as DicomValue;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};

use super::files::{open_regular, Limits};
use crate::error::{Error, Result};
use crate::volume::{DType, Geometry, Volume};

/// Most files one series may gather from a folder: enough for any CT, bounded for a folder of junk.
const MAX_FILES: usize = 100_000;
/// The part of a file read to learn its series and geometry (the header stops before the pixels); a file
/// no longer than this is read whole at once.
const MAX_HEADER_BYTES: u64 = 16 << 20;
/// Most slices one volume may have, the frames of multi-frame instances included: a file declaring millions
/// of one-pixel frames must not make millions of headers.
const MAX_SLICES: usize = 100_000;
/// Relative tolerance for "the same spacing" and "along the normal".
const TOLERANCE: f64 = 1e-3;

/// One series found among the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub uid: String,
    pub description: String,
    pub modality: String,
    pub files: usize,
}

/// One source instance as an object derived from the series (a DICOM SEG) references it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    /// The frame's number (1-based) in a multi-frame instance; `None` for a single-frame one.
    pub frame: Option<u32>,
    /// ImagePositionPatient (LPS, mm) as the file states it (for a legacy multi-frame's later frames, as
    /// computed from the first frame's).
    pub position: [f64; 3],
}

/// What a series was beyond its voxels: what an object derived from it must reference and copy. Read from
/// the headers the series was read from (never a second time); the series-level values from its first
/// slice. A UID the data set leaves empty (an anonymised series) is the empty string, except an instance's
/// SOP Class and Instance UIDs, which then come from the file meta group's Media Storage UIDs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceSeries {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: String,
    /// ImageOrientationPatient: the row direction, then the column direction (LPS).
    pub orientation: [f64; 6],
    /// PixelSpacing: between rows, then between columns (mm).
    pub pixel_spacing: [f64; 2],
    /// The step between slices along the normal (mm).
    pub spacing_between_slices: f64,
    /// SliceThickness, where the series states it.
    pub slice_thickness: Option<f64>,
    pub rows: usize,
    pub columns: usize,
    /// The Patient and General Study modules' attributes, as text, empty where absent: `COPIED` in order.
    pub copied: Vec<(dicom_core::Tag, dicom_core::VR, String)>,
    /// The instances in the volume's slice order (k).
    pub instances: Vec<Instance>,
}

/// The Patient and General Study attributes a derived object copies from its source (PS3.3 C.7.1.1,
/// C.7.2.1; the type 2 ones, written empty where the source has none).
pub const COPIED: [(dicom_core::Tag, dicom_core::VR); 9] = {
    use dicom_core::VR;
    [
        (tags::PATIENT_NAME, VR::PN),
        (tags::PATIENT_ID, VR::LO),
        (tags::PATIENT_BIRTH_DATE, VR::DA),
        (tags::PATIENT_SEX, VR::CS),
        (tags::STUDY_DATE, VR::DA),
        (tags::STUDY_TIME, VR::TM),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        (tags::STUDY_ID, VR::SH),
        (tags::ACCESSION_NUMBER, VR::SH),
    ]
};

/// One frame's header: what sorting, geometry and decoding need. A single-frame instance is one slice, a
/// multi-frame instance one per frame.
struct Slice {
    path: PathBuf,
    /// The frame's number in its file (1-based, as DICOM counts frames) where the file holds several.
    frame: Option<u32>,
    sop_class_uid: String,
    sop_instance_uid: String,
    position: [f64; 3],
    orientation: [f64; 6],
    spacing: [f64; 2],
    rows: usize,
    columns: usize,
    /// RescaleSlope and RescaleIntercept.
    rescale: [f64; 2],
}

impl Slice {
    /// The file, and the frame where the file holds several: what messages name.
    fn name(&self) -> String {
        match self.frame {
            Some(f) => format!("{} frame {f}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> Error {
        frame_error(&self.path, self.frame, message)
    }
}

/// A problem of `path`, of one of its frames where it holds several.
fn frame_error(path: &Path, frame: Option<u32>, message: impl std::fmt::Display) -> Error {
    match frame {
        Some(f) => Error::io(path, format!("frame {f}: {message}")),
        None => Error::io(path, message),
    }
}

/// The inputs as files: a folder's regular files (not its subfolders, not hidden files), or the files given.
fn list_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in inputs {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            let mut here: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect();
            here.sort();
            files.extend(here);
        } else {
            files.push(p.clone());
        }
        if files.len() > MAX_FILES {
            return Err(Error::TooLarge(format!("{}: more than {MAX_FILES} files", p.display())));
        }
    }
    Ok(files)
}

/// A DICOM Part 10 file's header: its first `MAX_HEADER_BYTES` read, parsed up to the pixel data. `Ok(None)`
/// when the file is not DICOM (no "DICM" after the 128-byte preamble).
fn open_header(path: &Path) -> Result<Option<DefaultDicomObject>> {
    let (file, len) = open_regular(path)?;
    let mut bytes = Vec::with_capacity(len.min(MAX_HEADER_BYTES) as usize);
    BufReader::new(file.take(MAX_HEADER_BYTES))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, super::files::plain(&e)))?;
    parse(&bytes, path, Some(tags::PIXEL_DATA))
}

/// A Part 10 stream in memory, parsed up to `until` or to its end (`path` names it in messages). Every
/// declared length is checked against the bytes that are there first (`check_lengths`): dicom-parser
/// reserves and zeroes what an element declares before it reads, so a 5 kB file declaring a 4 GB element
/// would take 4 GB of the host's memory.
fn parse(bytes: &[u8], path: &Path, until: Option<dicom_core::Tag>) -> Result<Option<DefaultDicomObject>> {
    if !has_magic(bytes) {
        return Ok(None);
    }
    check_lengths(&bytes[132..], until.map(|t| (t.group(), t.element()))).map_err(|m| Error::io(path, m))?;
    let mut opts = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    if let Some(t) = until {
        opts = opts.read_until(t);
    }
    // The meta group starts at the magic, which dicom-object reads itself.
    opts.from_reader(&bytes[128..]).map(Some).map_err(|e| Error::io(path, one_line(&e)))
}

/// Walks the element headers of a Part 10 stream after its magic (the meta group, explicit VR little
/// endian, then the data set in its transfer syntax), into sequences and items, up to `until`, and refuses
/// any defined length longer than what is left of the stream. Deflated data sets are refused: their
/// lengths cannot be checked against the compressed bytes.
fn check_lengths(b: &[u8], until: Option<(u16, u16)>) -> std::result::Result<(), String> {
    // The VRs with a 2-byte length. Any other, unknown ones included, has a 4-byte length, as dicom-parser
    // reads an unknown VR as UN: the walk must split the stream where the parser will.
    const SHORT: [&[u8; 2]; 21] = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS",
        b"ST", b"TM", b"UI", b"UL", b"US",
    ];
    let long = |vr: &[u8]| !SHORT.iter().any(|v| v[..] == *vr);
    let u16_at = |at: usize, big: bool| {
        b.get(at..at + 2).map(|x| if big { u16::from_be_bytes([x[0], x[1]]) } else { u16::from_le_bytes([x[0], x[1]]) })
    };
    let u32_at = |at: usize, big: bool| {
        b.get(at..at + 4).map(|x| {
            let a = [x[0], x[1], x[2], x[3]];
            if big {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        })
    };
    // An explicit VR element header at `at`: its VR, its length and the header's size.
    let explicit = |at: usize, big: bool| {
        let vr = b.get(at + 4..at + 6)?;
        let (len, head) = if long(vr) { (u32_at(at + 8, big)?, 12) } else { (u32::from(u16_at(at + 6, big)?), 8) };
        Some((vr, len, head))
    };
    let remain = |start: usize| b.len().saturating_sub(start);
    let too_long = |what: String, len: u32, start: usize| -> std::result::Result<(), String> {
        if len as usize > remain(start) {
            Err(format!("{what} declares {len} bytes, {} remain: truncated or corrupt", remain(start)))
        } else {
            Ok(())
        }
    };
    // The meta group, and the transfer syntax it names. dicom-object reads it as (0002,0000), the group's
    // length, then elements until that many bytes are consumed; the data set starts where it stops.
    if u16_at(0, false) != Some(0x0002) || u16_at(2, false) != Some(0x0000) || u16_at(6, false) != Some(4) {
        return Ok(()); // not what dicom-object reads: it refuses the file itself
    }
    let Some(group_length) = u32_at(8, false) else { return Ok(()) };
    let mut at = 12usize;
    let mut ts = String::new();
    while at - 12 < group_length as usize {
        let (Some(elem), Some((_, len, head))) = (u16_at(at + 2, false), explicit(at, false)) else { return Ok(()) };
        let start = at + head;
        too_long(format!("file meta element (0002,{elem:04X})"), len, start)?;
        if elem == 0x0010 {
            ts = String::from_utf8_lossy(&b[start..start + len as usize]).trim_end_matches(['\0', ' ']).to_owned();
        }
        at = start + len as usize;
    }
    if ts == "1.2.840.10008.1.2.1.99" {
        return Err("a deflated data set (transfer syntax 1.2.840.10008.1.2.1.99) is not read".into());
    }
    let (implicit, big) = (ts == "1.2.840.10008.1.2", ts == "1.2.840.10008.1.2.2");
    // The data set, with dicom-parser's structure: inside a sequence it reads item headers (tag and length,
    // no VR, whatever the tag), inside an item (or at the top) element headers; defined-length sequences
    // and items end where their length says, undefined ones at their delimiters.
    struct Frame {
        seq: bool,
        end: Option<usize>,
        pixel: bool,
    }
    let mut stack: Vec<Frame> = Vec::new();
    while at < b.len() {
        while let Some(top) = stack.last() {
            if top.end.is_some_and(|e| at >= e) {
                stack.pop();
            } else {
                break;
            }
        }
        let (Some(group), Some(elem), Some(len4)) = (u16_at(at, big), u16_at(at + 2, big), u32_at(at + 4, big)) else {
            return Ok(());
        };
        if stack.last().is_some_and(|f| f.seq) {
            // An item header is expected.
            let start = at + 8;
            match (group, elem) {
                (0xFFFE, 0xE000) if stack.last().is_some_and(|f| f.pixel) => {
                    too_long("a pixel data fragment".into(), len4, start)?;
                    at = start + len4 as usize;
                }
                (0xFFFE, 0xE000) => {
                    let end = (len4 != u32::MAX).then(|| start + len4 as usize);
                    stack.push(Frame { seq: false, end, pixel: false });
                    at = start;
                }
                (0xFFFE, 0xE0DD) => {
                    stack.pop();
                    at = start;
                }
                _ => return Ok(()), // dicom-parser stops here with an error
            }
            continue;
        }
        if until.is_some_and(|u| (group, elem) >= u) && group != 0xFFFE && stack.is_empty() {
            return Ok(());
        }
        if group == 0xFFFE {
            // Read as an element without VR: an item delimiter closes its item; anything else is a value.
            let start = at + 8;
            if elem == 0xE00D && stack.last().is_some_and(|f| !f.seq) {
                stack.pop();
                at = start;
            } else if len4 == u32::MAX {
                stack.push(Frame { seq: true, end: None, pixel: false });
                at = start;
            } else {
                too_long(format!("element (FFFE,{elem:04X})"), len4, start)?;
                at = start + len4 as usize;
            }
            continue;
        }
        let (len, head, sq, unit) = if implicit {
            let (sq, unit) = dictionary_vr(group, elem);
            (len4, 8, sq, unit)
        } else {
            let Some((vr, len, head)) = explicit(at, big) else { return Ok(()) };
            (len, head, vr == b"SQ", value_unit(vr))
        };
        let start = at + head;
        if len == u32::MAX || sq {
            // A sequence; undefined-length pixel data is one of fragments, any other undefined length is
            // read as a sequence too.
            let end = (len != u32::MAX).then(|| start + len as usize);
            let pixel = len == u32::MAX && (group, elem) == (0x7FE0, 0x0010);
            stack.push(Frame { seq: true, end, pixel });
            at = start;
        } else {
            too_long(format!("element ({group:04X},{elem:04X})"), len, start)?;
            // dicom-parser reads whole values only: of a length that is no multiple of the value's size,
            // the rest is left in the stream and read as the next header.
            at = start + len as usize - len as usize % unit;
        }
    }
    Ok(())
}

/// The size of one value of a binary VR, which dicom-parser reads `length / size` of; 1 for the others.
fn value_unit(vr: &[u8]) -> usize {
    match vr {
        b"US" | b"SS" | b"OW" => 2,
        b"AT" | b"FL" | b"OF" | b"SL" | b"UL" | b"OL" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        _ => 1,
    }
}

/// What the standard dictionary says of an element in an implicit VR data set, which does not say it
/// itself: whether it is a sequence, and the size of one value (`value_unit`).
fn dictionary_vr(group: u16, elem: u16) -> (bool, usize) {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    let dict = dicom_dictionary_std::StandardDataDictionary;
    match dict.by_tag(dicom_core::Tag(group, elem)).map(|e| e.vr()) {
        Some(VirtualVr::Exact(dicom_core::VR::SQ)) => (true, 1),
        Some(VirtualVr::Exact(vr)) => (false, value_unit(&vr.to_bytes())),
        Some(VirtualVr::Xs) => (false, 2),
        _ => (false, 1),
    }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok().flatten()?;
    e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).trim().to_owned())
}

/// `n` finite numbers from an element, or what is wrong with them.
fn floats(e: Option<&InMemElement>, n: usize, what: &str) -> std::result::Result<Vec<f64>, String> {
    let e = e.ok_or_else(|| format!("no {what}"))?;
    let v = e.to_multi_float64().map_err(|_| format!("{what} is not {n} numbers"))?;
    if v.len() != n || v.iter().any(|x| !x.is_finite()) {
        return Err(format!("{what} is not {n} finite numbers: {v:?}"));
    }
    Ok(v)
}

/// NumberOfFrames, 1 where the instance does not state it.
fn number_of_frames(obj: &DefaultDicomObject, path: &Path) -> Result<usize> {
    let Some(e) = obj.get(tags::NUMBER_OF_FRAMES).filter(|e| !e.is_empty()) else { return Ok(1) };
    match e.to_int::<i64>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| Error::TooLarge(format!("{}: {n} frames", path.display()))),
        Ok(n) => Err(Error::io(path, format!("NumberOfFrames is {n}"))),
        Err(_) => Err(Error::io(path, "NumberOfFrames is not a number")),
    }
}

/// The item of functional group `group` that a functional groups item holds.
fn in_group(groups: &InMemDicomObject, group: dicom_core::Tag, tag: dicom_core::Tag) -> Option<&InMemElement> {
    groups.get(group)?.items()?.first()?.get(tag)
}

/// An attribute of frame `f` (0-based): from its own functional group (its item of the
/// PerFrameFunctionalGroupsSequence), else from the shared one, else from the top level of the data set,
/// where single-frame and legacy multi-frame instances state it.
fn frame_attr(
    obj: &DefaultDicomObject,
    f: usize,
    group: dicom_core::Tag,
    tag: dicom_core::Tag,
) -> Option<&InMemElement> {
    let items = |seq| obj.get(seq).and_then(|e| e.items());
    items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|p| p.get(f))
        .and_then(|g| in_group(g, group, tag))
        .or_else(|| items(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)?.first().and_then(|g| in_group(g, group, tag)))
        .or_else(|| obj.get(tag))
}

fn uint(obj: &DefaultDicomObject, tag: dicom_core::Tag, what: &str, path: &Path) -> Result<usize> {
    let e = obj.element_opt(tag).ok().flatten().ok_or_else(|| Error::io(path, format!("no {what}")))?;
    e.to_int::<u32>().map(|v| v as usize).map_err(|_| Error::io(path, format!("{what} is not a number")))
}

/// Whether `path` is a regular file with the DICOM Part 10 magic ("DICM" after the 128-byte preamble).
pub fn is_dicom(path: &Path) -> bool {
    let Ok((file, _)) = open_regular(path) else { return false };
    let mut head = [0u8; 132];
    file.take(132).read_exact(&mut head).is_ok() && has_magic(&head)
}

/// "DICM" after the 128-byte preamble.
fn has_magic(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
}

/// The SeriesInstanceUID of one DICOM file.
pub fn series_of(path: &Path) -> Result<String> {
    let obj = open_header(path)?
        .ok_or_else(|| Error::io(path, "not a DICOM file (no \"DICM\" after the 128-byte preamble)"))?;
    // An anonymised series may have none: its files are then grouped under the empty UID.
    Ok(text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default())
}

/// Files and their headers by SeriesInstanceUID (empty where a file has none).
type BySeries = BTreeMap<String, Vec<(PathBuf, DefaultDicomObject)>>;

/// Each file among `inputs` read once and grouped by series; files that are not DICOM are skipped. The files
/// of the series to be read (`series`, or without one the first met) keep their pixel data, still encoded,
/// for decoding without reading the file again; the others keep their header only. What is kept is
/// bounded as it is read: the files' bytes by `limits.max_bytes`, the voxels they declare by the limits.
fn read_inputs(inputs: &[PathBuf], series: Option<&str>, limits: &Limits) -> Result<BySeries> {
    let name = inputs.first().map_or_else(String::new, |p| p.display().to_string());
    let mut wanted: Option<String> = series.map(|s| s.trim().to_owned());
    let (mut bytes, mut voxels) = (0u64, 0u64);
    let mut by_series = BySeries::new();
    for path in list_inputs(inputs)? {
        let mut keep = |uid: &str| wanted.get_or_insert_with(|| uid.to_owned()) == uid;
        let Some((obj, kept)) = open_once(&path, limits.max_bytes, &mut keep)? else { continue };
        if let Some(len) = kept {
            bytes += len;
            if bytes > limits.max_bytes {
                return Err(Error::TooLarge(format!(
                    "{name}: the series' files hold more than the limit of {} MiB",
                    limits.max_bytes >> 20
                )));
            }
            // This file's frames, then all the series' so far: refused before the next file is read.
            let [rows, columns] = [tags::ROWS, tags::COLUMNS].map(|t| uint(&obj, t, "Rows", &path).unwrap_or(0) as u64);
            let frames = number_of_frames(&obj, &path)? as u64;
            limits.check(&path.display().to_string(), &[columns, rows, frames], 4)?;
            voxels = voxels.saturating_add(rows * columns * frames);
            limits.check(&format!("{name}, the files read so far"), &[voxels], 4)?;
        }
        let uid = text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        by_series.entry(uid).or_default().push((path, obj));
    }
    Ok(by_series)
}

/// One file, read once: whole when it is at most `MAX_HEADER_BYTES` long (most are), else its first
/// `MAX_HEADER_BYTES` and, if `keep` wants its series, the rest (at most `max` bytes in all). Returns the
/// object, with its pixel data if `keep` wanted it (and then the file's size), else without; `Ok(None)`
/// when the file is not DICOM. A file whose pixel data is broken but whose series is not wanted is kept by
/// its header, as a header-only read would have.
fn open_once(
    path: &Path,
    max: u64,
    keep: &mut dyn FnMut(&str) -> bool,
) -> Result<Option<(DefaultDicomObject, Option<u64>)>> {
    let (file, len) = open_regular(path)?;
    let mut reader = BufReader::new(file);
    let mut bytes = Vec::with_capacity(len.min(MAX_HEADER_BYTES) as usize);
    let read = |r: &mut BufReader<std::fs::File>, n: u64, b: &mut Vec<u8>| {
        r.take(n).read_to_end(b).map_err(|e| Error::io(path, super::files::plain(&e)))
    };
    read(&mut reader, MAX_HEADER_BYTES, &mut bytes)?;
    if !has_magic(&bytes) {
        return Ok(None);
    }
    let uid = |obj: &DefaultDicomObject| text(obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
    if (bytes.len() as u64) < MAX_HEADER_BYTES {
        // The whole file is here: parsed once, to its end.
        return match parse(&bytes, path, None) {
            Ok(None) => Ok(None),
            Ok(Some(obj)) if keep(&uid(&obj)) => Ok(Some((obj, Some(bytes.len() as u64)))),
            Ok(Some(mut obj)) => {
                obj.remove_element(tags::PIXEL_DATA);
                Ok(Some((obj, None)))
            }
            // Broken after its header (in the pixels, say): refused only where its series is wanted.
            Err(e) => match parse(&bytes, path, Some(tags::PIXEL_DATA)) {
                Ok(Some(header)) if !keep(&uid(&header)) => Ok(Some((header, None))),
                _ => Err(e),
            },
        };
    }
    let Some(header) = parse(&bytes, path, Some(tags::PIXEL_DATA))? else { return Ok(None) };
    if !keep(&uid(&header)) {
        return Ok(Some((header, None)));
    }
    if len > max {
        return Err(Error::TooLarge(format!("{}: {len} bytes, more than the {max} allowed", path.display())));
    }
    read(&mut reader, max - bytes.len() as u64, &mut bytes)?;
    Ok(parse(&bytes, path, None)?.map(|obj| (obj, Some(bytes.len() as u64))))
}

/// Each file's header (read up to the pixels) among `inputs` (folders and files), grouped by series; files
/// that are not DICOM are skipped.
fn headers(inputs: &[PathBuf]) -> Result<BySeries> {
    let mut by_series = BySeries::new();
    for path in list_inputs(inputs)? {
        let Some(obj) = open_header(&path)? else { continue };
        let uid = text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        by_series.entry(uid).or_default().push((path, obj));
    }
    Ok(by_series)
}

/// Every series among `inputs` (folders and files), with the number of files of each; files that are not
/// DICOM are skipped.
pub fn list_series(inputs: &[PathBuf]) -> Result<Vec<SeriesInfo>> {
    let info = |(uid, files): (String, Vec<(PathBuf, DefaultDicomObject)>)| {
        let first = &files[0].1;
        SeriesInfo {
            description: text(first, tags::SERIES_DESCRIPTION).unwrap_or_default(),
            modality: text(first, tags::MODALITY).unwrap_or_default(),
            files: files.len(),
            uid,
        }
    };
    Ok(headers(inputs)?.into_iter().map(info).collect())
}

/// Reads one series from `inputs` (folders and files) as a volume: i along the rows' direction (columns of
/// the image), j down the columns, k along the slice normal in the order of increasing position.
/// `series` picks a SeriesInstanceUID; without it the inputs must hold exactly one series.
pub fn read_series(inputs: &[PathBuf], series: Option<&str>, limits: &Limits) -> Result<Volume> {
    read_series_with_source(inputs, series, limits).map(|(v, _)| v)
}

/// `read_series`, with what the series was (`SourceSeries`) from the same headers.
pub fn read_series_with_source(
    inputs: &[PathBuf],
    series: Option<&str>,
    limits: &Limits,
) -> Result<(Volume, SourceSeries)> {
    let name = inputs.first().map_or_else(PathBuf::new, PathBuf::clone);
    // Each file read once, grouped by series; the wanted series' files with their encoded pixels.
    let mut by_series = read_inputs(inputs, series, limits)?;
    if by_series.is_empty() {
        return Err(Error::io(&name, "no DICOM files found"));
    }
    let describe = |m: &BySeries| {
        m.iter()
            .map(|(uid, v)| {
                let desc = text(&v[0].1, tags::SERIES_DESCRIPTION).unwrap_or_default();
                let uid = if uid.is_empty() { "(no SeriesInstanceUID)" } else { uid.as_str() };
                format!(
                    "{uid} ({} files{})",
                    v.len(),
                    if desc.is_empty() { String::new() } else { format!(", {desc:?}") }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let instances = match series {
        Some(uid) => match by_series.remove(uid.trim()) {
            Some(v) => v,
            None => {
                return Err(Error::InvalidArgument(format!(
                    "{}: no series {uid:?}; found: {}",
                    name.display(),
                    describe(&by_series)
                )))
            }
        },
        None if by_series.len() == 1 => by_series.into_values().next().expect("one series"),
        None => {
            return Err(Error::InvalidArgument(format!(
                "{}: {} series; pick one with --series UID: {}",
                name.display(),
                by_series.len(),
                describe(&by_series)
            )))
        }
    };

    let mut slices = Vec::with_capacity(instances.len());
    for (path, obj) in &instances {
        slices.extend(slices_of(path, obj, limits)?);
        if slices.len() > MAX_SLICES {
            return Err(Error::TooLarge(format!("{}: more than {MAX_SLICES} slices", name.display())));
        }
    }
    let (step, normal) = sort_slices(&mut slices)?;
    let first = &slices[0];
    // The series-level values from the first slice by position, whose header is among those read.
    let head = &instances.iter().find(|(p, _)| *p == first.path).expect("every slice has its header").1;
    let uid = |tag| text(head, tag).unwrap_or_default();
    let source = SourceSeries {
        study_instance_uid: uid(tags::STUDY_INSTANCE_UID),
        series_instance_uid: uid(tags::SERIES_INSTANCE_UID),
        frame_of_reference_uid: uid(tags::FRAME_OF_REFERENCE_UID),
        orientation: first.orientation,
        pixel_spacing: first.spacing,
        spacing_between_slices: step,
        slice_thickness: frame_attr(head, 0, tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS)
            .and_then(|e| e.to_float64().ok())
            .filter(|t| t.is_finite() && *t > 0.0),
        rows: first.rows,
        columns: first.columns,
        copied: COPIED.iter().map(|&(tag, vr)| (tag, vr, uid(tag))).collect(),
        instances: slices
            .iter()
            .map(|s| Instance {
                sop_class_uid: s.sop_class_uid.clone(),
                sop_instance_uid: s.sop_instance_uid.clone(),
                frame: s.frame,
                position: s.position,
            })
            .collect(),
    };
    let dims = [first.columns, first.rows, slices.len()];
    limits.check(&name.display().to_string(), &dims.map(|d| d as u64), 4)?;

    // The pixels, from the objects already read: file by file, each frame into its slot, rescaled.
    let n_slice = dims[0] * dims[1];
    let mut values = vec![0f32; n_slice * dims[2]];
    let objects: HashMap<&Path, &DefaultDicomObject> = instances.iter().map(|(p, o)| (p.as_path(), o)).collect();
    let jobs = by_file(&slices, &mut values, n_slice)
        .into_iter()
        .map(|(path, frames)| (objects[path], path, frames))
        .collect();
    let integral = decode_all(jobs)?;
    let geometry = geometry(first, step, normal);
    Ok((pack(values, integral, dims, geometry), source))
}

/// The slices grouped by file, each with its slot of `values` (`n` values a slice), the files in the order
/// of their first slice: a multi-frame file is read once, whatever the order of its frames.
type FileSlots<'a> = Vec<(&'a Path, Vec<(&'a Slice, &'a mut [f32])>)>;
fn by_file<'a>(slices: &'a [Slice], values: &'a mut [f32], n: usize) -> FileSlots<'a> {
    let mut files: FileSlots<'a> = Vec::new();
    let mut at: HashMap<&Path, usize> = HashMap::new();
    for (s, slot) in slices.iter().zip(values.chunks_mut(n)) {
        let i = *at.entry(s.path.as_path()).or_insert_with(|| {
            files.push((s.path.as_path(), Vec::new()));
            files.len() - 1
        });
        files[i].1.push((s, slot));
    }
    files
}

/// One file's frames to decode: its object, its path, and each frame's slice with its slot.
type Job<'a> = (&'a DefaultDicomObject, &'a Path, Vec<(&'a Slice, &'a mut [f32])>);

/// `decode` of every job, on two threads where the machine has them: jobs alternate between the threads,
/// and a file with many frames (a multi-frame instance) is split between them. Each slot is written by one
/// job, so the values do not depend on the threads; the error returned is the first job's that failed, in
/// the jobs' order.
fn decode_all(jobs: Vec<Job<'_>>) -> Result<bool> {
    // Two at most: decoding a slice is one single-threaded OpenJPEG call (jpeg2k is built without its
    // threads feature), and a second thread halves case B's time where a core is free (BENCHMARKS.md);
    // more would take cores from a host running other work.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
    let mut split: Vec<Job<'_>> = Vec::with_capacity(jobs.len());
    for (obj, path, mut frames) in jobs {
        if threads > 1 && frames.len() > 1 {
            let rest = frames.split_off(frames.len() / 2);
            split.push((obj, path, frames));
            split.push((obj, path, rest));
        } else {
            split.push((obj, path, frames));
        }
    }
    if threads == 1 || split.len() == 1 {
        return split.into_iter().try_fold(true, |all, (obj, path, frames)| Ok(all & decode(obj, path, frames)?));
    }
    let mut lanes: Vec<Vec<(usize, Job<'_>)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, job) in split.into_iter().enumerate() {
        lanes[i % threads].push((i, job));
    }
    // Each lane stops at its first failure, and returns it with its job's index.
    let ends: Vec<(bool, Option<(usize, Error)>)> = std::thread::scope(|scope| {
        let lanes: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                scope.spawn(move || {
                    let mut all = true;
                    for (i, (obj, path, frames)) in lane {
                        match decode(obj, path, frames) {
                            Ok(integral) => all &= integral,
                            Err(e) => return (all, Some((i, e))),
                        }
                    }
                    (all, None)
                })
            })
            .collect();
        lanes.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    let mut failures: Vec<(usize, Error)> = Vec::new();
    let mut integral = true;
    for (all, failure) in ends {
        integral &= all;
        failures.extend(failure);
    }
    match failures.into_iter().min_by_key(|(i, _)| *i) {
        Some((_, e)) => Err(e),
        None => Ok(integral),
    }
}

/// What one instance says of its frames' places in the volume: one slice for a single-frame instance, one
/// per frame for a multi-frame one, each frame's attributes from `frame_attr` (Enhanced CT and MR state them
/// in functional groups, per frame or shared). Refuses what a volume cannot hold (colour), and more frames
/// than `limits` allow before any is listed.
fn slices_of(path: &Path, obj: &DefaultDicomObject, limits: &Limits) -> Result<Vec<Slice>> {
    let frames = number_of_frames(obj, path)?;
    if let Ok(spp) = uint(obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel", path) {
        if spp != 1 {
            return Err(Error::UnsupportedDtype(format!(
                "{}: {spp} samples per pixel (colour); a volume needs one",
                path.display()
            )));
        }
    }
    let (rows, columns) = (uint(obj, tags::ROWS, "Rows", path)?, uint(obj, tags::COLUMNS, "Columns", path)?);
    if rows == 0 || columns == 0 {
        return Err(Error::io(path, format!("{columns}×{rows} pixels")));
    }
    if frames > MAX_SLICES {
        return Err(Error::TooLarge(format!("{}: {frames} frames, more than the {MAX_SLICES} read", path.display())));
    }
    limits.check(&path.display().to_string(), &[columns as u64, rows as u64, frames as u64], 4)?;
    let per_frame = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items());
    if let Some(items) = per_frame.filter(|i| i.len() != frames) {
        return Err(Error::io(
            path,
            format!("{} items in PerFrameFunctionalGroupsSequence for {frames} frame(s)", items.len()),
        ));
    }
    // Where any frame's own group states a position, every frame's must.
    let positions_per_frame =
        per_frame.is_some_and(|p| p.iter().any(|g| g.get(tags::PLANE_POSITION_SEQUENCE).is_some()));
    // An anonymised instance may leave its SOP UIDs empty in the data set; its file meta group still names it.
    let or_meta = |tag, meta: &str| {
        text(obj, tag).filter(|v| !v.is_empty()).unwrap_or_else(|| meta.trim_end_matches(['\0', ' ']).to_owned())
    };
    let sop_class_uid = or_meta(tags::SOP_CLASS_UID, obj.meta().media_storage_sop_class_uid());
    let sop_instance_uid = or_meta(tags::SOP_INSTANCE_UID, obj.meta().media_storage_sop_instance_uid());
    let mut slices = Vec::with_capacity(frames);
    for f in 0..frames {
        let frame = (frames > 1).then_some(f as u32 + 1);
        let err = |m: String| frame_error(path, frame, m);
        let o = floats(
            frame_attr(obj, f, tags::PLANE_ORIENTATION_SEQUENCE, tags::IMAGE_ORIENTATION_PATIENT),
            6,
            "ImageOrientationPatient",
        )
        .map_err(err)?;
        let s = floats(frame_attr(obj, f, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING), 2, "PixelSpacing")
            .map_err(err)?;
        if s.iter().any(|&v| v <= 0.0) {
            return Err(err(format!("PixelSpacing {s:?} is not positive")));
        }
        let rescale = |tag, default: f64| {
            frame_attr(obj, f, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, tag)
                .and_then(|e| e.to_float64().ok())
                .unwrap_or(default)
        };
        let (slope, intercept) = (rescale(tags::RESCALE_SLOPE, 1.0), rescale(tags::RESCALE_INTERCEPT, 0.0));
        if !(slope.is_finite() && intercept.is_finite()) {
            return Err(err(format!("rescale slope {slope} / intercept {intercept} are not finite")));
        }
        let position = if positions_per_frame {
            let own =
                per_frame.and_then(|p| in_group(&p[f], tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT));
            floats(own, 3, "ImagePositionPatient in its PlanePositionSequence").map_err(err)?
        } else if f == 0 {
            floats(
                frame_attr(obj, 0, tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT),
                3,
                "ImagePositionPatient",
            )
            .map_err(err)?
        } else {
            // A legacy multi-frame states one position, the first frame's. Its frames are taken as evenly
            // stepped by SpacingBetweenSlices along the normal (row × column direction): nothing in such a
            // file says more, and one whose frames run the other way is read mirrored along k.
            let step = frame_attr(obj, 0, tags::PIXEL_MEASURES_SEQUENCE, tags::SPACING_BETWEEN_SLICES)
                .and_then(|e| e.to_float64().ok())
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    let what = "one ImagePositionPatient and no positive SpacingBetweenSlices";
                    Error::io(path, format!("{frames} frames, {what}: where the frames lie is not stated"))
                })?;
            let first: &Slice = &slices[0];
            let n = cross([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
            let norm = dot(n, n).sqrt();
            (0..3).map(|a| first.position[a] + f as f64 * step * n[a] / norm).collect()
        };
        slices.push(Slice {
            path: path.to_path_buf(),
            frame,
            sop_class_uid: sop_class_uid.clone(),
            sop_instance_uid: sop_instance_uid.clone(),
            position: [position[0], position[1], position[2]],
            orientation: [o[0], o[1], o[2], o[3], o[4], o[5]],
            spacing: [s[0], s[1]],
            rows,
            columns,
            rescale: [slope, intercept],
        });
    }
    Ok(slices)
}

/// One instance from bytes already in memory as a volume of its frames (one frame is 1 mm thick): what the
/// fuzzing harness drives, through the same checks and decoding as a series.
pub fn read_instance_from(bytes: &[u8], path: &Path, limits: &Limits) -> Result<Volume> {
    let obj = parse(bytes, path, None)?.ok_or_else(|| Error::io(path, "not a DICOM file"))?;
    let mut slices = slices_of(path, &obj, limits)?;
    let (step, normal) = sort_slices(&mut slices)?;
    let dims = [slices[0].columns, slices[0].rows, slices.len()];
    limits.check(&path.display().to_string(), &dims.map(|d| d as u64), 4)?;
    let n = dims[0] * dims[1];
    let mut values = vec![0f32; n * dims[2]];
    let integral = decode(&obj, path, slices.iter().zip(values.chunks_mut(n)).collect())?;
    Ok(pack(values, integral, dims, geometry(&slices[0], step, normal)))
}

/// Sorts by position along the normal and checks that the slices make one regular grid: same size,
/// orientation and pixel spacing, positions along the normal (no gantry tilt), no two at one position,
/// and no gap. Returns the step between slices (mm) and the normal.
fn sort_slices(slices: &mut [Slice]) -> Result<(f64, [f64; 3])> {
    let o = slices[0].orientation;
    let (row, col) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let normal = cross(row, col);
    let norm = dot(normal, normal).sqrt();
    if norm.is_nan() || norm <= 0.5 {
        return Err(slices[0].error(format!("ImageOrientationPatient {o:?} is not two directions")));
    }
    let normal = normal.map(|v| v / norm);
    for s in slices.iter() {
        let same = s.rows == slices[0].rows
            && s.columns == slices[0].columns
            && s.orientation.iter().zip(&o).all(|(a, b)| (a - b).abs() < TOLERANCE)
            && s.spacing.iter().zip(&slices[0].spacing).all(|(a, b)| (a - b).abs() <= TOLERANCE * b);
        if !same {
            return Err(s.error(format!(
                "{}×{} pixels of {:?} mm, orientation {:?}: not the grid of {} ({}×{}, {:?} mm, {:?})",
                s.columns,
                s.rows,
                s.spacing,
                s.orientation,
                slices[0].name(),
                slices[0].columns,
                slices[0].rows,
                slices[0].spacing,
                o
            )));
        }
    }
    slices.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)));
    if slices.len() == 1 {
        return Ok((1.0, normal));
    }
    let d: Vec<f64> = slices.iter().map(|s| dot(s.position, normal)).collect();
    let steps: Vec<f64> = d.windows(2).map(|w| w[1] - w[0]).collect();
    if let Some(i) = steps.iter().position(|&s| s.abs() < 1e-4) {
        return Err(slices[i + 1].error(format!(
            "lies at the position of {} ({:.3} mm along the normal)",
            slices[i].name(),
            d[i]
        )));
    }
    // The series' spacing is its most common step: a missing slice shows as one step about twice as large.
    let mut sorted = steps.clone();
    sorted.sort_by(f64::total_cmp);
    let step = sorted[sorted.len() / 2];
    for (i, &s) in steps.iter().enumerate() {
        if (s - step).abs() > TOLERANCE * step.max(1.0) * 10.0 {
            let missing = (s / step).round() as i64 - 1;
            return Err(slices[i + 1].error(format!(
                "{s:.3} mm after {} where the series' spacing is {step:.3} mm: {} missing between them",
                slices[i].name(),
                if missing >= 1 { format!("{missing} slice(s)") } else { "an irregular step".to_string() }
            )));
        }
    }
    // Gantry tilt: consecutive positions must move along the normal, not sideways.
    let p0 = slices[0].position;
    for s in &slices[1..] {
        let delta = sub(s.position, p0);
        let along = dot(delta, normal);
        let across = sub(delta, normal.map(|v| v * along));
        let side = dot(across, across).sqrt();
        if side > TOLERANCE * 10.0 * along.abs().max(1.0) {
            return Err(Error::Unsupported(format!(
                "{}: the slices are not stacked along their normal ({side:.2} mm sideways over {along:.1} mm): a gantry tilt; resample the series first",
                s.name()
            )));
        }
    }
    Ok((step, normal))
}

/// Decodes the frames of one instance that the volume holds (each `Slice` with its slot of the volume's
/// values), each rescaled by its own slope and intercept; says whether every value is an integer that
/// float32 holds exactly. Before any frame is decoded, the pixel data must hold every frame the instance
/// declares, and no compressed frame may declare more pixels than its slice (`declared_size`).
fn decode(obj: &DefaultDicomObject, path: &Path, frames: Vec<(&Slice, &mut [f32])>) -> Result<bool> {
    use dicom_pixeldata::PixelDecoder;
    let Some((first, _)) = frames.first() else { return Ok(true) };
    let n = first.rows * first.columns;
    let declared = number_of_frames(obj, path)?;
    let bits = uint(obj, tags::BITS_ALLOCATED, "BitsAllocated", path)?;
    let stored = uint(obj, tags::BITS_STORED, "BitsStored", path).unwrap_or(bits).clamp(1, 32);
    let signed = uint(obj, tags::PIXEL_REPRESENTATION, "PixelRepresentation", path).is_ok_and(|r| r == 1);
    let width = match bits {
        8 => 1,
        16 => 2,
        32 => 4,
        b => return Err(Error::UnsupportedDtype(format!("{}: {b} bits allocated per pixel", path.display()))),
    };
    // Bits above BitsStored are not part of the value (they may hold an overlay): masked, then the sign
    // extended from the stored high bit.
    let shift = 32 - stored.min(bits) as u32;
    let index = |s: &Slice| s.frame.map_or(0, |f| f as usize - 1);
    let element = obj.get(tags::PIXEL_DATA).ok_or_else(|| Error::io(path, "no pixel data"))?;
    let mut integral = true;
    match element.value() {
        DicomValue::Primitive(p) => {
            let bytes = p.to_bytes();
            let need = declared * n * width;
            if bytes.len() < need {
                return Err(Error::io(
                    path,
                    format!("pixel data holds {} bytes; {declared} frame(s) of {n} pixels need {need}", bytes.len()),
                ));
            }
            for (s, out) in frames {
                let at = index(s) * n * width;
                integral &= rescale_into(&bytes[at..at + n * width], width, shift, signed, s.rescale, out);
            }
        }
        DicomValue::PixelSequence(seq) => {
            let starts = frame_starts(seq.fragments(), seq.offset_table(), declared).map_err(|m| Error::io(path, m))?;
            // A compressed frame states its own size (JPEG 2000's SIZ marker, JPEG's SOF), and the decoder
            // reserves memory for that size, not for Rows × Columns: a few bytes could claim gigabytes.
            for (s, _) in &frames {
                let Some((w, h, comps)) = declared_size(&seq.fragments()[starts[index(s)]]) else { continue };
                if w * h * comps.max(1) > n as u64 * 4 {
                    return Err(Error::TooLarge(format!(
                        "{}: the compressed frame declares {w}×{h} pixels × {comps} components for a {n}-pixel slice",
                        s.name()
                    )));
                }
            }
            for (s, out) in frames {
                let fail = |e: &dyn std::fmt::Display| s.error(format!("pixel data: {}", one_line(e)));
                let px = obj.decode_pixel_data_frame(index(s) as u32).map_err(|e| fail(&e))?;
                if px.rows() as usize * px.columns() as usize != n {
                    return Err(s.error(format!("pixel data decodes to {}×{} pixels", px.columns(), px.rows())));
                }
                let data = px.frame_data(0).map_err(|e| fail(&e))?;
                if data.len() < n * width {
                    return Err(s.error(format!("pixel data holds {} bytes, {} needed", data.len(), n * width)));
                }
                integral &= rescale_into(&data[..n * width], width, shift, signed, s.rescale, out);
            }
        }
        DicomValue::Sequence(_) => return Err(Error::io(path, "pixel data is a sequence of items")),
    }
    Ok(integral)
}

/// Each frame's first fragment: one fragment per frame, one frame in all of them, or the fragments where
/// the basic offset table says frames start (its offsets count each fragment's 8-byte item header).
fn frame_starts(fragments: &[Vec<u8>], table: &[u32], frames: usize) -> std::result::Result<Vec<usize>, String> {
    if fragments.len() == frames {
        return Ok((0..frames).collect());
    }
    if frames == 1 && !fragments.is_empty() {
        return Ok(vec![0]);
    }
    if table.len() != frames || fragments.is_empty() {
        return Err(format!(
            "{frames} frame(s) in {} fragment(s) with a basic offset table of {} entries: the frames are not all there",
            fragments.len(),
            table.len()
        ));
    }
    let (mut k, mut offset) = (0usize, 0u64);
    let mut starts = Vec::with_capacity(frames);
    for &t in table {
        while offset < u64::from(t) && k < fragments.len() {
            offset += fragments[k].len() as u64 + 8;
            k += 1;
        }
        if offset != u64::from(t) || k >= fragments.len() {
            return Err(format!("the basic offset table's offset {t} is not where a fragment starts"));
        }
        starts.push(k);
    }
    Ok(starts)
}

/// One frame's stored values (`width` bytes each, little endian), their bits above BitsStored cut off
/// (`shift`, `stored_value`), rescaled into `out`; whether every value is an integer float32 holds exactly.
fn rescale_into(
    data: &[u8],
    width: usize,
    shift: u32,
    signed: bool,
    [slope, intercept]: [f64; 2],
    out: &mut [f32],
) -> bool {
    let mut integral = true;
    for (c, o) in data.chunks_exact(width).zip(out) {
        let raw = match width {
            1 => u32::from(c[0]),
            2 => u32::from(u16::from_le_bytes([c[0], c[1]])),
            _ => u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
        };
        let y = stored_value(raw, shift, signed) * slope + intercept;
        integral &= y.fract() == 0.0 && y.abs() <= f64::from(1u32 << 24);
        *o = y as f32;
    }
    integral
}

/// Width, height and components a JPEG 2000 codestream (SOC + SIZ) or a JPEG frame (SOFn) declares, if its
/// header is among the fragment's first 64 KiB.
fn declared_size(f: &[u8]) -> Option<(u64, u64, u64)> {
    let head = &f[..f.len().min(64 << 10)];
    let be32 = |b: &[u8], at: usize| b.get(at..at + 4).map(|x| u64::from(u32::from_be_bytes([x[0], x[1], x[2], x[3]])));
    let be16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|x| u64::from(u16::from_be_bytes([x[0], x[1]])));
    if let Some(at) = head.windows(4).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51]) {
        // SIZ: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz, YTOsiz, Csiz.
        let b = &head[at + 4..];
        let (x, y, xo, yo) = (be32(b, 4)?, be32(b, 8)?, be32(b, 12)?, be32(b, 16)?);
        return Some((x.saturating_sub(xo), y.saturating_sub(yo), be16(b, 36)?));
    }
    // JPEG: SOI, then marker segments up to the first SOFn (C0–CF but C4 DHT, C8 JPG, CC DAC): Lf, P, Y, X, Nf.
    if head.starts_with(&[0xFF, 0xD8]) {
        let mut at = 2;
        while head.get(at) == Some(&0xFF) {
            let marker = *head.get(at + 1)?;
            let b = head.get(at + 2..)?;
            if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
                return Some((be16(b, 5)?, be16(b, 3)?, u64::from(*b.get(7)?)));
            }
            at += 2 + usize::try_from(be16(b, 0)?).ok()?;
        }
    }
    None
}

/// The value of a pixel's `raw` bits whose top `shift` bits lie above BitsStored: masked off, and for a
/// signed pixel the stored high bit extended.
fn stored_value(raw: u32, shift: u32, signed: bool) -> f64 {
    if signed {
        f64::from(((raw << shift) as i32) >> shift)
    } else {
        f64::from((raw << shift) >> shift)
    }
}

/// The IJK → RAS matrix: i along the row direction by the column spacing, j along the column direction by
/// the row spacing, k along the normal by the slice step, from the first slice's position; DICOM's LPS
/// becomes RAS by negating x and y.
fn geometry(first: &Slice, step: f64, normal: [f64; 3]) -> Geometry {
    let o = first.orientation;
    let (row, col) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let [sr, sc] = first.spacing;
    let cols = [row.map(|v| v * sc), col.map(|v| v * sr), normal.map(|v| v * step)];
    let lps_to_ras = [-1.0, -1.0, 1.0];
    let mut m = [[0.0; 4]; 4];
    for r in 0..3 {
        for (c, col) in cols.iter().enumerate() {
            m[r][c] = lps_to_ras[r] * col[r];
        }
        m[r][3] = lps_to_ras[r] * first.position[r];
    }
    m[3][3] = 1.0;
    Geometry { spacing: [sc, sr, step], ijk_to_ras: m }
}

/// int16 when every rescaled value is an integer in its range (a CT in HU), int32 for larger integers,
/// else float32 (what the values already are).
fn pack(values: Vec<f32>, integral: bool, dims: [usize; 3], geometry: Geometry) -> Volume {
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (dtype, data) = if integral && lo >= f32::from(i16::MIN) && hi <= f32::from(i16::MAX) {
        (DType::I16, values.iter().flat_map(|&v| (v as i16).to_ne_bytes()).collect())
    } else if integral {
        (DType::I32, values.iter().flat_map(|&v| (v as i32).to_ne_bytes()).collect())
    } else {
        (DType::F32, bytemuck::cast_slice(&values).to_vec())
    };
    Volume { data, dtype, dims, geometry }
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(name: &str, z: f64, x: f64) -> Slice {
        Slice {
            path: PathBuf::from(name),
            sop_class_uid: String::new(),
            sop_instance_uid: String::new(),
            frame: None,
            position: [x, 0.0, z],
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            spacing: [0.5, 0.5],
            rows: 4,
            columns: 4,
            rescale: [1.0, 0.0],
        }
    }

    #[test]
    fn slices_are_sorted_by_position_and_irregular_stacks_refused() {
        let mut s = vec![slice("c", 4.0, 0.0), slice("a", 0.0, 0.0), slice("b", 2.0, 0.0)];
        assert_eq!(sort_slices(&mut s).unwrap(), (2.0, [0.0, 0.0, 1.0]));
        assert_eq!(s.iter().map(|s| s.path.to_str().unwrap()).collect::<Vec<_>>(), ["a", "b", "c"]);

        let message = |mut s: Vec<Slice>| sort_slices(&mut s).unwrap_err().to_string();
        let m = message(vec![slice("a", 0.0, 0.0), slice("b", 2.0, 0.0), slice("d", 6.0, 0.0), slice("e", 8.0, 0.0)]);
        assert!(m.starts_with("d: 4.000 mm after b") && m.contains("1 slice(s) missing"), "{m}");
        let m = message(vec![slice("a", 0.0, 0.0), slice("b", 0.0, 0.0)]);
        assert!(m.contains("lies at the position of a"), "{m}");
        // Each slice 1 mm further along x than the last: a gantry tilt of about 27°.
        let m = message(vec![slice("a", 0.0, 0.0), slice("b", 2.0, 1.0), slice("c", 4.0, 2.0)]);
        assert!(m.contains("gantry tilt"), "{m}");
        let mut odd = slice("b", 2.0, 0.0);
        odd.rows = 5;
        assert!(message(vec![slice("a", 0.0, 0.0), odd]).contains("not the grid of a"));
        let mut turned = slice("b", 2.0, 0.0);
        turned.orientation = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        assert!(message(vec![slice("a", 0.0, 0.0), turned]).contains("not the grid of a"));
    }

    #[test]
    fn the_geometry_turns_lps_into_ras_and_stored_bits_are_sign_extended() {
        let g = geometry(&slice("a", -10.0, 5.0), 2.0, [0.0, 0.0, 1.0]);
        assert_eq!(g.ijk_to_ras([1.0, 2.0, 3.0]), [-5.5, -1.0, -4.0]);
        assert_eq!(g.spacing, [0.5, 0.5, 2.0]);
        // 12 bits stored in 16: 0x0FFF is −1 when signed, 4095 when not; bits above 12 (an overlay) are
        // not part of the value.
        assert_eq!(stored_value(0x0FFF, 20, true), -1.0);
        assert_eq!(stored_value(0x0FFF, 20, false), 4095.0);
        assert_eq!(stored_value(0xF800, 20, true), -2048.0);
        assert_eq!(stored_value(0xF001, 20, false), 1.0);
        assert_eq!(stored_value(0x8000, 16, true), -32768.0);
    }

    #[test]
    fn frames_are_found_among_fragments_one_each_or_by_the_offset_table() {
        let f = |lens: &[usize]| lens.iter().map(|&n| vec![0u8; n]).collect::<Vec<_>>();
        assert_eq!(frame_starts(&f(&[10, 20, 30]), &[], 3).unwrap(), [0, 1, 2]);
        assert_eq!(frame_starts(&f(&[10, 20, 30]), &[], 1).unwrap(), [0]);
        // Two frames of two fragments each: offsets count each fragment's 8-byte item header.
        assert_eq!(frame_starts(&f(&[10, 20, 30, 40]), &[0, 46], 2).unwrap(), [0, 2]);
        let m = frame_starts(&f(&[10, 20, 30, 40]), &[0, 40], 2).unwrap_err();
        assert!(m.contains("offset 40 is not where a fragment starts"), "{m}");
        let m = frame_starts(&f(&[10, 20]), &[], 3).unwrap_err();
        assert!(m.contains("3 frame(s) in 2 fragment(s)"), "{m}");
        assert!(frame_starts(&[], &[], 1).is_err());
    }

    #[test]
    fn a_compressed_frame_larger_than_its_header_says_is_refused_before_decoding() {
        // A J2K codestream header declaring 60000 × 50000 pixels, one component.
        let mut j2k = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
        for v in [60_000u32, 50_000, 0, 0, 60_000, 50_000, 0, 0] {
            j2k.extend_from_slice(&v.to_be_bytes());
        }
        j2k.extend_from_slice(&1u16.to_be_bytes());
        assert_eq!(declared_size(&j2k), Some((60_000, 50_000, 1)));
        // A JPEG SOF0 of 512 × 256, 1 component, after SOI and a DHT-like segment start.
        let jpeg = [0xFF, 0xD8, 0xFF, 0xC4, 0, 2, 0xFF, 0xC0, 0, 11, 8, 1, 0, 2, 0, 1];
        assert_eq!(declared_size(&jpeg), Some((512, 256, 1)));
        assert_eq!(declared_size(b"no header here"), None);
    }
}
