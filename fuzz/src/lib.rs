//! What the fuzz targets run, kept apart from libFuzzer so the replay test (`tests/fuzz_regressions.rs` in
//! the main crate) and the targets share the one definition of "a reader must not misbehave": it returns a
//! volume whose bytes match its dims, or an error; it never panics, never reads out of bounds (ASan), and
//! never takes more than the limits allow (libFuzzer's malloc limit).

use std::borrow::Cow;
use std::io::Cursor;
use std::path::Path;

use voxprompt::io::{dicom, nifti, nrrd, Limits};
use voxprompt::volume::Volume;

pub mod abi;
pub mod seeds;

/// How far an input got, for the replay test to assert that the seeds reach what they were made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Too short to say anything.
    Nothing,
    /// The reader (or the ABI) refused it with an error.
    Refused,
    /// A volume was read and every voxel visited.
    Volume,
    /// A session was opened and its run returned this code.
    Run(voxprompt::ffi::result::vxp_result),
}

/// Small enough that a declared size past it is refused long before libFuzzer's 2 GB malloc limit.
pub fn limits() -> Limits {
    Limits { max_voxels: 1 << 20, max_bytes: 8 << 20 }
}

/// A readable volume is consistent, and every voxel can be read.
fn check(v: &Volume) -> Reached {
    let n: usize = v.dims.iter().product();
    assert_eq!(v.data.len(), n * v.dtype.size(), "volume bytes do not match its dims");
    let Ok(view) = v.view() else { return Reached::Refused };
    let mut sum = 0.0f64;
    view.for_each(|x| sum += x);
    std::hint::black_box(sum);
    Reached::Volume
}

/// First byte odd: the rest is gzip-wrapped here, so mutated headers also reach the inflating path (a
/// mutated gzip stream almost never inflates). Written as stored blocks by hand: compressing every input
/// would cost ten times the read under the sanitizer; real deflate streams come from the `-gz` seeds.
fn unwrap_mode(data: &[u8]) -> Option<Cow<'_, [u8]>> {
    let (&mode, rest) = data.split_first()?;
    if mode & 1 == 0 {
        return Some(Cow::Borrowed(rest));
    }
    let mut z = Vec::with_capacity(rest.len() + 32);
    z.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    let mut blocks = rest.chunks(u16::MAX as usize).peekable();
    if blocks.peek().is_none() {
        z.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(b) = blocks.next() {
        let len = b.len() as u16;
        z.push(u8::from(blocks.peek().is_none()));
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(b);
    }
    let mut crc = flate2::Crc::new();
    crc.update(rest);
    z.extend_from_slice(&crc.sum().to_le_bytes());
    z.extend_from_slice(&(rest.len() as u32).to_le_bytes());
    Some(Cow::Owned(z))
}

/// The NIfTI-1 reader over bytes, plain or gzip.
pub fn nifti(data: &[u8]) -> Reached {
    let Some(bytes) = unwrap_mode(data) else { return Reached::Nothing };
    let len = bytes.len() as u64;
    match nifti::read_from(Cursor::new(&bytes[..]), len, Path::new("fuzz.nii"), &limits()) {
        Ok((v, _)) => check(&v),
        Err(_) => Reached::Refused,
    }
}

/// The NRRD reader over bytes (the payload may be gzip by the header's `encoding`). A detached `data file`
/// resolves under a folder that does not exist, so it is refused or not found, never read from the disk.
pub fn nrrd(data: &[u8]) -> Reached {
    let len = data.len() as u64;
    let path = Path::new("/nonexistent-voxprompt-fuzz/fuzz.nrrd");
    match nrrd::read_from(Cursor::new(data), len, path, &limits()) {
        Ok(v) => check(&v),
        Err(_) => Reached::Refused,
    }
}

/// One DICOM instance from bytes: its header checked, its pixels decoded (native, RLE, JPEG, JPEG 2000)
/// and rescaled, as a slice of a series is.
pub fn dicom(data: &[u8]) -> Reached {
    match dicom::read_instance_from(data, Path::new("fuzz.dcm"), &limits()) {
        Ok(v) => check(&v),
        Err(_) => Reached::Refused,
    }
}
