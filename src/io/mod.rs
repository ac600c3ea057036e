//! File formats for the CLI and tests: NIfTI-1 and NRRD in, NIfTI masks and PNG montages out, read under
//! size limits and written as atomic sets.

pub mod files;
pub mod nifti;
pub mod nrrd;
pub mod output;
pub mod png;

pub use files::Limits;

use std::path::Path;

use crate::error::{Error, Result};
use crate::volume::Volume;

/// A volume read from a file, with the NIfTI header when there was one (so outputs can copy it).
pub struct Loaded {
    pub volume: Volume,
    pub nifti_header: Option<::nifti::NiftiHeader>,
}

/// Reads a NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .nhdr) file by its extension (any case), under the
/// default `Limits`.
pub fn read_volume(path: &Path) -> Result<Loaded> {
    read_volume_with(path, &Limits::default())
}

/// `read_volume` under the given limits.
pub fn read_volume_with(path: &Path, limits: &Limits) -> Result<Loaded> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
    let loaded = if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        let (volume, header) = nifti::read_with(path, limits)?;
        Loaded { volume, nifti_header: Some(header) }
    } else if name.ends_with(".nrrd") || name.ends_with(".nhdr") {
        Loaded { volume: nrrd::read_with(path, limits)?, nifti_header: None }
    } else {
        return Err(Error::io(path, "unknown volume format: expected .nii, .nii.gz, .nrrd or .nhdr"));
    };
    // A header whose geometry no volume can have (spacing inf, a NaN in the matrix) is the file's problem,
    // reported with its path, like any other bad header.
    if let Err(Error::InvalidVolume(m)) = loaded.volume.view() {
        return Err(Error::io(path, m));
    }
    Ok(loaded)
}
