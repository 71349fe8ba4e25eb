//! HTTPS to a remote LAPI (cargo feature `tls`): rustls with the pure-Rust RustCrypto provider,
//! trusting only the CA in `lapi-ca` (a LAPI's certificate is usually signed by the admin's own
//! CA, not a public one, so no built-in root store: it would cost far more than it gives).

use std::io;
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// The client's TLS configuration: the trusted CA, the protocol versions, the provider.
#[derive(Clone)]
pub struct Tls(Arc<ClientConfig>);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Trusts the certificates in the PEM file `ca` (and nothing else).
    pub fn with_ca(ca: &Path) -> Result<Tls, String> {
        let mut roots = RootCertStore::empty();
        let certs =
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{}: no certificate", ca.display()));
        }
        let config = ClientConfig::builder_with_provider(Arc::new(rustls_rustcrypto::provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls(Arc::new(config)))
    }

    /// A TLS session over `tcp`, the server's certificate checked against the address.
    pub fn wrap(
        &self,
        host: IpAddr,
        tcp: TcpStream,
    ) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
        let conn = ClientConnection::new(Arc::clone(&self.0), ServerName::IpAddress(host.into()))
            .map_err(io::Error::other)?;
        Ok(StreamOwned::new(conn, tcp))
    }
}
