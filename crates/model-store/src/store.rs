//! The store: the container's blobs through the Azure SDK's blob client. Reads are plain; every
//! write is conditional (a model blob only if it does not exist, the pointer only if its ETag is
//! still the one read), so two operators cannot clobber each other and a retried upload is one
//! blob.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Etag, ExponentialRetryOptions, RequestContent, RetryOptions, StatusCode, Url};
use azure_identity::{DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_storage_blob::models::{
    BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders, BlobClientUploadOptions,
    BlobContainerClientCreateOptions,
};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::pointer::{ModelRef, Pointer, PointerError, MAX_POINTER_BYTES, POINTER_BLOB};
use crate::settings::{StoreAuth, StoreSettings};

/// The largest model file the store hands out (the cap of `/api/reload`).
pub const MAX_MODEL_BYTES: usize = 256 << 20;
/// How long an account SAS for Azurite lives; a client is made per use, well within it.
const SAS_LIFETIME: time::Duration = time::Duration::hours(1);

/// Why a store operation failed, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 404: the container or blob is not there.
    #[error("{what} not found in {target}")]
    NotFound { what: String, target: String },
    /// 409/412: a conditional write lost (someone else changed the pointer, or the blob exists).
    #[error("{what} changed in {target} since it was read")]
    Conflict { what: String, target: String },
    /// The container itself is missing (deleted, misnamed, or the URL names a path): not the
    /// same as "no pointer yet", which would send every instance back to its packaged model.
    #[error("the container is missing: {target} (Bicep creates it; locally the first `sensor-anomaly model promote` does)")]
    ContainerMissing { target: String },
    /// 401/403: the identity lacks the role, or the key is wrong.
    #[error("not authorized on {target}: {detail} (the identity needs Storage Blob Data Reader to follow, Contributor to promote)")]
    Unauthorized { target: String, detail: String },
    /// No token could be had (no `az login`, the managed identity endpoint did not answer): may
    /// succeed later, unlike a 401/403.
    #[error("not authorized on {target}: no token: {detail} (in Azure the app's managed identity needs Storage Blob Data Reader to follow; an operator runs `az login` and needs Contributor to promote)")]
    NoToken { target: String, detail: Redacted },
    /// Unreachable, throttled, 5xx, timed out: may succeed later.
    #[error("{target} is unavailable: {source}")]
    Unavailable {
        target: String,
        #[source]
        source: Redacted,
    },
    /// The blob is there but is not what the pointer promised.
    #[error("{blob} in {target} {problem}")]
    Corrupt { blob: String, target: String, problem: String },
    #[error(transparent)]
    Pointer(#[from] PointerError),
    #[error("cannot set up the blob client for {target}: {source}")]
    Client {
        target: String,
        #[source]
        source: Redacted,
    },
}

impl StoreError {
    /// Whether retrying the same operation later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::NoToken { .. })
    }
}

/// An SDK error's whole text with SAS signatures cut out. The transport's errors name the
/// request URL, query included, and with an account key that query is a signed SAS: kept as
/// the source it would reach `{error:#}` and the logs.
#[derive(Debug, Clone)]
pub struct Redacted(String);

impl Redacted {
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(inner) = source {
            let more = inner.to_string();
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            source = inner.source();
        }
        // One line: each error becomes one log line, and a credential chain spans several.
        let text: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        Redacted(redact_signatures(&text.join("; ")))
    }
}

impl std::fmt::Display for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Redacted {}

/// `sig=<anything up to a delimiter>` becomes `sig=REDACTED`, wherever it appears.
pub fn redact_signatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.to_ascii_lowercase().find("sig=") {
        let value = at + "sig=".len();
        out.push_str(&rest[..value]);
        out.push_str("REDACTED");
        let end = rest[value..]
            .find(|c: char| c == '&' || c == ')' || c == '"' || c == '\'' || c.is_whitespace())
            .map_or(rest.len(), |n| value + n);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A pointer as read, with the ETag a change must be conditional on.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub pointer: Pointer,
    pub etag: Etag,
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    domain::wire::hex(&Sha256::digest(bytes))
}

pub struct ModelStore {
    settings: StoreSettings,
    credential: Option<Arc<dyn TokenCredential>>,
    retry: RetryOptions,
}

impl std::fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelStore").field("container", &self.target()).finish_non_exhaustive()
    }
}

/// Who is asking: the handler follows the pointer with the app's managed identity; the CLI
/// (an operator's laptop or a pipeline) uses the developer tools' login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Handler,
    Operator,
}

impl ModelStore {
    /// A store client for `settings`. No request is made until an operation runs.
    pub fn new(settings: StoreSettings, caller: Caller) -> Result<Self, StoreError> {
        let target = settings.container_url().to_string();
        let client_error = |source: azure_core::Error| StoreError::Client { target: target.clone(), source: Redacted::of(&source) };
        let credential: Option<Arc<dyn TokenCredential>> = match (&settings.auth, caller) {
            (StoreAuth::SharedKey { .. }, _) => None,
            (StoreAuth::Identity { client_id }, Caller::Handler) => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                Some(ManagedIdentityCredential::new(Some(options)).map_err(client_error)?)
            }
            (StoreAuth::Identity { .. }, Caller::Operator) => {
                Some(DeveloperToolsCredential::new(None).map_err(client_error)?)
            }
        };
        // A few quick retries: the handler polls again anyway, and the CLI says what failed.
        let retry = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: Duration::from_millis(200).try_into().unwrap_or_default(),
            max_retries: 3,
            max_total_elapsed: Duration::from_secs(10).try_into().unwrap_or_default(),
            max_delay: Duration::from_secs(2).try_into().unwrap_or_default(),
        });
        Ok(ModelStore { settings, credential, retry })
    }

    /// The container's URL, for messages (no credentials in it).
    pub fn target(&self) -> String {
        self.settings.container_url().to_string()
    }

    fn container(&self) -> Result<BlobContainerClient, StoreError> {
        let mut url: Url = self.settings.container_url();
        if let StoreAuth::SharedKey { account, key } = &self.settings.auth {
            let expiry = time::OffsetDateTime::now_utc() + SAS_LIFETIME;
            let sas = crate::sas::account_sas(account, key.expose(), expiry).map_err(|e| StoreError::Client {
                target: self.target(),
                source: Redacted(e.to_string()),
            })?;
            url.set_query(Some(&sas));
        }
        let options = BlobContainerClientOptions {
            client_options: ClientOptions {
                retry: self.retry.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        BlobContainerClient::new(url, self.credential.clone(), Some(options)).map_err(|source| StoreError::Client {
            target: self.target(),
            source: Redacted::of(&source),
        })
    }

    fn blob(&self, name: &str) -> Result<BlobClient, StoreError> {
        Ok(self.container()?.blob_client(name))
    }

    fn classify(&self, what: &str, error: azure_core::Error) -> StoreError {
        use azure_core::error::ErrorKind;
        let target = self.target();
        let code = match error.kind() {
            ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
            _ => None,
        };
        match error.http_status() {
            Some(StatusCode::NotFound) if code == Some("ContainerNotFound") => StoreError::ContainerMissing { target },
            Some(StatusCode::NotFound) => StoreError::NotFound { what: what.into(), target },
            Some(StatusCode::Conflict) | Some(StatusCode::PreconditionFailed) => {
                StoreError::Conflict { what: what.into(), target }
            }
            Some(StatusCode::Unauthorized) | Some(StatusCode::Forbidden) => StoreError::Unauthorized {
                target,
                detail: Redacted::of(&error).to_string(),
            },
            _ if matches!(error.kind(), ErrorKind::Credential) => StoreError::NoToken {
                target,
                detail: Redacted::of(&error),
            },
            _ => StoreError::Unavailable { target, source: Redacted::of(&error) },
        }
    }

    /// Creates the container if it is not there (the operator's first promotion; Bicep creates
    /// it in Azure).
    pub async fn ensure_container(&self) -> Result<(), StoreError> {
        let container = self.container()?;
        match container.create(Some(BlobContainerClientCreateOptions::default())).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(self.classify("the container", e)),
        }
    }

    /// The pointer and its ETag; `None` when no pointer was ever written (the packaged model
    /// serves).
    pub async fn pointer(&self) -> Result<Option<Versioned>, StoreError> {
        let (bytes, etag) = match self.download(POINTER_BLOB, MAX_POINTER_BYTES).await {
            Ok(found) => found,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let etag = etag.ok_or_else(|| StoreError::Corrupt {
            blob: POINTER_BLOB.into(),
            target: self.target(),
            problem: "came without an ETag".into(),
        })?;
        Ok(Some(Versioned {
            pointer: Pointer::parse(&bytes)?,
            etag,
        }))
    }

    /// The pointer's ETag alone: a cheap check whether it moved.
    pub async fn pointer_etag(&self) -> Result<Option<Etag>, StoreError> {
        let blob = self.blob(POINTER_BLOB)?;
        match blob.get_properties(None).await {
            Ok(response) => Ok(response.etag().ok().flatten()),
            Err(e) => match self.classify("the pointer", e) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Writes `pointer` if the stored one still has `expected` (None: only if there is none
    /// yet). A lost race is [`StoreError::Conflict`]; nothing is overwritten.
    pub async fn put_pointer(&self, pointer: &Pointer, expected: Option<&Etag>) -> Result<Etag, StoreError> {
        let blob = self.blob(POINTER_BLOB)?;
        let mut options = BlobClientUploadOptions::default();
        match expected {
            Some(etag) => options.if_match = Some(etag.clone()),
            None => options = options.if_not_exists(),
        }
        options.blob_content_type = Some("application/json".into());
        let body: RequestContent<azure_core::Bytes, azure_core::http::NoFormat> = azure_core::Bytes::from(pointer.to_bytes()).into();
        let result = blob.upload(body, Some(options)).await.map_err(|e| self.classify("the pointer", e))?;
        result.etag.ok_or_else(|| StoreError::Corrupt {
            blob: POINTER_BLOB.into(),
            target: self.target(),
            problem: "was written but the service returned no ETag".into(),
        })
    }

    /// Uploads a model file under its content-addressed name, unless that blob is there; then
    /// it is read back and must be these bytes (a blob written under the name by anything else
    /// is [`StoreError::Corrupt`]).
    pub async fn upload_model(&self, model_version: &str, bytes: &[u8]) -> Result<ModelRef, StoreError> {
        let sha256 = sha256_hex(bytes);
        let model = ModelRef {
            model_version: model_version.to_string(),
            blob: ModelRef::blob_name(model_version, &sha256),
            sha256,
            bytes: bytes.len() as u64,
        };
        let blob = self.blob(&model.blob)?;
        let mut options = BlobClientUploadOptions::default().if_not_exists();
        options.blob_content_type = Some("application/octet-stream".into());
        let body: RequestContent<azure_core::Bytes, azure_core::http::NoFormat> = azure_core::Bytes::copy_from_slice(bytes).into();
        if bytes.len() > MAX_MODEL_BYTES {
            return Err(StoreError::Corrupt {
                blob: model.blob,
                target: self.target(),
                problem: format!("would be {} bytes, more than the {MAX_MODEL_BYTES} a handler downloads", bytes.len()),
            });
        }
        match blob.upload(body, Some(options)).await.map_err(|e| self.classify(&model.blob, e)) {
            Ok(_) => Ok(model),
            Err(StoreError::Conflict { .. }) => {
                self.download_model(&model).await?;
                Ok(model)
            }
            Err(e) => Err(e),
        }
    }

    /// The bytes of `model`, checked against its size and SHA-256: a blob that was replaced or
    /// truncated is [`StoreError::Corrupt`], never served.
    pub async fn download_model(&self, model: &ModelRef) -> Result<Vec<u8>, StoreError> {
        let (bytes, _) = self.download(&model.blob, MAX_MODEL_BYTES).await?;
        let corrupt = |problem: String| StoreError::Corrupt {
            blob: model.blob.clone(),
            target: self.target(),
            problem,
        };
        if bytes.len() as u64 != model.bytes {
            return Err(corrupt(format!("has {} bytes, the pointer says {}", bytes.len(), model.bytes)));
        }
        let sha = sha256_hex(&bytes);
        if sha != model.sha256 {
            return Err(corrupt(format!("has SHA-256 {sha}, the pointer says {}", model.sha256)));
        }
        Ok(bytes)
    }

    /// A whole blob, read no further than `cap` bytes, and its ETag.
    async fn download(&self, name: &str, cap: usize) -> Result<(Vec<u8>, Option<Etag>), StoreError> {
        let blob = self.blob(name)?;
        let result = blob
            .download(Some(BlobClientDownloadOptions::default()))
            .await
            .map_err(|e| self.classify(name, e))?;
        let etag = result.properties.etag.clone();
        let mut body = result.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.classify(name, e))?;
            if bytes.len() + chunk.len() > cap {
                return Err(StoreError::Corrupt {
                    blob: name.into(),
                    target: self.target(),
                    problem: format!("is larger than {cap} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((bytes, etag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_cut_from_error_text_wherever_they_are() {
        let text = "error sending request for url (http://127.0.0.1:10000/devstoreaccount1/models/pointer.json?sv=2018-11-09&ss=b&srt=sco&sp=rwdlac&se=2026-12-05T07%3A00%3A00Z&sig=AbC%2Fd%2B%3D)";
        let redacted = redact_signatures(text);
        assert!(!redacted.contains("AbC"), "{redacted}");
        assert!(redacted.ends_with("&sig=REDACTED)"), "{redacted}");
        assert_eq!(redact_signatures("a SIG=x&sig=y b"), "a SIG=REDACTED&sig=REDACTED b");
        assert_eq!(redact_signatures("nothing secret"), "nothing secret");

        #[derive(Debug)]
        struct Inner;
        impl std::fmt::Display for Inner {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("for url (https://a.blob.core.windows.net/m?sig=secret)")
            }
        }
        impl std::error::Error for Inner {}
        #[derive(Debug)]
        struct Outer(Inner);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("request failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let whole = Redacted::of(&Outer(Inner)).to_string();
        assert_eq!(whole, "request failed: for url (https://a.blob.core.windows.net/m?sig=REDACTED)");
    }
}
