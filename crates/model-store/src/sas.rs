//! Account SAS tokens signed with an account key: how a client reaches Azurite, which has no
//! Entra ID and whose shared-key scheme the Azure SDK for Rust does not implement. Scoped to the
//! blob service and short-lived; never used in Azure, where the app's identity is.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

/// The SAS version whose string-to-sign this follows (2015-04-05 up to 2020-12-06, which added
/// the encryption scope line).
pub const SAS_VERSION: &str = "2018-11-09";
/// Read, write, delete, list, add, create.
const PERMISSIONS: &str = "rwdlac";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the account key is not base64")]
pub struct BadKey;

/// An account SAS query string for the blob service (service, container and object level)
/// valid until `expiry`.
pub fn account_sas(account: &str, key_base64: &str, expiry: OffsetDateTime) -> Result<String, BadKey> {
    let key = STANDARD.decode(key_base64).map_err(|_| BadKey)?;
    let expiry = expiry
        .replace_nanosecond(0)
        .unwrap_or(expiry)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| BadKey)?;
    let (service, resource_types, protocol) = ("b", "sco", "https,http");
    let string_to_sign = format!(
        "{account}\n{PERMISSIONS}\n{service}\n{resource_types}\n\n{expiry}\n\n{protocol}\n{SAS_VERSION}\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadKey)?;
    mac.update(string_to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let query: String = [
        ("sv", SAS_VERSION),
        ("ss", service),
        ("srt", resource_types),
        ("sp", PERMISSIONS),
        ("se", &expiry),
        ("spr", protocol),
        ("sig", &signature),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    Ok(query)
}

/// Percent-encodes a query value (the signature's `+`, `/` and `=`, the expiry's `:`).
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_signs_the_documented_string_with_the_key() {
        let expiry = time::Date::from_calendar_date(2030, time::Month::January, 2)
            .unwrap()
            .with_hms_milli(3, 4, 5, 678)
            .unwrap()
            .assume_utc();
        let key = STANDARD.encode(b"key");
        let token = account_sas("acct", &key, expiry).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"acct\nrwdlac\nb\nsco\n\n2030-01-02T03:04:05Z\n\nhttps,http\n2018-11-09\n");
        let expected = encode(&STANDARD.encode(mac.finalize().into_bytes()));
        assert!(token.ends_with(&format!("&sig={expected}")), "{token}");
        assert!(token.contains("se=2030-01-02T03%3A04%3A05Z"), "{token}");
        assert_eq!(account_sas("acct", "not base64!", expiry), Err(BadKey));
    }
}
