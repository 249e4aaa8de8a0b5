//! Writing a file whole or not at all: the one writer behind every file nst saves (weights,
//! images, logs, plots, gradients, the tuning cache).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The temporary files being written now, for [`remove_unfinished`].
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn unfinished() -> MutexGuard<'static, Vec<PathBuf>> {
    // A writer that panicked holding the lock left the list as it was: still usable.
    UNFINISHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary files that [`write_atomic`] calls are writing now. For a program
/// about to exit without unwinding (`std::process::exit`, as on a second Ctrl-C), which would
/// otherwise leave them behind; the writes in progress then fail or leave nothing.
pub fn remove_unfinished() {
    remove_unfinished_under(Path::new(""));
}

/// [`remove_unfinished`] for the temporary files under `folder` only ("" for all).
fn remove_unfinished_under(folder: &Path) {
    unfinished().retain(|path| {
        let here = path.starts_with(folder);
        if here {
            let _ = std::fs::remove_file(path);
        }
        !here
    });
}

/// Lists a temporary file in [`UNFINISHED`] while it lives.
struct Listed(PathBuf);

impl Listed {
    fn new(path: &Path) -> Self {
        unfinished().push(path.to_owned());
        Listed(path.to_owned())
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        unfinished().retain(|p| p != &self.0);
    }
}

/// Writes the file at `path` through `write`, whole or not at all.
///
/// The bytes go to a uniquely named temporary file in `path`'s folder (so concurrent writers
/// never share one), are flushed to disk, and the temporary file is renamed over `path`. On
/// any error, `write`'s included, the temporary file is removed and an existing file at `path`
/// is left untouched. The folder must exist.
///
/// On Unix the file is created with mode 0666 less the process's umask, as `File::create`
/// would (0644 under the usual umask 022), so a web server or a colleague can read it.
pub fn write_atomic(
    path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".nst-").suffix(".tmp");
    // tempfile's default is owner-only (0600), meant for scratch files, not for results.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let temp = builder.tempfile_in(folder)?;
    let _listed = Listed::new(temp.path());
    {
        let mut out = BufWriter::new(temp.as_file());
        write(&mut out)?;
        out.flush()?;
    }
    // Without this a crash right after the rename could leave an empty file in place.
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(path, |out| out.write_all(bytes))
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        write_bytes(&dest, b"one, a longer first version").unwrap();
        write_bytes(&dest, b"two!").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two!");
        assert_eq!(entries(dir.path()), ["f.bin"]);
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        write_bytes(&dest, b"old").unwrap();
        // The writer fails halfway: the old file stays whole, no temporary is left.
        let e = write_atomic(&dest, |out| {
            out.write_all(&[7; 100_000])?;
            Err(std::io::Error::other("encoder failed"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "encoder failed");
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["f.bin"]);
        // A folder in the way: the rename fails, the temporary goes.
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/keep"), b"k").unwrap();
        write_bytes(&dir.path().join("d"), b"new").unwrap_err();
        assert_eq!(entries(dir.path()), ["d", "f.bin"]);
        assert_eq!(entries(&dir.path().join("d")), ["keep"]);
        // A missing folder is not created.
        write_bytes(&dir.path().join("absent/f.bin"), b"new").unwrap_err();
        assert_eq!(entries(dir.path()), ["d", "f.bin"]);
    }

    #[test]
    fn an_exit_midway_can_remove_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        write_bytes(&dest, b"old").unwrap();
        // A second Ctrl-C's handler runs while the file is being written.
        let e = write_atomic(&dest, |out| {
            out.write_all(&[7; 100_000])?;
            out.flush()?;
            assert_eq!(entries(dir.path()).len(), 2, "the temporary is there");
            // Only this test's folder: other tests may be writing meanwhile.
            remove_unfinished_under(dir.path());
            assert_eq!(entries(dir.path()), ["f.bin"]);
            Ok(())
        });
        // The rename finds no temporary; the old file is whole either way.
        assert!(e.is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["f.bin"]);
        let listed = unfinished().iter().any(|p| p.starts_with(dir.path()));
        assert!(!listed, "a finished write stays listed");
    }

    #[test]
    fn concurrent_writers_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.bin");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let dest = &dest;
                s.spawn(move || write_bytes(dest, &[i; 4096]).unwrap());
            }
        });
        let bytes = std::fs::read(&dest).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "a mixed file");
        assert_eq!(entries(dir.path()), ["w.bin"]);
    }

    /// The mode is 0666 less the umask, as `File::create` gives: 0644 under the usual 022.
    /// The umask belongs to the process; no other test here depends on it.
    #[cfg(unix)]
    #[test]
    fn files_are_created_with_the_usual_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        for (umask, want) in [(0o022, 0o644), (0o027, 0o640)] {
            let dest = dir.path().join(format!("umask{umask:o}.bin"));
            // SAFETY: umask only swaps the process's mask; it cannot fail.
            let old = unsafe { libc::umask(umask) };
            let written = write_bytes(&dest, b"x");
            // SAFETY: as above.
            unsafe { libc::umask(old) };
            written.unwrap();
            let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "umask {umask:03o}: mode {mode:03o}");
        }
    }
}
