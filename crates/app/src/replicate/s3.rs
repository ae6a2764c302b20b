//! Snapshots in S3: `s3://BUCKET/PREFIX` holds the manifest (`PREFIX/manifest`), the zone
//! objects named by their checksum (`PREFIX/zones/SHA256`) and a heartbeat
//! (`PREFIX/heartbeat`: when Route53 last confirmed the data). Replicas anywhere follow it with
//! nothing but `s3:GetObject`, by conditional GETs.
//!
//! Writers never overwrite blindly: a zone object is put only if absent (`If-None-Match: *`),
//! and the manifest only over the version the writer last read (`If-Match: ETAG`, or
//! `If-None-Match: *` for the first). That conditional write is what lets two syncers run at
//! once: each new manifest is derived from the one it replaces, so serials never go back and
//! equal content keeps one serial (see [`crate::sync::Syncer`]'s commit).

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// A bucket and prefix holding snapshots.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    url: String,
}

/// What reading the manifest found.
#[derive(Debug)]
pub enum ManifestRead {
    /// The version named by the ETag given is still current.
    NotModified,
    /// No manifest yet.
    Missing,
    /// The manifest and its S3 ETag.
    Found(Bytes, String),
}

/// What a conditional write of the manifest did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Written; the new ETag.
    Done(String),
    /// Someone else wrote since the version it was based on.
    Conflict,
}

/// Splits `s3://BUCKET/PREFIX` (the prefix may be empty).
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("'{url}' is not s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        return Err(format!("'{url}': '{bucket}' is not an S3 bucket name"));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn describe<E: std::error::Error + 'static>(e: &SdkError<E>) -> String {
    // The SDK's Display is terse ("service error"); the source chain says what happened.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

impl S3Store {
    /// A store for `url`, with credentials, region and endpoint from the standard AWS chain
    /// (`AWS_ENDPOINT_URL_S3` points it at another S3 implementation, path-style).
    pub async fn new(url: &str) -> Result<Self, String> {
        let (bucket, prefix) = parse_url(url)?;
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(r53dns_route53::fetch::http_client())
            .load()
            .await;
        let mut conf = aws_sdk_s3::config::Builder::from(&base).timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
        if base.endpoint_url().is_some() {
            // A custom endpoint (an S3-compatible store) rarely serves virtual-host buckets.
            conf = conf.force_path_style(true);
        }
        if base.region().is_none() {
            conf = conf.region(aws_config::Region::new("us-east-1"));
        }
        Ok(Self { client: aws_sdk_s3::Client::from_conf(conf.build()), bucket, prefix, url: url.to_owned() })
    }

    /// The `s3://` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_owned() } else { format!("{}/{name}", self.prefix) }
    }

    /// Reads the manifest, unless `etag` is still current.
    pub async fn manifest(&self, etag: Option<&str>, limit: u64) -> Result<ManifestRead, String> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(self.key("manifest"));
        if let Some(e) = etag {
            req = req.if_none_match(e);
        }
        match req.send().await {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_owned();
                let bytes = read_body(out.content_length(), out.body, limit).await?;
                Ok(ManifestRead::Found(bytes, etag))
            }
            Err(e) if status(&e) == Some(304) => Ok(ManifestRead::NotModified),
            Err(e) if status(&e) == Some(404) => Ok(ManifestRead::Missing),
            Err(e) => Err(format!("{}: manifest: {}", self.url, describe(&e))),
        }
    }

    /// Reads a zone object.
    pub async fn object(&self, name: &str, limit: u64) -> Result<Bytes, String> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(&format!("zones/{name}")))
            .send()
            .await
            .map_err(|e| format!("{}: zone object {name}: {}", self.url, describe(&e)))?;
        read_body(out.content_length(), out.body, limit).await
    }

    /// Puts a zone object unless it is there already (objects are named by their checksum,
    /// so one that exists is the same).
    pub async fn put_object_once(&self, name: &str, bytes: Bytes) -> Result<(), String> {
        let r = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(&format!("zones/{name}")))
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if matches!(status(&e), Some(412 | 409)) => Ok(()),
            Err(e) => Err(format!("{}: put zone object {name}: {}", self.url, describe(&e))),
        }
    }

    /// Writes the manifest over the version `base` (an ETag), or only if there is none.
    pub async fn put_manifest(&self, bytes: Bytes, base: Option<&str>) -> Result<Written, String> {
        let mut req = self.client.put_object().bucket(&self.bucket).key(self.key("manifest"));
        req = match base {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.body(ByteStream::from(bytes)).send().await {
            Ok(out) => Ok(Written::Done(out.e_tag().unwrap_or_default().to_owned())),
            // 412: the precondition failed; 409: a concurrent conditional write won.
            Err(e) if matches!(status(&e), Some(412 | 409)) => Ok(Written::Conflict),
            Err(e) => Err(format!("{}: put manifest: {}", self.url, describe(&e))),
        }
    }

    /// Records when Route53 last confirmed the data.
    pub async fn put_heartbeat(&self, confirmed: u64) -> Result<(), String> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key("heartbeat"))
            .body(ByteStream::from(Bytes::from(format!("{confirmed}\n"))))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: put heartbeat: {}", self.url, describe(&e)))
    }

    /// When Route53 last confirmed the data, as the writers recorded it.
    pub async fn heartbeat(&self) -> Result<Option<u64>, String> {
        match self.client.get_object().bucket(&self.bucket).key(self.key("heartbeat")).send().await {
            Ok(out) => {
                let b = read_body(out.content_length(), out.body, 64).await?;
                Ok(std::str::from_utf8(&b).ok().and_then(|t| t.trim().parse().ok()))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(format!("{}: heartbeat: {}", self.url, describe(&e))),
        }
    }

    /// Deletes zone objects no manifest refers to any more.
    pub async fn delete_objects(&self, names: &[String]) {
        for n in names {
            let r = self.client.delete_object().bucket(&self.bucket).key(self.key(&format!("zones/{n}"))).send().await;
            if let Err(e) = r {
                tracing::warn!(object = %n, error = %describe(&e), "cannot delete an old zone object");
            }
        }
    }
}

/// The manifest a writer last read or wrote: what its next write replaces.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    /// S3's ETag of it.
    pub(crate) etag: String,
    /// SHA-256 (hex) of its bytes.
    pub(crate) sha: String,
    pub(crate) manifest: super::Manifest,
}

impl Base {
    pub(crate) fn objects(&self) -> HashSet<String> {
        self.manifest.zones.iter().flat_map(|z| z.objects.iter().map(|o| o.name.clone())).collect()
    }
}

/// A syncer's side of S3: the version its next write replaces, and old zone objects to
/// delete once no recent manifest names them.
#[derive(Debug)]
pub struct Writer {
    pub(crate) store: S3Store,
    limit: u64,
    base: tokio::sync::Mutex<Option<Base>>,
    /// Objects of the manifest replaced by the previous write: deleted after one more write,
    /// so a replica still fetching the version before finds them.
    grace: tokio::sync::Mutex<HashSet<String>>,
}

impl Writer {
    /// A writer to `url`; manifests and objects larger than `limit` are not read back.
    pub async fn new(url: &str, limit: u64) -> Result<Self, String> {
        Ok(Self {
            store: S3Store::new(url).await?,
            limit,
            base: tokio::sync::Mutex::default(),
            grace: tokio::sync::Mutex::default(),
        })
    }

    /// The current manifest in S3 (as last seen; read when not known).
    pub(crate) async fn base(&self) -> Result<Option<Base>, String> {
        let mut held = self.base.lock().await;
        if held.is_none() {
            *held = match self.store.manifest(None, self.limit).await? {
                ManifestRead::Found(bytes, etag) => {
                    let manifest = super::decode_manifest(&bytes).map_err(|e| {
                        format!("the manifest in {} cannot be continued: {e}; fix or remove it", self.store.url())
                    })?;
                    Some(Base { etag, sha: super::hex(&Sha256::digest(&bytes)), manifest })
                }
                ManifestRead::Missing | ManifestRead::NotModified => None,
            };
        }
        Ok(held.clone())
    }

    /// Someone else wrote: read the manifest again next time.
    pub(crate) async fn forget(&self) {
        *self.base.lock().await = None;
    }

    /// `p` was written with ETag `etag`: it is the base from now on; objects superseded two
    /// writes ago are deleted.
    pub(crate) async fn written(&self, etag: String, p: &super::Published) {
        let old = self.base.lock().await.replace(Base { etag, sha: p.etag.clone(), manifest: p.manifest.clone() });
        let old: HashSet<String> = old.map(|b| b.objects()).unwrap_or_default();
        let mut grace = self.grace.lock().await;
        let doomed: Vec<String> =
            grace.iter().filter(|n| !old.contains(*n) && !p.objects.contains_key(*n)).cloned().collect();
        *grace = old;
        if !doomed.is_empty() {
            let store = self.store.clone();
            tokio::spawn(async move { store.delete_objects(&doomed).await });
        }
    }

    /// Records when Route53 last confirmed the data (a failure is only logged: replicas then
    /// report the data as older than it is, never newer).
    pub(crate) async fn heartbeat(&self, confirmed: Option<u64>) {
        if let Some(at) = confirmed
            && let Err(e) = self.store.put_heartbeat(at).await
        {
            tracing::warn!(error = %e, "cannot write the S3 heartbeat");
        }
    }

    /// The snapshot in S3, read whole and checked; it becomes the base.
    pub(crate) async fn load(&self) -> Result<Option<crate::persist::Saved>, String> {
        super::follow::load_s3(&self.store, self.limit).await.map_err(|e| e.to_string())
    }
}

/// Reads a body of at most `limit` bytes, refusing a larger one before reading it.
async fn read_body(len: Option<i64>, body: ByteStream, limit: u64) -> Result<Bytes, String> {
    if let Some(n) = len.and_then(|n| u64::try_from(n).ok())
        && n > limit
    {
        return Err(format!("{n} bytes, over the limit of {limit}"));
    }
    let collected = body.collect().await.map_err(|e| format!("reading the body: {e}"))?;
    let bytes = collected.into_bytes();
    if bytes.len() as u64 > limit {
        return Err(format!("{} bytes, over the limit of {limit}", bytes.len()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_url("s3://dns-snapshots/prod/r53dns").unwrap(),
            ("dns-snapshots".into(), "prod/r53dns".into())
        );
        assert_eq!(parse_url("s3://dns-snapshots").unwrap(), ("dns-snapshots".into(), String::new()));
        assert_eq!(parse_url("s3://dns-snapshots/").unwrap(), ("dns-snapshots".into(), String::new()));
        assert!(parse_url("http://x/y").is_err());
        assert!(parse_url("s3://No_Such/x").is_err());
        assert!(parse_url("s3://ab/x").is_err());
    }
}
