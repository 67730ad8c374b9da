//! The control API's bearer token: `<data-dir>/control.token`, 64 hex characters (32
//! random bytes), created on first start with owner-only permissions. Whoever can read
//! it can drive the node, so a token file readable by others is refused (like the key).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;

use crate::error::HostError;
use crate::identity::{check_private, private_file};

pub const TOKEN_FILE: &str = "control.token";
const TOKEN_BYTES: usize = 32;

pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// Loads the token, creating it (and the directory, 0700) if there is none. Returns
/// whether it was created.
pub fn load_or_create(data_dir: &Path) -> Result<(String, bool), HostError> {
    if token_path(data_dir).exists() {
        return load(data_dir).map(|t| (t, false));
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(data_dir).map_err(|source| HostError::File {
        path: data_dir.to_path_buf(),
        what: "create data directory",
        source,
    })?;
    let mut raw = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut raw);
    let token = hex::encode(raw);
    // Written beside it and renamed: a reader never sees half a token.
    let tmp = data_dir.join(".control.token.tmp");
    let _ = fs::remove_file(&tmp);
    let err = |what, source| HostError::File { path: tmp.clone(), what, source };
    let mut f = private_file(&tmp).map_err(|e| err("create token file", e))?;
    f.write_all(format!("{token}\n").as_bytes()).and_then(|_| f.sync_all()).map_err(|e| err("write token file", e))?;
    let path = token_path(data_dir);
    fs::rename(&tmp, &path).map_err(|source| HostError::File { path, what: "save token file", source })?;
    Ok((token, true))
}

/// Loads an existing token (for clients, and for restarts).
pub fn load(data_dir: &Path) -> Result<String, HostError> {
    let path = token_path(data_dir);
    let text = fs::read_to_string(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            HostError::Config(format!(
                "no control token at {}: is a node running with this data directory? (or set MESHLINK_TOKEN)",
                path.display()
            ))
        } else {
            HostError::File { path: path.clone(), what: "read token file", source }
        }
    })?;
    check_private(&path, "inspect token file", HostError::Config)?;
    let token = text.trim().to_string();
    if !valid(&token) {
        return Err(HostError::Config(format!(
            "{} is not 64 hex characters; delete it and restart the node",
            path.display()
        )));
    }
    Ok(token)
}

/// Refuses a data directory that someone else could write to, as ssh refuses a
/// `~/.ssh` that is: whoever can write there can plant a `control.url` that takes the
/// token, or replace the key. The directory must belong to the caller (or root) and not
/// be writable by group or others. A directory that does not exist passes (nothing is
/// read from it).
pub fn check_data_dir(dir: &Path) -> Result<(), HostError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = match fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(HostError::File { path: dir.to_path_buf(), what: "inspect data directory", source })
            }
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me && meta.uid() != 0 {
            return Err(HostError::Config(format!(
                "data directory {} belongs to uid {}, not to you (uid {me}); use your own directory",
                dir.display(),
                meta.uid()
            )));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o022 != 0 {
            return Err(HostError::Config(format!(
                "data directory {} is writable by other users (mode {mode:04o}); run `chmod 700 {}`",
                dir.display(),
                dir.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn valid(token: &str) -> bool {
    token.len() == 2 * TOKEN_BYTES && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether an `Authorization` header value is `Bearer <token>`. The token comparison
/// takes the same time wherever the first difference is.
pub(crate) fn authorized(token: &str, header: Option<&[u8]>) -> bool {
    let Some(h) = header else { return false };
    let Some(scheme) = h.get(..7) else { return false };
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    let given = h[7..].trim_ascii();
    // `ct_eq` on slices of different lengths is false at once; the length is no secret.
    given.ct_eq(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_must_match_exactly() {
        let t = "ab".repeat(32);
        assert!(authorized(&t, Some(format!("Bearer {t}").as_bytes())));
        assert!(authorized(&t, Some(format!("bearer  {t} ").as_bytes())), "scheme is case-insensitive");
        assert!(!authorized(&t, None));
        assert!(!authorized(&t, Some(t.as_bytes())), "no scheme");
        assert!(!authorized(&t, Some(format!("Basic {t}").as_bytes())));
        assert!(!authorized(&t, Some(format!("Bearer {}", &t[..63]).as_bytes())), "prefix");
        assert!(!authorized(&t, Some(format!("Bearer {t}0").as_bytes())), "longer");
        assert!(!authorized(&t, Some(format!("Bearer {}", "ab".repeat(31) + "ac").as_bytes())));
        assert!(!authorized(&t, Some(b"Bear")));
    }

    #[cfg(unix)]
    #[test]
    fn data_dirs_writable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("meshlink-dirmode-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        assert!(check_data_dir(&d).is_ok(), "a missing directory holds nothing to trust");
        fs::create_dir(&d).unwrap();
        for (mode, ok) in [(0o700, true), (0o755, true), (0o750, true), (0o777, false), (0o770, false), (0o702, false)]
        {
            fs::set_permissions(&d, fs::Permissions::from_mode(mode)).unwrap();
            let r = check_data_dir(&d);
            assert_eq!(r.is_ok(), ok, "{mode:o}: {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().contains("chmod 700"), "{e}");
            }
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn created_once_owner_only_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("meshlink-token-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let (t1, created) = load_or_create(&d).unwrap();
        assert!(created && valid(&t1));
        assert_eq!(fs::metadata(token_path(&d)).unwrap().permissions().mode() & 0o777, 0o600);
        let (t2, created) = load_or_create(&d).unwrap();
        assert_eq!((t2.as_str(), created), (t1.as_str(), false));
        fs::set_permissions(token_path(&d), fs::Permissions::from_mode(0o640)).unwrap();
        assert!(load(&d).unwrap_err().to_string().contains("chmod 600"));
        fs::remove_dir_all(&d).unwrap();
        assert!(load(&d).unwrap_err().to_string().contains("MESHLINK_TOKEN"));
    }
}
