//! The ADO.NET connection-string parser (`ANOMALY_SQL_CONNECTION_STRING`).

use domain::Secret;
use sinks::azure_sql::settings::{SqlAuth, SqlSettings};

/// An error names the setting and the keyword, never the value: it stays short.
const MAX_ERROR: usize = 512;

pub fn check_connection_string(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match SqlSettings::from_connection_string(text) {
        Ok(settings) => {
            assert!(!settings.host.trim().is_empty(), "no host in {settings:?}");
            assert!(!settings.database.trim().is_empty());
            // What Debug and the log's target show does not depend on the password.
            if let SqlAuth::SqlPassword { user, .. } = &settings.auth {
                let mut other = settings.clone();
                other.auth = SqlAuth::SqlPassword {
                    user: user.clone(),
                    password: Secret::new("another password"),
                };
                assert_eq!(format!("{settings:?}"), format!("{other:?}"));
                assert_eq!(settings.target(), other.target());
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.len() <= MAX_ERROR, "an error of {} bytes", message.len());
        }
    }
}
