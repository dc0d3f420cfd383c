//! The data dir holds the record (SQLite), the token secret and nothing
//! anyone else on the machine should read: it is created `0700`, and the
//! files in it are made `0600` (on Unix; elsewhere the OS defaults apply).

use std::path::Path;

/// Create `dir` (and missing parents) readable by this user only. An
/// existing directory is left as the operator made it.
pub fn create_private(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Make the files that exist among `files` readable by this user only.
pub fn restrict(files: &[&Path]) -> std::io::Result<()> {
    #[cfg(unix)]
    for file in files {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    #[cfg(not(unix))]
    let _ = files;
    Ok(())
}
