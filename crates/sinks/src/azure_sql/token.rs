//! Entra ID tokens for Azure SQL: fetched from an `azure_identity` credential for the scope
//! `https://database.windows.net/.default`, cached, and refreshed a margin before they expire so
//! a new connection never logs in with a token about to lapse. Tokens are never logged.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

use super::settings::SqlAuth;
use domain::Secret;

pub const SQL_SCOPE: &str = "https://database.windows.net/.default";
/// A cached token is replaced when it has less than this left.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

pub struct TokenCache {
    credential: Arc<dyn TokenCredential>,
    cached: tokio::sync::Mutex<Option<AccessToken>>,
    margin: Duration,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(credential: Arc<dyn TokenCredential>, margin: Duration) -> Self {
        TokenCache {
            credential,
            cached: tokio::sync::Mutex::new(None),
            margin,
        }
    }

    /// A token valid for at least the margin. Concurrent callers wait for one fetch.
    pub async fn token(&self) -> azure_core::Result<Secret> {
        let mut cached = self.cached.lock().await;
        let now = time::OffsetDateTime::now_utc();
        if let Some(token) = cached.as_ref() {
            if token.expires_on - now > self.margin {
                return Ok(Secret::new(token.token.secret()));
            }
        }
        let fresh = self.credential.get_token(&[SQL_SCOPE], None).await?;
        let secret = Secret::new(fresh.token.secret());
        *cached = Some(fresh);
        Ok(secret)
    }
}

/// The credential for an Entra ID method; `None` for SQL authentication.
pub fn credential_for(auth: &SqlAuth) -> azure_core::Result<Option<Arc<dyn TokenCredential>>> {
    let managed = |client_id: Option<String>| -> azure_core::Result<Arc<dyn TokenCredential>> {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(UserAssignedId::ClientId),
            ..Default::default()
        };
        Ok(ManagedIdentityCredential::new(Some(options))?)
    };
    Ok(match auth {
        SqlAuth::SqlPassword { .. } => None,
        SqlAuth::ManagedIdentity { client_id } => Some(managed(client_id.clone())?),
        SqlAuth::DeveloperTools => Some(DeveloperToolsCredential::new(None)?),
        // App Service and Functions set IDENTITY_ENDPOINT when a managed identity is enabled.
        SqlAuth::Default if running_with_managed_identity() => Some(managed(None)?),
        SqlAuth::Default => Some(DeveloperToolsCredential::new(None)?),
    })
}

fn running_with_managed_identity() -> bool {
    ["IDENTITY_ENDPOINT", "MSI_ENDPOINT"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A test credential: hands out numbered tokens that expire `lifetime` after issue.
    #[derive(Debug)]
    struct CountingTestCredential {
        calls: AtomicUsize,
        lifetime: time::Duration,
    }

    #[async_trait::async_trait]
    impl TokenCredential for CountingTestCredential {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            assert_eq!(scopes, [SQL_SCOPE]);
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(AccessToken::new(
                format!("token-{n}"),
                time::OffsetDateTime::now_utc() + self.lifetime,
            ))
        }
    }

    fn cache(lifetime: time::Duration) -> (Arc<CountingTestCredential>, TokenCache) {
        let credential = Arc::new(CountingTestCredential {
            calls: AtomicUsize::new(0),
            lifetime,
        });
        let cache = TokenCache::new(credential.clone(), REFRESH_MARGIN);
        (credential, cache)
    }

    #[tokio::test]
    async fn a_fresh_token_is_reused() {
        let (credential, cache) = cache(time::Duration::hours(1));
        for _ in 0..3 {
            assert_eq!(cache.token().await.unwrap().expose(), "token-1");
        }
        assert_eq!(credential.calls.load(Ordering::SeqCst), 1);
        assert!(!format!("{cache:?}").contains("token-1"));
    }

    #[tokio::test]
    async fn a_token_inside_the_margin_is_refreshed_before_it_expires() {
        // Valid for 4 more minutes: still usable, but inside the 5-minute margin.
        let (credential, cache) = cache(time::Duration::minutes(4));
        assert_eq!(cache.token().await.unwrap().expose(), "token-1");
        assert_eq!(cache.token().await.unwrap().expose(), "token-2");
        assert_eq!(credential.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn sql_password_needs_no_credential() {
        let auth = SqlAuth::SqlPassword {
            user: "sa".into(),
            password: Secret::new("x"),
        };
        assert!(credential_for(&auth).unwrap().is_none());
    }
}
