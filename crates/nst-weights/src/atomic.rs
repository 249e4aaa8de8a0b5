//! Writing a file whole or not at all.

use std::io::Write as _;
use std::path::Path;

use crate::WeightsError;

/// Writes `bytes` to a fresh temporary file beside `dest` (a unique name, so
/// concurrent writers never share one), flushes it to disk and renames it to
/// `dest`, creating `dest`'s folder first. On any error the temporary file
/// is removed and `dest` is untouched.
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    let write_err = |path: &Path, source| WeightsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".nst-").suffix(".tmp");
    // A weights file is not secret: readable by all, like any other file
    // (tempfile's default is owner-only).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| write_err(dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| write_err(tmp.path(), e))?;
    tmp.persist(dest).map_err(|e| write_err(dest, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/f.bin");
        write_atomic(&dest, b"one").unwrap();
        write_atomic(&dest, b"two!").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two!");
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            1
        );
        // A destination inside a file cannot be created: an error, no panic.
        let e = write_atomic(&dest.join("x"), b"three").unwrap_err();
        assert!(matches!(e, WeightsError::Write { .. }), "{e}");
        // A folder in the way: the rename fails, the temporary file goes.
        std::fs::create_dir(dir.path().join("sub/d")).unwrap();
        std::fs::write(dir.path().join("sub/d/keep"), b"k").unwrap();
        let e = write_atomic(&dir.path().join("sub/d"), b"four").unwrap_err();
        assert!(matches!(e, WeightsError::Write { .. }), "{e}");
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            2
        );
    }

    #[test]
    fn concurrent_writers_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.bin");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let dest = &dest;
                s.spawn(move || write_atomic(dest, &[i; 4096]).unwrap());
            }
        });
        let bytes = std::fs::read(&dest).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "a mixed file");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
