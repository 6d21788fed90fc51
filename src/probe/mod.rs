//! Health probes: one http(s), tcp or mysql check run once, with a timeout,
//! reporting success or a short reason for failure. The scheduler that runs
//! them every interval is in `control`.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Once,
    time::{Duration, Instant},
};

use crate::{
    config::{Check, CheckKind, HttpCheck},
    db::DbTarget,
};

/// How much of a response body is read to look for `body_contains`.
const MAX_BODY: usize = 64 * 1024;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    /// Why it failed, or what it saw ("HTTP 200").
    pub detail: String,
    pub latency: Duration,
}

/// HTTP clients by (TLS verified, CA file, address override).
#[derive(Default)]
pub struct Clients(HashMap<ClientKey, reqwest::Client>);

type ClientKey = (bool, Option<PathBuf>, Option<(String, SocketAddr)>);

fn build_client(
    http: &HttpCheck,
    resolve: Option<(String, SocketAddr)>,
) -> Result<reqwest::Client, String> {
    let mut builder = http_client()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .tls_danger_accept_invalid_certs(!http.tls_verify);
    if let Some(file) = &http.ca_file {
        builder = builder.tls_certs_merge(read_ca(file)?);
    }
    if let Some((host, addr)) = resolve {
        builder = builder.resolve(&host, addr);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The certificates of a PEM file (one or a bundle).
pub fn read_ca(file: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} holds no PEM certificate: {e}", file.display()))
}

/// A check ready to run: clients built, secrets in place.
pub struct Prober {
    kind: Kind,
    timeout: Duration,
}

enum Kind {
    Http {
        client: reqwest::Client,
        check: HttpCheck,
        url: reqwest::Url,
    },
    Tcp(SocketAddr),
    Mysql(DbTarget),
}

/// A reqwest client builder, with rustls's process-wide crypto provider
/// (ring, which keeps the build free of C) installed first: every HTTP
/// client in the program starts here.
pub fn http_client() -> reqwest::ClientBuilder {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means another provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    // A redirect could lead a check, a flag call or a webhook anywhere,
    // with what the request carries: none is followed.
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// A URL as logs, errors and the status show it: without a user name,
/// password, query or fragment, which may carry credentials.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// Only a URL's scheme, host and port: for URLs whose path is the
/// credential (a chat webhook's).
pub fn url_origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => "(not a URL)".into(),
    }
}

impl Prober {
    pub fn new(check: &Check) -> Result<Self, String> {
        Self::with_clients(check, &mut Clients::default())
    }

    /// Like `new`, sharing one HTTP client among the checks that need the
    /// same TLS settings and address override: a client holds TLS roots
    /// and a connection pool, too much to keep one per check.
    pub fn with_clients(check: &Check, clients: &mut Clients) -> Result<Self, String> {
        let kind = match &check.kind {
            CheckKind::Http(http) => {
                let mut url = reqwest::Url::parse(&http.url)
                    .map_err(|e| format!("check {}: {e}", check.name))?;
                // With a Host name and an address in the URL, connect to the
                // address but speak to the name: Host header and TLS SNI.
                let mut resolve = None;
                if let Some(host) = &http.host
                    && let Some(ip) = url
                        .host_str()
                        .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
                {
                    let port = url.port_or_known_default().unwrap_or(80);
                    resolve = Some((host.clone(), SocketAddr::new(ip, port)));
                    url.set_host(Some(host))
                        .map_err(|e| format!("check {}: host `{host}`: {e}", check.name))?;
                }
                let key = (http.tls_verify, http.ca_file.clone(), resolve.clone());
                let client = match clients.0.get(&key) {
                    Some(client) => client.clone(),
                    None => {
                        let client = build_client(http, resolve)
                            .map_err(|e| format!("check {}: {e}", check.name))?;
                        clients.0.insert(key, client.clone());
                        client
                    }
                };
                Kind::Http {
                    client,
                    check: http.clone(),
                    url,
                }
            }
            CheckKind::Tcp { address } => Kind::Tcp(*address),
            CheckKind::Mysql(mysql) => Kind::Mysql(mysql.clone()),
        };
        Ok(Self {
            kind,
            timeout: check.timeout,
        })
    }

    /// Runs the probe once; never takes much longer than the timeout.
    pub async fn run(&self) -> ProbeResult {
        let start = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.attempt()).await;
        let latency = start.elapsed();
        let (ok, detail) = match outcome {
            Ok(Ok(seen)) => (true, seen),
            Ok(Err(why)) => (false, why),
            Err(_) => (
                false,
                format!(
                    "timed out after {}",
                    crate::config::duration::show(self.timeout)
                ),
            ),
        };
        ProbeResult {
            ok,
            detail,
            latency,
        }
    }

    async fn attempt(&self) -> Result<String, String> {
        match &self.kind {
            Kind::Http { client, check, url } => http(client, check, url).await,
            Kind::Tcp(address) => tokio::net::TcpStream::connect(address)
                .await
                .map(|_| "connected".to_string())
                .map_err(|e| format!("connect to {address}: {e}")),
            Kind::Mysql(check) => mysql(check).await,
        }
    }
}

/// One HTTP exchange; `Prober::run` bounds its time.
async fn http(
    client: &reqwest::Client,
    check: &HttpCheck,
    url: &reqwest::Url,
) -> Result<String, String> {
    let method = reqwest::Method::from_bytes(check.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = client
        .request(method, url.clone())
        .send()
        .await
        .map_err(describe_reqwest)?;
    let status = response.status().as_u16();
    if !check.expect_status.contains(&status) {
        return Err(format!("HTTP {status}, expected {:?}", check.expect_status));
    }
    if let Some(needle) = &check.body_contains {
        let mut body = Vec::new();
        while body.len() < MAX_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return Err(describe_reqwest(e)),
            }
        }
        if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
            return Err(format!("HTTP {status} but the body lacks {needle:?}"));
        }
    }
    Ok(format!("HTTP {status}"))
}

/// reqwest's error with its causes, which say what actually went wrong,
/// without the URL (which may carry credentials).
pub fn describe_reqwest(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn mysql(check: &DbTarget) -> Result<String, String> {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::new(check.opts()).await.map_err(|e| {
        format!(
            "mysql connect to {}: {}",
            check.address,
            crate::db::describe(&e)
        )
    })?;
    let one: Option<u8> = conn
        .query_first("SELECT 1")
        .await
        .map_err(|e| format!("mysql SELECT 1: {e}"))?;
    let _ = conn.disconnect().await;
    match one {
        Some(1) => Ok("SELECT 1 answered".into()),
        other => Err(format!("SELECT 1 returned {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_credentials() {
        assert_eq!(
            shown_url("https://ops:s3cret@app.example.com:8443/health?token=abc#x"),
            "https://app.example.com:8443/health"
        );
        assert_eq!(
            url_origin("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com"
        );
        assert_eq!(shown_url("not a url"), "(not a URL)");
    }
}
