//! What a reader may open and how much it may take: regular files only, sizes checked against a limit
//! before anything is reserved, and every read bounded. A host such as Slicer passes whatever file a user
//! drops on it, so a FIFO, `/dev/zero` or a header that declares terabytes must be refused, not served.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest volume a reader or a session takes on. Readers check a header's declared size against it
/// before they reserve memory; `Engine::open_session` checks a host's volume against `max_voxels`.
///
/// The default is our own choice, derived from the machine: `max_bytes` (what a file's voxel data may
/// declare) is a quarter of physical memory, and `max_voxels` a sixteenth of it in voxels, because a
/// session keeps about ten bytes per voxel next to the host's array (the model image, masks, confidence).
/// Both are at least 64 Mi, so small machines still open a 512×512×256 CT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_voxels: u64,
    pub max_bytes: u64,
}

/// Memory to assume when /proc/meminfo cannot be read.
const FALLBACK_MEMORY: u64 = 8 << 30;
const FLOOR: u64 = 64 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits::for_memory(physical_memory().unwrap_or(FALLBACK_MEMORY))
    }
}

impl Limits {
    /// The default limits on a machine with `bytes` of physical memory.
    pub fn for_memory(bytes: u64) -> Limits {
        Limits { max_voxels: (bytes / 16).max(FLOOR), max_bytes: (bytes / 4).max(FLOOR) }
    }

    /// Refuses `voxels` voxels of `bytes_per_voxel` bytes each (`what` names the source in the message).
    pub fn check(&self, what: &str, dims: &[u64], bytes_per_voxel: u64) -> Result<()> {
        let voxels = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let bytes = voxels.and_then(|v| v.checked_mul(bytes_per_voxel));
        let over = match (voxels, bytes) {
            (Some(v), Some(b)) if v <= self.max_voxels && b <= self.max_bytes => return Ok(()),
            (Some(v), _) if v > self.max_voxels => format!("more than the limit of {} voxels", self.max_voxels),
            (Some(_), Some(_)) => format!("more than the limit of {} MiB", self.max_bytes >> 20),
            _ => "more than can be addressed".to_string(),
        };
        Err(Error::TooLarge(format!("{what}: dims {dims:?} of {bytes_per_voxel} byte(s) per voxel are {over}")))
    }
}

/// Physical memory from /proc/meminfo (MemTotal), in bytes.
pub fn physical_memory() -> Option<u64> {
    static MEMORY: once_cell::sync::Lazy<Option<u64>> = once_cell::sync::Lazy::new(read_meminfo);
    *MEMORY
}

fn read_meminfo() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Opens `path` for reading only if it is a regular file (symbolic links are followed to one). A FIFO is
/// refused before it is opened, so the open cannot block; the descriptor is checked again after it.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(path, format!("not a regular file ({})", kind_of(&meta))));
    }
    let file = nonblocking_open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(path, format!("not a regular file ({})", kind_of(&meta))));
    }
    Ok((file, meta.len()))
}

fn nonblocking_open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: if the path was swapped for a FIFO after the check, open returns instead of waiting for a
    // writer; on a regular file the flag changes nothing.
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

/// Whether `rel` stays inside the folder it is joined to: relative, non-empty, with no `..` component.
pub fn stays_inside(rel: &str) -> bool {
    use std::path::Component;
    !rel.is_empty() && Path::new(rel).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Reads all of a regular file of at most `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    if len > max {
        return Err(Error::TooLarge(format!("{}: {len} bytes, more than the {max} allowed", path.display())));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow after the check: never read past the limit.
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::TooLarge(format!("{}: grew past the {max} bytes allowed while read", path.display())));
    }
    Ok(bytes)
}

/// Reads exactly `n` bytes from `r` into a vector that grows with what arrives, never reserving `n` up
/// front: a stream that declares much and holds little costs only what it holds.
pub fn read_exactly(r: &mut impl Read, n: u64, path: &Path, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(n.min(64 << 20) as usize);
    r.take(n)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, format!("{what} is truncated or corrupt: {}", plain(&e))))?;
    if (out.len() as u64) < n {
        return Err(Error::io(path, format!("truncated: {what} holds {} bytes, {n} needed", out.len())));
    }
    Ok(out)
}

/// An I/O error's message without Rust Debug text.
pub fn plain(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_overflow_and_size_and_accept_what_fits() {
        let l = Limits { max_voxels: 1000, max_bytes: 2000 };
        assert!(l.check("x", &[10, 10, 10], 2).is_ok());
        assert_eq!(l.check("x", &[10, 10, 11], 1).unwrap_err().code(), crate::ErrorCode::TooLarge);
        assert_eq!(l.check("x", &[10, 10, 10], 4).unwrap_err().code(), crate::ErrorCode::TooLarge);
        assert_eq!(l.check("x", &[u64::MAX, 2, 1], 1).unwrap_err().code(), crate::ErrorCode::TooLarge);
        assert!(Limits::for_memory(1 << 20).max_voxels >= 64 << 20);
        assert_eq!(Limits::for_memory(32 << 30), Limits { max_voxels: 2 << 30, max_bytes: 8 << 30 });
    }

    #[test]
    fn devices_folders_and_fifos_are_not_opened() {
        for p in ["/dev/zero", "/dev/null", "/"] {
            assert!(open_regular(Path::new(p)).unwrap_err().to_string().contains("not a regular file"), "{p}");
        }
        let dir = std::env::temp_dir().join(format!("vxp-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("f.nii");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(open_regular(&fifo).unwrap_err().to_string().contains("a FIFO"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
