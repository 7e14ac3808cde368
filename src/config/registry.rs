//! The schema registry's settings: where it is, how hookbridge trusts it (the system's roots plus
//! an optional private CA), how it proves itself (an optional client certificate) and how it
//! authenticates (HTTP basic, or a bearer token read from a file). Shared by the configuration
//! and `hookbridge schemas check`'s flags, so both accept and refuse the same things.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Secret, read_secret_file};

#[derive(Clone, Debug)]
pub struct RegistryConfig {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Where `password` was read from (shown by `config check`; the password never is).
    pub password_file: Option<PathBuf>,
    /// A file holding a bearer token, re-read for every request so a refreshed token is used.
    pub bearer_token_file: Option<PathBuf>,
    pub tls: RegistryTls,
    /// Register schemas at start-up; when false, they must already be registered.
    pub auto_register: bool,
}

/// TLS towards the registry, beyond the system's trusted roots.
#[derive(Clone, Default)]
pub struct RegistryTls {
    /// A PEM bundle of further trusted CA certificates (a company CA).
    pub ca_file: Option<PathBuf>,
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate chain and its private key, for registries that require mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// The certificate chain and the key in one PEM text, as the HTTP client takes them.
    pub client_identity_pem: Option<Secret>,
}

impl fmt::Debug for RegistryTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryTls")
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .finish_non_exhaustive()
    }
}

/// The registry settings as given, before checking.
#[derive(Default)]
pub struct RegistrySettings<'a> {
    pub url: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password_file: Option<&'a Path>,
    pub bearer_token_file: Option<&'a Path>,
    pub ca_file: Option<&'a Path>,
    pub client_cert_file: Option<&'a Path>,
    pub client_key_file: Option<&'a Path>,
    pub auto_register: bool,
}

/// `name (HOOKBRIDGE_NAME)`, how settings are named in messages.
fn setting(name: &str) -> String {
    format!("{name} (HOOKBRIDGE_{})", name.to_ascii_uppercase())
}

fn read_bytes(name: &str, path: &Path, errors: &mut Vec<String>) -> Option<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| {
            errors.push(format!(
                "{}: cannot read {}: {e}",
                setting(name),
                path.display()
            ))
        })
        .ok()
}

/// The first line of a token file, which must hold one.
pub fn read_bearer_token(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(format!("{} holds no token", path.display()));
    }
    Ok(Secret::new(token))
}

impl RegistrySettings<'_> {
    /// Checks every setting, reporting each problem with the setting's name.
    pub fn check(&self, errors: &mut Vec<String>) -> Option<RegistryConfig> {
        let url = self.check_url(errors);
        let password = self.password_file.and_then(|p| {
            read_secret_file(&setting("schema_registry_password_file"), p, errors).map(Secret::new)
        });
        if self.password_file.is_some() != self.username.is_some() {
            errors.push(
                "schema_registry_username and schema_registry_password_file: set both or neither"
                    .into(),
            );
        }
        if let Some(path) = self.bearer_token_file {
            if self.username.is_some() {
                errors.push(format!(
                    "{}: use either a bearer token or schema_registry_username and \
                     schema_registry_password_file, not both",
                    setting("schema_registry_bearer_token_file")
                ));
            }
            if let Err(why) = read_bearer_token(path) {
                errors.push(format!(
                    "{}: {why}",
                    setting("schema_registry_bearer_token_file")
                ));
            }
        }
        let tls = self.check_tls(errors);
        if url.as_deref().is_some_and(|u| u.starts_with("http://"))
            && (tls.ca_file.is_some() || tls.client_cert_file.is_some())
        {
            errors.push(format!(
                "{}: TLS settings are given but the URL is http://; use https://",
                setting("schema_registry_url")
            ));
        }
        Some(RegistryConfig {
            url: url?,
            username: self.username.map(str::to_owned),
            password,
            password_file: self.password_file.map(Path::to_path_buf),
            bearer_token_file: self.bearer_token_file.map(Path::to_path_buf),
            tls,
            auto_register: self.auto_register,
        })
    }

    fn check_url(&self, errors: &mut Vec<String>) -> Option<String> {
        let name = setting("schema_registry_url");
        match self.url.map(str::trim) {
            Some(u)
                if (u.starts_with("http://") || u.starts_with("https://"))
                    && u.split("://").nth(1).is_some_and(|rest| {
                        rest.split('/')
                            .next()
                            .is_some_and(|host| host.contains('@'))
                    }) =>
            {
                errors.push(format!("{name}: credentials in the URL would end up in logs; use schema_registry_username and schema_registry_password_file"));
                None
            }
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Some(u.trim_end_matches('/').to_owned())
            }
            Some(u) if !u.is_empty() => {
                // Not echoed: a malformed URL may still carry credentials.
                errors.push(format!("{name}: must start with http:// or https://"));
                None
            }
            _ => {
                errors.push(format!(
                    "{name}: required, e.g. \"http://registry:8080/apis/ccompat/v7\""
                ));
                None
            }
        }
    }

    fn check_tls(&self, errors: &mut Vec<String>) -> RegistryTls {
        let ca_pem = self.ca_file.and_then(|path| {
            let pem = read_bytes("schema_registry_ca_file", path, errors)?;
            match reqwest::Certificate::from_pem_bundle(&pem) {
                Ok(certs) if !certs.is_empty() => Some(pem),
                Ok(_) => {
                    errors.push(format!(
                        "{}: {} holds no PEM certificate",
                        setting("schema_registry_ca_file"),
                        path.display()
                    ));
                    None
                }
                Err(e) => {
                    errors.push(format!(
                        "{}: {}: {e}",
                        setting("schema_registry_ca_file"),
                        path.display()
                    ));
                    None
                }
            }
        });
        let identity = match (self.client_cert_file, self.client_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let cert_pem = read_bytes("schema_registry_client_cert_file", cert, errors);
                let key_pem = read_bytes("schema_registry_client_key_file", key, errors);
                cert_pem.zip(key_pem).and_then(|(cert_pem, key_pem)| {
                    identity_pem(&cert_pem, &key_pem)
                        .map_err(|why| {
                            errors.push(format!(
                                "schema_registry_client_cert_file and \
                                 schema_registry_client_key_file: {why}"
                            ))
                        })
                        .ok()
                })
            }
            _ => {
                errors.push(
                    "schema_registry_client_cert_file and schema_registry_client_key_file: \
                     set both or neither"
                        .into(),
                );
                None
            }
        };
        RegistryTls {
            ca_file: self.ca_file.map(Path::to_path_buf),
            ca_pem,
            client_cert_file: self.client_cert_file.map(Path::to_path_buf),
            client_key_file: self.client_key_file.map(Path::to_path_buf),
            client_identity_pem: identity,
        }
    }
}

/// The chain and the key as one PEM text, checked the way the HTTP client will read it.
fn identity_pem(cert: &[u8], key: &[u8]) -> Result<Secret, String> {
    let (Ok(cert), Ok(key)) = (std::str::from_utf8(cert), std::str::from_utf8(key)) else {
        return Err("not PEM text".into());
    };
    if !cert.contains("-----BEGIN CERTIFICATE-----") {
        return Err("the certificate file holds no PEM certificate".into());
    }
    if !key.contains("PRIVATE KEY-----") {
        return Err("the key file holds no PEM private key".into());
    }
    let pem = format!("{}\n{}\n", key.trim_end(), cert.trim_end());
    reqwest::Identity::from_pem(pem.as_bytes())
        .map_err(|e| format!("not a usable key pair: {e}"))?;
    Ok(Secret::new(pem))
}
