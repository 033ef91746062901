//! Server TLS configuration: the administrator's certificate, or a self-signed one
//! generated on first start and reused afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Certificate generation or rustls configuration failed.
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// Where the certificate came from, for the startup banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Files named in the configuration.
    Configured(PathBuf),
    /// A self-signed certificate generated now.
    Generated(PathBuf),
    /// A self-signed certificate generated on an earlier start.
    Reused(PathBuf),
}

/// Builds the server configuration. With `cert`/`key` given, uses them; otherwise
/// uses (creating on first start) a self-signed certificate in `dir` whose names are
/// `hostname`, `localhost` and 127.0.0.1/::1, so strict clients can be pointed at it.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    dir: &Path,
    hostname: &str,
) -> Result<(Arc<ServerConfig>, CertSource), TlsError> {
    let (cert_path, key_path, source) = match (cert, key) {
        (Some(c), Some(k)) => (
            c.to_path_buf(),
            k.to_path_buf(),
            CertSource::Configured(c.to_path_buf()),
        ),
        _ => {
            let c = dir.join("cert.pem");
            let k = dir.join("key.pem");
            if c.exists() && k.exists() {
                (c.clone(), k, CertSource::Reused(c))
            } else {
                generate(dir, &c, &k, hostname)?;
                (c.clone(), k, CertSource::Generated(c))
            }
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| pem_error(&cert_path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(&cert_path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path,
            message: "no certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| pem_error(&key_path, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Setup(format!("{}: {e}", cert_path.display())))?;
    Ok((Arc::new(config), source))
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> TlsError {
    match e {
        rustls_pki_types::pem::Error::Io(source) => TlsError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

fn generate(dir: &Path, cert: &Path, key: &Path, hostname: &str) -> Result<(), TlsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut names = vec![
        hostname.to_string(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    names.dedup();
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::Setup(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let key_pair = rcgen::KeyPair::generate().map_err(|e| TlsError::Setup(e.to_string()))?;
    let cert_pem = params
        .self_signed(&key_pair)
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .pem();
    write_private(key, key_pair.serialize_pem().as_bytes()).map_err(io(key))?;
    std::fs::write(cert, cert_pem).map_err(io(cert))?;
    Ok(())
}

/// Writes a file readable only by its owner (the private key).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let (_, first) = server_config(None, None, dir.path(), "mail.example.com").unwrap();
        assert!(matches!(first, CertSource::Generated(_)));
        let pem = std::fs::read(dir.path().join("cert.pem")).unwrap();
        let (_, second) = server_config(None, None, dir.path(), "mail.example.com").unwrap();
        assert!(matches!(second, CertSource::Reused(_)));
        assert_eq!(pem, std::fs::read(dir.path().join("cert.pem")).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is private");
        }
    }

    #[test]
    fn configured_files_are_used_and_bad_ones_reported() {
        let dir = tempfile::tempdir().unwrap();
        server_config(None, None, dir.path(), "h.example").unwrap();
        let c = dir.path().join("cert.pem");
        let k = dir.path().join("key.pem");
        let (_, src) = server_config(Some(&c), Some(&k), Path::new("/nonexistent"), "x").unwrap();
        assert_eq!(src, CertSource::Configured(c.clone()));
        let err = server_config(Some(&k), Some(&k), Path::new("/x"), "x").unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = server_config(Some(&missing), Some(&k), Path::new("/x"), "x").unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
