//! Where the model store is and how to reach it, from the function app's settings, following
//! the Functions convention for connections:
//!
//! ```text
//! ANOMALY_MODEL_STORE__blobServiceUri=https://<account>.blob.core.windows.net   (Azure: the app's identity)
//! ANOMALY_MODEL_STORE__clientId=<client id>                                     (optional: a user-assigned identity)
//! ANOMALY_MODEL_STORE=UseDevelopmentStorage=true                                (local: Azurite's well-known key)
//! ANOMALY_MODEL_STORE=DefaultEndpointsProtocol=http;AccountName=…;AccountKey=…;BlobEndpoint=…
//! ANOMALY_MODEL_CONTAINER=models                                                (the default)
//! ```
//!
//! In Azure only the identity form is meant to be used (no keys in app settings); an account
//! key is for Azurite, which has no Entra ID. Neither set: no model store, the packaged model
//! serves.

use std::collections::BTreeMap;

use azure_core::http::Url;
use domain::Secret;

pub const CONNECTION: &str = "ANOMALY_MODEL_STORE";
pub const SERVICE_URI: &str = "ANOMALY_MODEL_STORE__blobServiceUri";
pub const CLIENT_ID: &str = "ANOMALY_MODEL_STORE__clientId";
pub const CONTAINER: &str = "ANOMALY_MODEL_CONTAINER";
pub const DEFAULT_CONTAINER: &str = "models";

/// Azurite's documented development account (`UseDevelopmentStorage=true`).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const AZURITE_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// How requests to the store are authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreAuth {
    /// Entra ID tokens: the managed identity in Azure (a user-assigned one when `client_id` is
    /// set), the developer tools (`az login`) elsewhere.
    Identity { client_id: Option<String> },
    /// The account key, for Azurite: each client signs a short-lived account SAS with it.
    SharedKey { account: String, key: Secret },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The blob service endpoint, e.g. `https://acct.blob.core.windows.net` or Azurite's
    /// `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Url,
    pub container: String,
    pub auth: StoreAuth,
}

impl StoreSettings {
    /// The container's URL (no credentials in it: safe to show).
    pub fn container_url(&self) -> Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(&self.container);
        }
        url
    }
}

/// A bad model-store setting, naming it; a connection string is never echoed (it holds a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {setting} is invalid: {problem}")]
pub struct StoreSettingsError {
    pub setting: &'static str,
    pub problem: String,
}

fn invalid(setting: &'static str, problem: impl Into<String>) -> StoreSettingsError {
    StoreSettingsError {
        setting,
        problem: problem.into(),
    }
}

impl StoreSettings {
    /// The store the settings name, or `None` when neither form is set.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, StoreSettingsError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let container = match get(CONTAINER) {
            Some(c) => check_container(&c)?,
            None => DEFAULT_CONTAINER.to_string(),
        };
        let (endpoint, auth) = match (get(CONNECTION), get(SERVICE_URI)) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    CONNECTION,
                    format!("set either {CONNECTION} (an account key, for Azurite) or {SERVICE_URI} (the app's identity), not both"),
                ))
            }
            (None, Some(uri)) => {
                let endpoint = Url::parse(&uri)
                    .map_err(|e| invalid(SERVICE_URI, format!("{uri:?} is not a URL: {e}")))?;
                if endpoint.scheme() != "https" {
                    return Err(invalid(SERVICE_URI, "must be https: identity tokens are only sent over TLS"));
                }
                if endpoint.query().is_some() {
                    return Err(invalid(SERVICE_URI, "must not carry a query (no SAS tokens: the app's identity is used)"));
                }
                (endpoint, StoreAuth::Identity { client_id: get(CLIENT_ID) })
            }
            (Some(connection), None) => parse_connection_string(&connection)?,
        };
        Ok(Some(StoreSettings {
            endpoint,
            container,
            auth,
        }))
    }
}

/// Container names: 3 to 63 lowercase letters, digits and single hyphens, starting and ending
/// with a letter or digit (the service's rule, checked here so the message names the setting).
fn check_container(name: &str) -> Result<String, StoreSettingsError> {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(name.to_string())
    } else {
        Err(invalid(CONTAINER, format!("{name:?} is not a container name (3 to 63 lowercase letters, digits and single hyphens)")))
    }
}

/// `UseDevelopmentStorage=true`, or `AccountName`, `AccountKey` and `BlobEndpoint` (or
/// `DefaultEndpointsProtocol` + `EndpointSuffix`, as the portal shows them).
fn parse_connection_string(text: &str) -> Result<(Url, StoreAuth), StoreSettingsError> {
    let mut parts = BTreeMap::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| invalid(CONNECTION, "is not a connection string (Key=Value;… pairs)"))?;
        parts.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    if parts
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        let endpoint = Url::parse(AZURITE_BLOB_ENDPOINT).map_err(|e| invalid(CONNECTION, e.to_string()))?;
        return Ok((
            endpoint,
            StoreAuth::SharedKey {
                account: AZURITE_ACCOUNT.into(),
                key: Secret::new(AZURITE_KEY),
            },
        ));
    }
    let account = parts
        .get("accountname")
        .cloned()
        .ok_or_else(|| invalid(CONNECTION, "has no AccountName (or UseDevelopmentStorage=true)"))?;
    let key = parts
        .get("accountkey")
        .cloned()
        .ok_or_else(|| invalid(CONNECTION, format!("has no AccountKey; in Azure use {SERVICE_URI} and the app's identity instead")))?;
    use base64::Engine as _;
    if base64::engine::general_purpose::STANDARD.decode(&key).is_err() {
        return Err(invalid(CONNECTION, "its AccountKey is not base64"));
    }
    let endpoint = match parts.get("blobendpoint") {
        Some(e) => e.clone(),
        None => {
            let protocol = parts.get("defaultendpointsprotocol").map_or("https", String::as_str);
            let suffix = parts.get("endpointsuffix").map_or("core.windows.net", String::as_str);
            format!("{protocol}://{account}.blob.{suffix}")
        }
    };
    let endpoint = Url::parse(&endpoint)
        .map_err(|e| invalid(CONNECTION, format!("its blob endpoint is not a URL: {e}")))?;
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err(invalid(CONNECTION, "its blob endpoint must be http or https"));
    }
    Ok((
        endpoint,
        StoreAuth::SharedKey {
            account,
            key: Secret::new(key),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Option<StoreSettings>, StoreSettingsError> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        StoreSettings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn no_setting_means_no_store() {
        assert_eq!(settings(&[]).unwrap(), None);
        assert_eq!(settings(&[(CONTAINER, "other")]).unwrap(), None);
    }

    #[test]
    fn identity_form_names_the_endpoint_and_an_optional_user_assigned_identity() {
        let s = settings(&[(SERVICE_URI, "https://acct.blob.core.windows.net"), (CLIENT_ID, "abc")])
            .unwrap()
            .unwrap();
        assert_eq!(s.auth, StoreAuth::Identity { client_id: Some("abc".into()) });
        assert_eq!(s.container_url().as_str(), "https://acct.blob.core.windows.net/models");
        for (value, needle) in [
            ("http://acct.blob.core.windows.net", "https"),
            ("https://acct.blob.core.windows.net/?sv=1&sig=x", "query"),
            ("not a url", "not a URL"),
        ] {
            let e = settings(&[(SERVICE_URI, value)]).unwrap_err();
            assert_eq!(e.setting, SERVICE_URI);
            assert!(e.problem.contains(needle), "{e}");
        }
    }

    #[test]
    fn development_storage_is_azurite_with_its_well_known_key() {
        let s = settings(&[(CONNECTION, "UseDevelopmentStorage=true"), (CONTAINER, "fleet-models")])
            .unwrap()
            .unwrap();
        assert_eq!(s.container_url().as_str(), "http://127.0.0.1:10000/devstoreaccount1/fleet-models");
        assert!(matches!(s.auth, StoreAuth::SharedKey { ref account, .. } if account == AZURITE_ACCOUNT));
    }

    #[test]
    fn account_key_connection_strings_in_both_portal_forms() {
        let key = "a2V5";
        let s = settings(&[(CONNECTION, &format!("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net"))])
            .unwrap()
            .unwrap();
        assert_eq!(s.endpoint.as_str(), "https://acct.blob.core.windows.net/");
        let s = settings(&[(CONNECTION, &format!("AccountName=a;AccountKey={key};BlobEndpoint=http://127.0.0.1:10001/a"))])
            .unwrap()
            .unwrap();
        assert_eq!(s.container_url().as_str(), "http://127.0.0.1:10001/a/models");
    }

    #[test]
    fn bad_settings_are_named_and_never_echo_the_key() {
        let secret = "c2VjcmV0LWtleS12YWx1ZQ==";
        for (pairs, setting) in [
            (vec![(CONNECTION, "AccountName=a".to_string())], CONNECTION),
            (vec![(CONNECTION, format!("AccountKey={secret}"))], CONNECTION),
            (vec![(CONNECTION, "AccountName=a;AccountKey=not base64!".to_string())], CONNECTION),
            (vec![(CONNECTION, format!("garbage {secret}"))], CONNECTION),
            (vec![(CONNECTION, format!("AccountName=a;AccountKey={secret};BlobEndpoint=ftp://x"))], CONNECTION),
            (vec![(CONNECTION, "UseDevelopmentStorage=true".to_string()), (SERVICE_URI, "https://a.blob.core.windows.net".to_string())], CONNECTION),
            (vec![(CONNECTION, "UseDevelopmentStorage=true".to_string()), (CONTAINER, "Models".to_string())], CONTAINER),
            (vec![(CONNECTION, "UseDevelopmentStorage=true".to_string()), (CONTAINER, "a--b".to_string())], CONTAINER),
        ] {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let e = settings(&pairs).unwrap_err();
            assert_eq!(e.setting, setting, "{pairs:?}");
            assert!(!e.to_string().contains(secret), "{e}");
        }
        let s = settings(&[(CONNECTION, &format!("AccountName=a;AccountKey={secret}"))]).unwrap().unwrap();
        assert!(!format!("{s:?}").contains(secret));
    }
}
