//! Azurite's blob service for the model-store tests: the npm package `scripts/azurite-setup.sh`
//! installs (3.35.0, the version compose.yaml pins), started in memory on a free port and killed
//! when its guard drops. Azurite takes an account key, not Entra ID, so these tests reach the
//! store with a shared key; the identity path is tested up to the credential.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::ChildGuard;

/// Azurite's documented development account and key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Set by `scripts/test.sh` once the set-up installed Azurite: a missing Azurite then fails the
/// test instead of skipping it.
pub const REQUIRE: &str = "ANOMALY_REQUIRE_AZURITE";

pub struct Azurite {
    pub port: u16,
    _child: ChildGuard,
}

/// The Azurite blob binary: `ANOMALY_TEST_AZURITE`, else the one the set-up script installs.
fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ANOMALY_TEST_AZURITE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let installed = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/azurite/node_modules/.bin/azurite-blob"));
    installed.exists().then_some(installed)
}

impl Azurite {
    /// Azurite on a free port, or why it cannot run here (the caller prints it and skips;
    /// with `ANOMALY_REQUIRE_AZURITE=1` it panics instead).
    pub async fn start() -> Result<Self, String> {
        let Some(bin) = binary() else {
            let reason = "Azurite is not installed (scripts/azurite-setup.sh installs it with npm)".to_string();
            if std::env::var(REQUIRE).is_ok_and(|v| v == "1") {
                panic!("{REQUIRE}=1 but {reason}");
            }
            return Err(reason);
        };
        // Azurite logs its address on stdout; send it to stderr, which the guard reads. The
        // API version check is off: the SDK speaks a newer version than 3.35.0 knows (as in
        // compose.yaml).
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!(
            "exec '{}' --blobHost 127.0.0.1 --blobPort 0 --inMemoryPersistence --skipApiVersionCheck --disableTelemetry 1>&2",
            bin.display()
        ));
        let child = ChildGuard::spawn(command).map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let line = child.wait_for_line("successfully listens on http://127.0.0.1:", Duration::from_secs(60)).await;
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Ok(Azurite { port, _child: child })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The account-key connection string (`ANOMALY_MODEL_STORE`).
    pub fn connection_string(&self) -> String {
        format!("DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={}", self.endpoint())
    }
}
