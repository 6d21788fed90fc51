//! The API token: read from its file, or created there with a random value
//! when the file is missing, and compared in constant time.

use std::{io::Read, path::Path};

use crate::config::Secret;

/// Reads the token file, creating it (mode 0600) with 32 random bytes in
/// hex when it does not exist. Returns whether it was created.
pub fn load_or_create(path: &Path) -> Result<(Secret, bool), String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            // As ssh does with keys: a token others can read is no secret.
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(format!(
                    "the API token file {} can be read by group or others (mode {mode:04o}): run chmod 600 on it",
                    path.display()
                ));
            }
            let token = text.trim().to_string();
            if token.len() < 16 {
                return Err(format!(
                    "the API token in {} is shorter than 16 characters",
                    path.display()
                ));
            }
            Ok((Secret::new(token), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            write_private(path, &format!("{token}\n"))
                .map_err(|e| format!("cannot write the API token file {}: {e}", path.display()))?;
            Ok((Secret::new(token), true))
        }
        Err(e) => Err(format!(
            "cannot read the API token file {}: {e}",
            path.display()
        )),
    }
}

pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Whether `given` equals `token`, in time that does not depend on where
/// they differ.
pub fn matches(token: &Secret, given: &str) -> bool {
    let a = token.expose().as_bytes();
    let b = given.as_bytes();
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// The token in an `Authorization: Bearer <token>` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    header?.strip_prefix("Bearer ").map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let token = Secret::new("0123456789abcdef".into());
        assert!(matches(&token, "0123456789abcdef"));
        assert!(!matches(&token, "0123456789abcdeF"));
        assert!(!matches(&token, "0123456789abcdef0"));
        assert!(!matches(&token, ""));
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
    }

    #[test]
    fn a_missing_token_file_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/api.token");
        let (token, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(token.expose().len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again, token);
        // Readable by others: refused, and the token is not in the error.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains(token.expose()));
    }
}
