//! How clients of the kinsight server — the agent's server sink and the CLI — trust it over
//! HTTPS (issue 15 item 16): against the CA certificates of a PEM file when one is given
//! (`kinsight.server_ca_file`, `--ca-file`), and only those; otherwise against the roots built
//! into the binary (Mozilla's) and the system's store.

use std::path::Path;

/// A reqwest client builder that verifies the server against `ca_file` when it is set.
pub fn client_builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, String> {
    let mut b = reqwest::Client::builder();
    if let Some(path) = ca_file {
        // A private CA is the whole truth: a public root must not vouch for this server.
        b = b.tls_built_in_root_certs(false);
        for cert in ca_certificates(path)? {
            b = b.add_root_certificate(cert);
        }
    }
    Ok(b)
}

/// The certificates of a PEM file (one or several `BEGIN CERTIFICATE` blocks).
pub fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("CA file {}: {}", path.display(), chain(&e)))?;
    if certs.is_empty() {
        return Err(format!(
            "CA file {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A request error with its causes (reqwest's own message hides them: "error sending
/// request"), and what to check when the server's certificate was not trusted.
pub fn describe(e: &reqwest::Error) -> String {
    let text = chain(e);
    if text.contains("invalid peer certificate") || text.contains("certificate verify failed") {
        format!(
            "{text} (the server's TLS certificate is not trusted: is it signed by the CA in the CA file — kinsight.server_ca_file, --ca-file or KINSIGHT_CA_FILE — and issued for this host name?)"
        )
    } else {
        text
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let c_text = c.to_string();
        // hyper and reqwest repeat their cause's text in their own.
        if !s.contains(&c_text) {
            s.push_str(": ");
            s.push_str(&c_text);
        }
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let e = ca_certificates(&p).unwrap_err();
        assert!(
            e.contains("ca.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = client_builder(Some(&dir.path().join("missing.pem"))).unwrap_err();
        assert!(
            e.contains("cannot read the CA file") && e.contains("missing.pem"),
            "{e}"
        );
    }
}
