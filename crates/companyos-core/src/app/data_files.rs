//! The data dir and the SQLite files at start: created private (0700, 0600) before anything
//! is written into them.

use std::path::{Path, PathBuf};

use super::StartError;

/// Creates the SQLite database file mode 0600 before SQLite does (SQLite gives its `-wal` and
/// `-shm` files the mode of the database file), and tightens existing ones.
pub(super) fn protect_sqlite_files(path: &Path) -> Result<(), StartError> {
    let error = |path: &Path| {
        let path = path.to_owned();
        move |reason| StartError::DatabaseFile { path, reason }
    };
    match crate::evidence::secret_files::create_secret_file(path, b"") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            crate::evidence::secret_files::protect_existing_file(path).map_err(error(path))?;
        }
        Err(e) => return Err(error(path)(e)),
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let side = PathBuf::from(name);
        crate::evidence::secret_files::protect_existing_file(&side).map_err(error(&side))?;
    }
    Ok(())
}

pub(super) fn create_private_dir(path: &Path) -> Result<(), StartError> {
    let error = |source| StartError::DataDir {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(error)?;
    // 0700 keeps the store, keys and evidence to this user. A data dir the process cannot
    // chmod (someone else's mount point, a read-only file system) is not fatal by itself:
    // the keys dir inside is 0700 and the database 0600 either way, and the write check
    // below names a dir that cannot be used.
    if let Err(error) = crate::evidence::secret_files::create_private_dir(path) {
        tracing::warn!(path = %path.display(), %error, "cannot set mode 0700 on the data dir");
    }
    crate::evidence::secret_files::check_writable(path).map_err(|reason| StartError::NotWritable {
        path: path.to_owned(),
        reason,
    })
}
