//! Certificates for tests, made with the openssl command line: a CA of
//! our own and certificates it signs, in a test's folder.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// Runs `openssl` in `dir`; panics when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is not installed: run tests/run.sh");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A certificate authority: `NAME.pem` and `NAME.key` in its folder.
pub struct Ca {
    dir: PathBuf,
    name: String,
    pub pem: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Self {
        let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
        let subject = format!("/CN=geofailover test CA {name}");
        openssl(
            dir,
            &[
                &["req", "-x509"][..],
                &EC,
                &[
                    "-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subject,
                ],
            ]
            .concat(),
        );
        Self {
            dir: dir.to_path_buf(),
            name: name.into(),
            pem: dir.join(pem),
        }
    }

    /// A certificate for `subject_alt_names` (such as
    /// `DNS:site.test,IP:127.0.0.1`) signed by this CA: `NAME.pem` and
    /// `NAME.key`, returned in that order.
    pub fn issue(&self, name: &str, subject_alt_names: &str) -> (PathBuf, PathBuf) {
        let (pem, key, csr) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
        );
        let ext = format!("{name}.ext");
        let subject = format!("/CN={name}");
        openssl(
            &self.dir,
            &[
                &["req"][..],
                &EC,
                &["-keyout", &key, "-out", &csr, "-subj", &subject],
            ]
            .concat(),
        );
        std::fs::write(
            self.dir.join(&ext),
            format!("subjectAltName={subject_alt_names}\n"),
        )
        .expect("write extensions");
        let (ca_pem, ca_key) = (format!("{}.pem", self.name), format!("{}.key", self.name));
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &ext,
            ],
        );
        (self.dir.join(pem), self.dir.join(key))
    }
}
