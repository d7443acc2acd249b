//! Settings, read once at start-up from environment variables (in Azure: the function app's
//! application settings) and validated with a message naming the variable.

use std::path::PathBuf;
use std::time::Duration;

/// A setting that holds a credential (a connection string with a key or password). Its value
/// never appears in `Debug`, `Display` or error messages; [`Secret::expose`] is the one way out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

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
    #[error("setting {0} is set, but this build has no Azure SQL sink yet; unset it to use the embedded SQLite store (ANOMALY_SQLITE_PATH)")]
    Unsupported(&'static str),
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
        if get("ANOMALY_SQL_CONNECTION_STRING").is_some() {
            return Err(ConfigError::Unsupported("ANOMALY_SQL_CONNECTION_STRING"));
        }
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
        assert_eq!(
            err,
            ConfigError::Unsupported("ANOMALY_SQL_CONNECTION_STRING")
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_display_and_errors() {
        let secret = Secret::new("Server=x;Password=hunter2");
        assert_eq!(secret.expose(), "Server=x;Password=hunter2");
        for text in [format!("{secret:?}"), format!("{secret}")] {
            assert!(!text.contains("hunter2"), "{text}");
        }
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
