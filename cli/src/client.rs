//! The HTTP client every online subcommand shares: endpoint, TLS trust, JSON errors.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

/// Where the service is and how to trust it.
#[derive(Debug, Clone, clap::Args)]
pub struct EndpointArgs {
    /// Base URL of the parent proxy, e.g. https://approvals.example.com or http://127.0.0.1:8443.
    #[arg(long, env = "GOVCTL_ENDPOINT")]
    pub endpoint: String,
    /// PEM file with the CA certificate to trust for the proxy's TLS certificate, in addition
    /// to the system's roots (for self-signed deployments).
    #[arg(long, env = "GOVCTL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// A client bound to one endpoint.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
}

impl ApiClient {
    pub fn new(args: &EndpointArgs) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(args.timeout));
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading CA certificate {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("parsing CA certificate {}", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let base = args.endpoint.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            bail!(
                "endpoint {base:?} must start with https:// (or http:// for a loopback test stack)"
            );
        }
        Ok(Self {
            http: builder.build()?,
            base,
        })
    }

    /// GETs `path` and returns the JSON body, or fails with the service's error.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Self::json_or_error(response).await
    }

    /// GETs `path` like [`ApiClient::get_json`], with what the proxy says proves the answer
    /// (the `enclave-answer-proof` header of the unsigned routes).
    pub async fn get_json_and_proof(
        &self,
        path: &str,
    ) -> anyhow::Result<(serde_json::Value, Option<String>)> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let proof = response
            .headers()
            .get("enclave-answer-proof")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok((Self::json_or_error(response).await?, proof))
    }

    /// POSTs `body` with `content_type` and returns the status and the JSON body, error
    /// bodies included (the caller reads the enclave's error codes).
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let response = self.post(self.url(path)?, content_type, body).await?;
        let status = response.status();
        let body = response
            .json()
            .await
            .with_context(|| format!("the service answered {status} without a JSON body"))?;
        Ok((status, body))
    }

    /// The address of `path` on the endpoint, parsed once for callers that send many requests.
    pub fn url(&self, path: &str) -> anyhow::Result<reqwest::Url> {
        let url = format!("{}{path}", self.base);
        reqwest::Url::parse(&url).with_context(|| format!("endpoint address {url}"))
    }

    /// POSTs a signed request's envelope (CBOR) to `url`; the status and the body's bytes,
    /// left unparsed (the load generator reads only what it needs).
    pub async fn post_cbor_raw(
        &self,
        url: &reqwest::Url,
        body: Vec<u8>,
    ) -> anyhow::Result<(reqwest::StatusCode, Vec<u8>)> {
        let response = self.post(url.clone(), "application/cbor", body).await?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer to POST {url}"))?;
        Ok((status, body.into()))
    }

    async fn post(
        &self,
        url: reqwest::Url,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<reqwest::Response> {
        let context = format!("POST {url}");
        self.http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .context(context)
    }

    /// POSTs a signed request's envelope (CBOR) to `/v1/requests`: the status, the
    /// enclave's answer signature (header), and the body's bytes as received.
    pub async fn post_signed(
        &self,
        body: Vec<u8>,
    ) -> anyhow::Result<(reqwest::StatusCode, Option<String>, Vec<u8>)> {
        let url = self.url("/v1/requests")?;
        let response = self.post(url.clone(), "application/cbor", body).await?;
        let status = response.status();
        let signature = response
            .headers()
            .get(ea_audit::answer::ANSWER_HEADER)
            .map(|value| {
                value
                    .to_str()
                    .map(str::to_owned)
                    .context("the answer signature header is not text")
            })
            .transpose()?;
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer to POST {url}"))?;
        Ok((status, signature, body.into()))
    }

    /// POSTs a signed request's envelope (CBOR).
    pub async fn post_cbor(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        self.post_bytes(path, "application/cbor", body).await
    }

    /// POSTs a JSON body to `path` and returns the JSON answer, or fails with the service's error.
    #[allow(dead_code, reason = "kept for JSON routes")]
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        Self::json_or_error(response).await
    }

    async fn json_or_error(response: reqwest::Response) -> anyhow::Result<serde_json::Value> {
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .with_context(|| format!("the service answered {status} without a JSON body"))?;
        if status.is_success() {
            return Ok(body);
        }
        let code = body
            .pointer("/error/code")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown");
        let message = body
            .pointer("/error/message")
            .and_then(|v| v.as_str())
            .unwrap_or("no message");
        bail!("{status}: {code}: {message}")
    }
}
