//! Settings, read once at start-up from environment variables (in Azure: the function app's
//! application settings) and validated with a message naming the variable.

use std::path::PathBuf;
use std::time::Duration;

use crate::sinks::azure_sql::settings::{SqlSettings, SqlSettingsError};
use crate::telemetry::app_insights::{AppInsightsSettings, AppInsightsSettingsError};

/// Settings whose values are credentials: never echoed, even when invalid.
pub const SECRET_SETTINGS: [&str; 2] = [
    "ANOMALY_SQL_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
];

/// A setting's value as it may appear in a message.
fn shown(name: &str, value: &str) -> String {
    if SECRET_SETTINGS.contains(&name) {
        "[redacted]".into()
    } else {
        format!("{value:?}")
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("setting {name}={} is invalid: {problem}", shown(name, value))]
    Invalid {
        name: &'static str,
        value: String,
        problem: String,
    },
    #[error(transparent)]
    Sql(#[from] SqlSettingsError),
    #[error(transparent)]
    AppInsights(#[from] AppInsightsSettingsError),
}

/// Everything the handler needs to start. Defaults suit `func start` and the demo.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `FUNCTIONS_CUSTOMHANDLER_PORT`, set by the Functions host (default 8080 when run alone).
    pub port: u16,
    /// `ANOMALY_MODEL_PATH` (default `models/default.onnx`, relative to the working directory).
    pub model_path: PathBuf,
    /// `ANOMALY_SQLITE_PATH` (default `data/anomalies.sqlite`).
    pub sqlite_path: PathBuf,
    /// `ANOMALY_STORE_TIMEOUT_MS`: how long a write waits on a locked store before the invocation
    /// fails and the host retries (default 5000).
    pub store_timeout: Duration,
    /// `ANOMALY_MAX_BATCH`: windows accepted by `POST /api/score/batch` (default 1000).
    pub max_batch: usize,
    /// `ANOMALY_MAX_BODY_BYTES`: request body limit for the HTTP API (default 1 MiB); larger bodies get 413.
    pub max_body_bytes: usize,
    /// `ANOMALY_MAX_INVOCATION_BYTES`: body limit for host trigger invocations (default 64 MiB).
    pub max_invocation_bytes: usize,
    /// `ANOMALY_TRIGGER_BINDING`: the Event Hub trigger's binding name in function.json (default `events`).
    pub trigger_binding: String,
    /// `ANOMALY_SQL_CONNECTION_STRING` and its knobs: when set, anomalies go to Azure SQL
    /// instead of the embedded SQLite store.
    pub sql: Option<SqlSettings>,
    /// `APPLICATIONINSIGHTS_CONNECTION_STRING` (set by Azure): export traces and metrics to
    /// Application Insights. Unset: local logs and Prometheus only.
    pub app_insights: Option<AppInsightsSettings>,
    /// `ANOMALY_DRIFT_HOURS`: how many hours of recent data (by window end) the drift check
    /// compares with the training data (default 24: a full daily cycle; 1 to 168).
    pub drift_hours: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            port: 8080,
            model_path: PathBuf::from("models/default.onnx"),
            sqlite_path: PathBuf::from("data/anomalies.sqlite"),
            store_timeout: Duration::from_millis(5000),
            max_batch: 1000,
            max_body_bytes: 1 << 20,
            max_invocation_bytes: 64 << 20,
            trigger_binding: "events".into(),
            sql: None,
            app_insights: None,
            drift_hours: 24,
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let defaults = Settings::default();
        Ok(Settings {
            port: number(&get, "FUNCTIONS_CUSTOMHANDLER_PORT", defaults.port, 1)?,
            model_path: get("ANOMALY_MODEL_PATH")
                .map(PathBuf::from)
                .unwrap_or(defaults.model_path),
            sqlite_path: get("ANOMALY_SQLITE_PATH")
                .map(PathBuf::from)
                .unwrap_or(defaults.sqlite_path),
            store_timeout: Duration::from_millis(number(
                &get,
                "ANOMALY_STORE_TIMEOUT_MS",
                5000u64,
                1,
            )?),
            max_batch: number(&get, "ANOMALY_MAX_BATCH", defaults.max_batch, 1)?,
            max_body_bytes: number(
                &get,
                "ANOMALY_MAX_BODY_BYTES",
                defaults.max_body_bytes,
                1024,
            )?,
            max_invocation_bytes: number(
                &get,
                "ANOMALY_MAX_INVOCATION_BYTES",
                defaults.max_invocation_bytes,
                1024,
            )?,
            trigger_binding: get("ANOMALY_TRIGGER_BINDING").unwrap_or(defaults.trigger_binding),
            sql: SqlSettings::from_lookup(&lookup)?,
            app_insights: AppInsightsSettings::from_lookup(&lookup)?,
            drift_hours: match number(&get, "ANOMALY_DRIFT_HOURS", defaults.drift_hours, 1)? {
                h if h <= 168 => h,
                h => {
                    return Err(ConfigError::Invalid {
                        name: "ANOMALY_DRIFT_HOURS",
                        value: h.to_string(),
                        problem: "must be at most 168 (a week)".into(),
                    })
                }
            },
        })
    }
}

fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = get(name) else {
        return Ok(default);
    };
    match text.trim().parse::<T>() {
        Ok(v) if v >= min => Ok(v),
        Ok(_) => Err(ConfigError::Invalid {
            name,
            value: text,
            problem: format!("must be at least {min}"),
        }),
        Err(_) => Err(ConfigError::Invalid {
            name,
            value: text,
            problem: "is not a whole number".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.trigger_binding, "events");
        let s = settings(&[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "41234"),
            ("ANOMALY_MAX_BATCH", "50"),
        ])
        .unwrap();
        assert_eq!((s.port, s.max_batch), (41234, 50));
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let err = settings(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "http")]).unwrap_err();
        assert!(
            err.to_string().contains("FUNCTIONS_CUSTOMHANDLER_PORT"),
            "{err}"
        );
        let err = settings(&[("ANOMALY_MAX_BATCH", "0")]).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        let err = settings(&[("ANOMALY_SQL_CONNECTION_STRING", "Server=x;Password=hunter2")])
            .unwrap_err();
        assert!(matches!(err, ConfigError::Sql(_)), "{err}");
        assert!(
            err.to_string().contains("ANOMALY_SQL_CONNECTION_STRING"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let s = settings(&[(
            "ANOMALY_SQL_CONNECTION_STRING",
            "Server=tcp:srv.database.windows.net;Database=db;Authentication=Active Directory Managed Identity",
        )])
        .unwrap();
        assert_eq!(
            s.sql.map(|s| s.target()).as_deref(),
            Some("srv.database.windows.net,1433/db")
        );
    }

    #[test]
    fn secret_settings_are_redacted_in_errors() {
        let invalid = ConfigError::Invalid {
            name: "APPLICATIONINSIGHTS_CONNECTION_STRING",
            value: "InstrumentationKey=abc-secret".into(),
            problem: "has no IngestionEndpoint".into(),
        };
        assert!(!invalid.to_string().contains("abc-secret"), "{invalid}");
        assert!(
            invalid
                .to_string()
                .contains("APPLICATIONINSIGHTS_CONNECTION_STRING"),
            "{invalid}"
        );
        let plain = ConfigError::Invalid {
            name: "ANOMALY_MAX_BATCH",
            value: "lots".into(),
            problem: "is not a whole number".into(),
        };
        assert!(plain.to_string().contains("\"lots\""), "{plain}");
    }
}
