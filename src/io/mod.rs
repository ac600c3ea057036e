//! File formats for the CLI and tests: NIfTI-1, NRRD and DICOM series in; NIfTI, NRRD and Slicer
//! segmentation (.seg.nrrd) masks, DICOM SEG (.dcm) and PNG montages out; read under size limits and written as atomic sets.

pub mod dicom;
pub mod dicomseg;
pub mod files;
pub mod nifti;
pub mod nrrd;
pub mod output;
pub mod png;
pub mod segnrrd;

pub use files::Limits;

use std::path::Path;

use crate::error::{Error, Result};
use crate::volume::Volume;

/// The default colour of each label: label `l` (1-based) is `LABEL_COLORS[(l - 1) % 8]`. The PNG montage
/// overlays labels in these colours, and a Slicer segment with no colour of its own gets the same one.
pub const LABEL_COLORS: [[u8; 3]; 8] = [
    [255, 64, 64],
    [64, 200, 255],
    [255, 220, 0],
    [80, 255, 80],
    [255, 96, 255],
    [255, 160, 32],
    [160, 120, 255],
    [0, 255, 200],
];

/// `LABEL_COLORS` for a label (0, the background, has the last colour; nothing draws it).
pub fn label_color(label: u8) -> [u8; 3] {
    LABEL_COLORS[(label as usize + LABEL_COLORS.len() - 1) % LABEL_COLORS.len()]
}

/// What a label mask or a map is written as, told by the output's name (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// `.nii`, or `.nii.gz` (`gz`).
    Nifti { gz: bool },
    /// `.nrrd`: attached data, gzip-compressed.
    Nrrd,
    /// `.seg.nrrd`: a 3D Slicer segmentation (a label mask only).
    SegNrrd,
    /// `.dcm`: a DICOM Segmentation object (a label mask of a DICOM series only).
    DicomSeg,
}

impl OutputFormat {
    /// The format `path`'s name asks for, if it is one of ours.
    pub fn of(path: &Path) -> Option<OutputFormat> {
        let n = path.to_string_lossy().to_ascii_lowercase();
        Some(if n.ends_with(".seg.nrrd") {
            OutputFormat::SegNrrd
        } else if n.ends_with(".nrrd") {
            OutputFormat::Nrrd
        } else if n.ends_with(".nii") {
            OutputFormat::Nifti { gz: false }
        } else if n.ends_with(".nii.gz") {
            OutputFormat::Nifti { gz: true }
        } else if n.ends_with(".dcm") {
            OutputFormat::DicomSeg
        } else {
            return None;
        })
    }
}

/// A volume read from a file, with the NIfTI header when there was one (so outputs can copy it).
pub struct Loaded {
    pub volume: Volume,
    pub nifti_header: Option<::nifti::NiftiHeader>,
    /// What a DICOM series was (its UIDs, instances, patient and study); None for NIfTI and NRRD.
    pub dicom: Option<dicom::SourceSeries>,
}

/// Reads a NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .nhdr) file by its extension (any case), under the
/// default `Limits`.
pub fn read_volume(path: &Path) -> Result<Loaded> {
    read_volume_with(path, &Limits::default())
}

/// `read_volume` under the given limits.
pub fn read_volume_with(path: &Path, limits: &Limits) -> Result<Loaded> {
    read_input(path, None, limits)
}

/// Reads a NIfTI or NRRD file by its extension, or a DICOM series: a folder (the one series in it, or
/// `series`, a SeriesInstanceUID) or one DICOM file (`.dcm`, or any name with the DICOM magic: the series
/// it belongs to, among the files of its folder).
pub fn read_input(path: &Path, series: Option<&str>, limits: &Limits) -> Result<Loaded> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
    let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
    let is_file_of_series = !is_dir && (name.ends_with(".dcm") || dicom::is_dicom(path));
    if series.is_some() && !is_dir && !is_file_of_series {
        return Err(Error::InvalidArgument(format!("{}: --series is for a DICOM folder", path.display())));
    }
    let loaded = if is_dir {
        let (volume, source) = dicom::read_series_with_source(&[path.to_path_buf()], series, limits)?;
        Loaded { volume, nifti_header: None, dicom: Some(source) }
    } else if is_file_of_series {
        let uid = match series {
            Some(s) => s.to_owned(),
            None => dicom::series_of(path)?,
        };
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let (volume, source) = dicom::read_series_with_source(&[dir.to_path_buf()], Some(&uid), limits)?;
        Loaded { volume, nifti_header: None, dicom: Some(source) }
    } else if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        let (volume, header) = nifti::read_with(path, limits)?;
        Loaded { volume, nifti_header: Some(header), dicom: None }
    } else if name.ends_with(".nrrd") || name.ends_with(".nhdr") {
        Loaded { volume: nrrd::read_with(path, limits)?, nifti_header: None, dicom: None }
    } else {
        return Err(Error::io(
            path,
            "unknown volume format: expected .nii, .nii.gz, .nrrd, .nhdr, a .dcm file or a folder of DICOM files",
        ));
    };
    // A header whose geometry no volume can have (spacing inf, a NaN in the matrix) is the file's problem,
    // reported with its path, like any other bad header.
    if let Err(Error::InvalidVolume(m)) = loaded.volume.view() {
        return Err(Error::io(path, m));
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_formats_are_told_by_the_name_and_label_colours_cycle() {
        let of = |n: &str| OutputFormat::of(Path::new(n));
        assert_eq!(of("a/m.nii"), Some(OutputFormat::Nifti { gz: false }));
        assert_eq!(of("M.NII.GZ"), Some(OutputFormat::Nifti { gz: true }));
        assert_eq!(of("m.nrrd"), Some(OutputFormat::Nrrd));
        assert_eq!(of("m.Seg.Nrrd"), Some(OutputFormat::SegNrrd));
        assert_eq!(of("seg.DCM"), Some(OutputFormat::DicomSeg));
        for n in ["m.nhdr", "m.seg", "m.nii.gz.tmp", "mask"] {
            assert_eq!(of(n), None, "{n}");
        }
        assert_eq!(
            (label_color(1), label_color(9), label_color(2)),
            (LABEL_COLORS[0], LABEL_COLORS[0], LABEL_COLORS[1])
        );
    }
}
