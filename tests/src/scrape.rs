//! A minimal HTTP/1.1 client and a Prometheus text-format reader, enough to
//! scrape legatod's metrics endpoint in tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP response: status code, headers (names lowercased) and body.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names in lowercase.
    pub headers: HashMap<String, String>,
    /// Body as text.
    pub body: String,
}

/// `GET path` on `addr` with `Connection: close`; the whole exchange must
/// finish within 10 s.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<HttpResponse> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw)
    })
    .await
    .map_err(|_| anyhow!("GET {path} on {addr} took over 10 s"))?
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers in {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        bail!("chunked responses are not supported by this test client");
    }
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// A sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape of the metrics endpoint: samples by name and labels.
#[derive(Debug, Clone)]
pub struct Scrape {
    samples: Vec<Sample>,
    /// The exposition text as served.
    pub text: String,
}

impl Scrape {
    /// Scrapes `http://addr/metrics`, checking status and content type.
    pub async fn fetch(addr: SocketAddr) -> Result<Self> {
        let response = http_get(addr, "/metrics").await?;
        if response.status != 200 {
            bail!("GET /metrics: {} {}", response.status, response.body);
        }
        let content_type = response
            .headers
            .get("content-type")
            .cloned()
            .unwrap_or_default();
        if !content_type.starts_with("text/plain; version=0.0.4") {
            bail!("unexpected content type {content_type:?}");
        }
        Self::parse(&response.body)
    }

    /// Parses the Prometheus text format (version 0.0.4).
    pub fn parse(text: &str) -> Result<Self> {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .ok_or_else(|| anyhow!("bad sample line {line:?}"))?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("bad value in {line:?}"))?;
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Vec::new()),
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix('}')
                        .ok_or_else(|| anyhow!("bad labels in {line:?}"))?;
                    (name.to_owned(), parse_labels(inner)?)
                }
            };
            samples.push((name, labels, value));
        }
        Ok(Self {
            samples,
            text: text.to_owned(),
        })
    }

    /// The value of the sample `name` whose labels include all of
    /// `labels`, summed when several match; 0 when none does (Prometheus
    /// families show a label combination only once it was seen).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

/// Parses `a="x",b="y"` (values without escaped quotes or commas).
fn parse_labels(inner: &str) -> Result<Vec<(String, String)>> {
    let mut labels = Vec::new();
    for pair in inner.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("bad label {pair:?}"))?;
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| anyhow!("unquoted label value {pair:?}"))?;
        labels.push((k.to_owned(), v.to_owned()));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_and_sums_matches() {
        let s = Scrape::parse(
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"p\"} 2\nx_total{a=\"2\",b=\"p\"} 3\ny 1.5\n",
        )
        .unwrap();
        assert_eq!(s.value("x_total", &[("b", "p")]), 5.0);
        assert_eq!(s.value("x_total", &[("a", "2")]), 3.0);
        assert_eq!(s.value("y", &[]), 1.5);
        assert_eq!(s.value("z", &[]), 0.0);
        assert!(s.has("y") && !s.has("z"));
    }
}
