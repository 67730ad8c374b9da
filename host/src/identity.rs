//! The node's key on disk (F01): `<data-dir>/key`, 64 hex characters of X25519 secret,
//! created on first start with owner-only permissions (0600, directory 0700). A key file
//! that others can read is refused, as ssh refuses unprotected private keys.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use meshlink_core::Keypair;
use rand_core::OsRng;

use crate::error::HostError;

pub const KEY_FILE: &str = "key";

/// `$XDG_DATA_HOME/meshlink`, else `~/.local/share/meshlink`, else `./.meshlink`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("meshlink");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/meshlink");
    }
    PathBuf::from(".meshlink")
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// Loads the key, creating it (and the directory) if there is none. Returns whether it
/// was created.
pub fn load_or_create(data_dir: &Path) -> Result<(Keypair, bool), HostError> {
    let path = key_path(data_dir);
    if path.exists() {
        return load(data_dir).map(|k| (k, false));
    }
    create(data_dir, false).map(|k| (k, true))
}

/// Loads an existing key.
pub fn load(data_dir: &Path) -> Result<Keypair, HostError> {
    let path = key_path(data_dir);
    let text = fs::read_to_string(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            HostError::Key(format!(
                "no key in {}; run `meshlink keygen` or `meshlink up` to create one",
                data_dir.display()
            ))
        } else {
            HostError::File { path: path.clone(), what: "read key file", source }
        }
    })?;
    check_private(&path, "inspect key file", HostError::Key)?;
    let bytes =
        hex::decode(text.trim()).map_err(|_| HostError::Key(format!("{} is not 64 hex characters", path.display())))?;
    let secret: [u8; 32] =
        bytes.try_into().map_err(|_| HostError::Key(format!("{} is not 64 hex characters", path.display())))?;
    Ok(Keypair::from_secret(secret))
}

/// Creates a new key. Without `force`, an existing key is an error (it is an identity).
pub fn create(data_dir: &Path, force: bool) -> Result<Keypair, HostError> {
    make_private_dir(data_dir)?;
    let path = key_path(data_dir);
    if path.exists() && !force {
        let id = load(data_dir).map(|k| k.peer_id().to_string()).unwrap_or_else(|_| "unreadable".into());
        return Err(HostError::Key(format!(
            "{} already exists (peer id {id}); pass --force to replace it",
            path.display()
        )));
    }
    let kp = Keypair::generate(&mut OsRng);
    let mut text = hex::encode(kp.secret_bytes());
    text.push('\n');
    // Write beside it and rename, so a crash never leaves a half-written identity.
    let tmp = data_dir.join(".key.tmp");
    let _ = fs::remove_file(&tmp);
    let file_err = |what, source| HostError::File { path: tmp.clone(), what, source };
    let mut f = private_file(&tmp).map_err(|e| file_err("create key file", e))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| file_err("write key file", e))?;
    fs::rename(&tmp, &path).map_err(|source| HostError::File { path: path.clone(), what: "save key file", source })?;
    Ok(kp)
}

/// Creates `path` for writing, readable by its owner only (0600), failing if it exists.
#[cfg(unix)]
pub(crate) fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
pub(crate) fn private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).open(path)
}

fn make_private_dir(dir: &Path) -> Result<(), HostError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|source| HostError::File { path: dir.to_path_buf(), what: "create data directory", source })
}

/// Refuses a secret file (`what`: "key file", "token file") that other users can read;
/// `refuse` builds the error the caller reports.
#[cfg(unix)]
pub(crate) fn check_private(path: &Path, what: &'static str, refuse: fn(String) -> HostError) -> Result<(), HostError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(|source| HostError::File { path: path.to_path_buf(), what, source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(refuse(format!(
            "{} is accessible by other users (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_private(_: &Path, _: &'static str, _: fn(String) -> HostError) -> Result<(), HostError> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("meshlink-id-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn created_once_with_owner_only_permissions_then_reloaded() {
        let d = tempdir("create");
        let (k1, created) = load_or_create(&d).unwrap();
        assert!(created);
        let mode = fs::metadata(key_path(&d)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        let (k2, created) = load_or_create(&d).unwrap();
        assert!(!created);
        assert_eq!(k1.peer_id(), k2.peer_id());
        assert!(create(&d, false).is_err(), "an existing identity is not overwritten");
        let k3 = create(&d, true).unwrap();
        assert_ne!(k3.peer_id(), k1.peer_id());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_readable_or_malformed_keys() {
        let d = tempdir("perm");
        load_or_create(&d).unwrap();
        fs::set_permissions(key_path(&d), fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&d).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        fs::set_permissions(key_path(&d), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(key_path(&d), "not hex\n").unwrap();
        assert!(load(&d).unwrap_err().to_string().contains("hex"));
        fs::remove_dir_all(&d).unwrap();
        assert!(load(&d).unwrap_err().to_string().contains("meshlink keygen"));
    }
}
