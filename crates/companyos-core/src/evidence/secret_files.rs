//! Secret files (keys, tokens, the SQLite database): written mode 0600 whatever existed before,
//! never through a symbolic link, so a pre-planted file or link cannot expose or redirect them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// The mode of every secret file.
pub const SECRET_FILE_MODE: u32 = 0o600;
/// The mode of directories holding secrets (the data dir, `keys`).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Opens `path` for writing without following a symbolic link (`O_NOFOLLOW`: a link is an
/// error, `ELOOP`), refuses anything but a regular file with one link (a hard link would
/// expose the secret under another name), and sets mode 0600 on the open file, so an existing
/// 0644 file is tightened before a byte of the secret lands in it.
fn open_private(path: &Path, create_new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(SECRET_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true);
    }
    let file = options.open(path).map_err(|error| {
        if error.raw_os_error() == Some(libc::ELOOP) {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link; refusing to write a secret through it",
                    path.display()
                ),
            )
        } else {
            error
        }
    })?;
    let metadata = file.metadata()?;
    if !metadata.file_type().is_file() || metadata.nlink() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a plain file of its own; refusing to write a secret into it",
                path.display()
            ),
        ));
    }
    file.set_permissions(fs::Permissions::from_mode(SECRET_FILE_MODE))?;
    Ok(file)
}

/// Writes (or replaces) a secret file with mode 0600.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    SecretFile::open(path)?.write(contents)
}

/// A secret file opened (and checked, and made 0600) before the secret exists, so a command
/// that creates a secret it can show only once (a token) fails before creating it when the
/// file cannot take it, rather than after.
#[derive(Debug)]
pub struct SecretFile {
    file: File,
    path: std::path::PathBuf,
    created: bool,
}

impl SecretFile {
    /// Opens `path` for a secret: created 0600 if missing, tightened to 0600 if not, never
    /// through a link. Its contents are left alone until [`SecretFile::write`].
    pub fn open(path: &Path) -> io::Result<SecretFile> {
        let created = match fs::symlink_metadata(path) {
            Ok(_) => false,
            Err(error) if error.kind() == io::ErrorKind::NotFound => true,
            Err(error) => return Err(error),
        };
        Ok(SecretFile {
            file: open_private(path, false)?,
            path: path.to_owned(),
            created,
        })
    }

    /// Replaces the file's contents with `contents`.
    pub fn write(mut self, contents: &[u8]) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.write_all(contents)?;
        self.file.sync_all()
    }

    /// Leaves the file as it was: removes it if `open` created it.
    pub fn abandon(self) -> io::Result<()> {
        if self.created {
            fs::remove_file(&self.path)?;
        }
        Ok(())
    }
}

/// Creates a new secret file with mode 0600; fails if anything exists at `path`.
pub fn create_secret_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = open_private(path, true)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Sets mode 0600 on an existing file (not following a link); a missing file is fine.
pub fn protect_existing_file(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a symbolic link; refusing to use it for secrets",
                path.display()
            ),
        )),
        Ok(metadata) if metadata.permissions().mode() & 0o777 != SECRET_FILE_MODE => {
            fs::set_permissions(path, fs::Permissions::from_mode(SECRET_FILE_MODE))
        }
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Creates `path` (and its parents) if missing and sets mode 0700 on it. A data dir that is a
/// link to a directory is followed: operators point data dirs at mounted disks that way.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    if fs::metadata(path)?.permissions().mode() & 0o777 != PRIVATE_DIR_MODE {
        fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
    }
    Ok(())
}

/// Fails at once, with the operating system's reason, when files cannot be created in `dir`
/// (a read-only mount, a full disk, no permission), instead of the store's connection pool
/// timing out on it much later.
pub fn check_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".companyos-write-check-{}", std::process::id()));
    let _ = fs::remove_file(&probe);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&probe)?;
    drop(file);
    fs::remove_file(&probe)
}
