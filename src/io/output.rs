//! Outputs written as a set: every path is checked and its temporary file created before any work starts,
//! all are written, then all are renamed into place together; on any failure none of them remain.
//!
//! Temporary files are created exclusively (`O_CREAT | O_EXCL`, which never follows a symbolic link) under
//! a random name in the output's own folder, so a link planted there by another user is never written
//! through, and the rename is atomic on the same file system.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A reserved output: its index in the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(usize);

struct Pending {
    path: PathBuf,
    tmp: Option<tempfile::NamedTempFile>,
    written: bool,
}

/// Outputs reserved now and renamed into place by `commit`. Dropping the set uncommitted removes every
/// temporary file.
#[derive(Default)]
pub struct OutputSet {
    pending: Vec<Pending>,
}

impl OutputSet {
    pub fn new() -> OutputSet {
        OutputSet::default()
    }

    /// Reserves `path`: it must name a file (not a folder) in an existing folder, and not be reserved twice.
    /// Its temporary file is created now, which is the check that the folder is writable.
    pub fn reserve(&mut self, path: &Path) -> Result<Slot> {
        let name = path.file_name().filter(|n| !n.is_empty() && *n != "." && *n != "..");
        if name.is_none() {
            return Err(Error::io(path, "names no file"));
        }
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(Error::io(path, "is a folder; give a file name"));
        }
        if self.pending.iter().any(|p| same_file_name(&p.path, path)) {
            return Err(Error::InvalidArgument(format!("{} is given for two outputs", path.display())));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".vxp-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(path, format!("cannot write here: {}", super::files::plain(&e))))?;
        self.pending.push(Pending { path: path.to_path_buf(), tmp: Some(tmp), written: false });
        Ok(Slot(self.pending.len() - 1))
    }

    /// Writes a reserved output's content through `write`, buffered.
    pub fn write(&mut self, slot: Slot, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
        let p = &mut self.pending[slot.0];
        let file: &mut File = p.tmp.as_mut().expect("a reserved slot holds its file").as_file_mut();
        let mut w = BufWriter::new(file);
        // Writers name what they write, not where: the message gets the output's path here.
        write(&mut w).map_err(|e| match e {
            Error::Io { message, .. } => Error::Io { path: p.path.clone(), message },
            other => other,
        })?;
        w.flush().map_err(|e| Error::io(&p.path, super::files::plain(&e)))?;
        drop(w);
        p.written = true;
        Ok(())
    }

    /// Renames every output into place. If one rename fails, the outputs already renamed are removed
    /// again, so the set appears whole or not at all.
    pub fn commit(mut self) -> Result<()> {
        if let Some(p) = self.pending.iter().find(|p| !p.written) {
            return Err(Error::io(&p.path, "was reserved but never written"));
        }
        let mut done: Vec<PathBuf> = Vec::new();
        for p in &mut self.pending {
            let tmp = p.tmp.take().expect("each output is renamed once");
            if let Err(e) = tmp.persist(&p.path) {
                for d in &done {
                    let _ = std::fs::remove_file(d);
                }
                return Err(Error::io(&p.path, super::files::plain(&e.error)));
            }
            done.push(p.path.clone());
        }
        Ok(())
    }
}

fn same_file_name(a: &Path, b: &Path) -> bool {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs(a) == abs(b)
}

/// Writes one file atomically: a temporary file in its folder, renamed into place when `write` succeeds.
pub fn write_file(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let mut set = OutputSet::new();
    let slot = set.reserve(path)?;
    set.write(slot, write)?;
    set.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vxp-out-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn listing(d: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_set_appears_whole_or_not_at_all() {
        let d = scratch("set");
        let mut set = OutputSet::new();
        let a = set.reserve(&d.join("a.nii")).unwrap();
        let b = set.reserve(&d.join("b.png")).unwrap();
        set.write(a, |w| w.write_all(b"A").map_err(|e| Error::io("a", e))).unwrap();
        assert!(set.write(b, |_| Err(Error::InvalidArgument("no".into()))).is_err());
        drop(set);
        assert!(listing(&d).is_empty(), "{:?}", listing(&d));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn folders_and_twice_given_paths_are_refused_before_any_file_exists() {
        let d = scratch("refuse");
        std::fs::create_dir(d.join("sub")).unwrap();
        let mut set = OutputSet::new();
        assert!(set.reserve(&d.join("sub")).unwrap_err().to_string().contains("is a folder"));
        set.reserve(&d.join("m.nii")).unwrap();
        assert_eq!(set.reserve(&d.join("./m.nii")).unwrap_err().code(), crate::ErrorCode::InvalidArgument);
        assert!(set.reserve(&d.join("missing/x.nii")).unwrap_err().to_string().contains("cannot write here"));
        drop(set);
        assert_eq!(listing(&d), ["sub"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
