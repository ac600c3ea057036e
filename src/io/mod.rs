//! File formats for the CLI and tests: NIfTI-1 and NRRD in, NIfTI masks and PNG montages out.

pub mod nifti;
pub mod nrrd;
pub mod png;

use std::path::Path;

use crate::error::{Error, Result};
use crate::volume::Volume;

/// A volume read from a file, with the NIfTI header when there was one (so outputs can copy it).
pub struct Loaded {
    pub volume: Volume,
    pub nifti_header: Option<::nifti::NiftiHeader>,
}

/// Reads a NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .nhdr) file by its extension.
pub fn read_volume(path: &Path) -> Result<Loaded> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        let (volume, header) = nifti::read(path)?;
        Ok(Loaded { volume, nifti_header: Some(header) })
    } else if name.ends_with(".nrrd") || name.ends_with(".nhdr") {
        Ok(Loaded { volume: nrrd::read(path)?, nifti_header: None })
    } else {
        Err(Error::io(path, "unknown volume format: expected .nii, .nii.gz, .nrrd or .nhdr"))
    }
}

/// Writes `tmp` through `write`, then renames it to `path`, so a failure never leaves a partial file.
pub(crate) fn write_atomically(path: &Path, ext: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    // No dot but the extension's: the nifti crate re-derives an uncompressed file's name from its extension
    // and wrote ".m.nii.vxp-tmp-1.nii" as ".m.nii.nii", losing the file to the rename.
    let tmp = dir.join(format!(".vxp-tmp-{}-{}.{ext}", std::process::id(), stem.replace('.', "_")));
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
