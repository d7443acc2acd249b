//! Settings, read once at start-up from environment variables (in Azure: the function app's
//! application settings) and validated with a message naming the variable.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use domain::Severity;
use pipeline::incidents::{IncidentPolicy, PolicyError};
use model_store::{StoreSettings, StoreSettingsError};
use sinks::azure_sql::settings::{SqlSettings, SqlSettingsError};
use crate::telemetry::app_insights::{AppInsightsSettings, AppInsightsSettingsError};

/// Settings whose values are credentials: never echoed, even when invalid.
/// `ANOMALY_RETRAIN_AFTER_HOURS` when unset.
pub const DEFAULT_RETRAIN_AFTER: Duration = Duration::from_secs(6 * 3600);

pub const SECRET_SETTINGS: [&str; 3] = [
    "ANOMALY_SQL_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    model_store::settings::CONNECTION,
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
    #[error(transparent)]
    ModelStore(#[from] StoreSettingsError),
}

/// Everything the handler needs to start. Defaults suit `func start` and the demo.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `FUNCTIONS_CUSTOMHANDLER_PORT`, set by the Functions host (default 8080 when run alone;
    /// 0 takes any free port, which the ready line names).
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
    /// `ANOMALY_MAX_FUTURE_SKEW_SECS`: windows ending further than this ahead of the handler's
    /// clock are dead-lettered as `future_window` (default 600).
    pub max_future_skew_secs: u64,
    /// `ANOMALY_MODELS_DIR`: the only folder `/api/reload` reads model files from (default: the
    /// folder of `ANOMALY_MODEL_PATH`).
    pub models_dir: PathBuf,
    /// `ANOMALY_ALLOW_EPHEMERAL_SQLITE`: in Azure, allow a SQLite file on instance-local
    /// storage, which a recycle or scale-in deletes (default false: start-up refuses).
    pub allow_ephemeral_sqlite: bool,
    /// `ANOMALY_INCIDENT_OPEN_AFTER` of the last `ANOMALY_INCIDENT_OPEN_OF` windows anomalous
    /// open an incident, as does one window of `ANOMALY_INCIDENT_OPEN_SEVERITY`;
    /// `ANOMALY_INCIDENT_RESOLVE_AFTER` normal windows in a row, or a gap in the device's data
    /// over `ANOMALY_INCIDENT_GAP_SECS`, resolve it (defaults 2 of 3, high, 5, 1800: README,
    /// Incidents).
    pub incident_policy: IncidentPolicy,
    /// `ANOMALY_PUBLISH_WINDOW_ALERTS`: also publish one alert per anomalous window on the
    /// alerts hub (default true: consumers of the per-window stream keep working; page on the
    /// incidents hub).
    pub publish_window_alerts: bool,
    /// `ANOMALY_MODEL_STORE__blobServiceUri` (the app's identity) or `ANOMALY_MODEL_STORE` (an
    /// account key, for Azurite), and `ANOMALY_MODEL_CONTAINER`: follow the champion (and
    /// challenger) the store's pointer names. Unset: the packaged model serves.
    pub model_store: Option<StoreSettings>,
    /// `ANOMALY_MODEL_POLL_SECS`: how often the pointer is checked (default 30, 1 to 3600): the
    /// longest a promotion takes to reach this instance, plus one download and load.
    pub model_poll: Duration,
    /// `ANOMALY_RETRAIN_AFTER_HOURS`: after this long of unbroken drift (a feature's PSI at or
    /// above 0.2), the handler recommends retraining once (default 6, 1 to 168).
    pub retrain_after: Duration,
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
            max_future_skew_secs: 600,
            models_dir: PathBuf::from("models"),
            allow_ephemeral_sqlite: false,
            incident_policy: IncidentPolicy::default(),
            publish_window_alerts: true,
            model_store: None,
            model_poll: Duration::from_secs(30),
            retrain_after: DEFAULT_RETRAIN_AFTER,
        }
    }
}

impl Settings {
    /// The settings of this process; in Azure, also checks that a SQLite file would survive.
    pub fn from_env() -> Result<Self, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let settings = Self::from_lookup(lookup)?;
        if running_in_azure(&lookup) {
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
            let cwd = std::env::current_dir().unwrap_or_default();
            settings.check_sqlite_durability(&mounts, &cwd)?;
        }
        Ok(settings)
    }

    /// In Azure, a SQLite file must live on a mounted network share (Azure Files): local disk
    /// is per instance and goes with a recycle, so 2xx answers would hide lost anomalies.
    /// `mounts` is `/proc/mounts`; relative paths are taken from `cwd`.
    pub fn check_sqlite_durability(&self, mounts: &str, cwd: &Path) -> Result<(), ConfigError> {
        if self.sql.is_some() || self.allow_ephemeral_sqlite {
            return Ok(());
        }
        let path = normalize(&cwd.join(&self.sqlite_path));
        let fs = filesystem_of(&path, mounts);
        if fs.is_some_and(|fs| NETWORK_FILESYSTEMS.contains(&fs)) {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            name: "ANOMALY_SQLITE_PATH",
            value: path.display().to_string(),
            problem: format!(
                "is on {} storage, which Azure deletes with the instance; set ANOMALY_SQL_CONNECTION_STRING (Azure SQL), point ANOMALY_SQLITE_PATH into a mounted Azure Files share, or set ANOMALY_ALLOW_EPHEMERAL_SQLITE=true to accept losing stored anomalies",
                fs.unwrap_or("unknown")
            ),
        })
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let defaults = Settings::default();
        Ok(Settings {
            port: number(&get, "FUNCTIONS_CUSTOMHANDLER_PORT", defaults.port, 0)?,
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
            max_future_skew_secs: number(
                &get,
                "ANOMALY_MAX_FUTURE_SKEW_SECS",
                defaults.max_future_skew_secs,
                0,
            )?,
            models_dir: match (get("ANOMALY_MODELS_DIR"), get("ANOMALY_MODEL_PATH")) {
                (Some(dir), _) => PathBuf::from(dir),
                (None, Some(model)) => Path::new(&model)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
                (None, None) => defaults.models_dir,
            },
            allow_ephemeral_sqlite: flag(&get, "ANOMALY_ALLOW_EPHEMERAL_SQLITE")?,
            incident_policy: incident_policy(&get)?,
            publish_window_alerts: flag_or(&get, "ANOMALY_PUBLISH_WINDOW_ALERTS", true)?,
            model_store: StoreSettings::from_lookup(&lookup)?,
            model_poll: Duration::from_secs(number_at_most(&get, "ANOMALY_MODEL_POLL_SECS", defaults.model_poll.as_secs(), 1, 3600, "an hour")?),
            retrain_after: Duration::from_secs(3600 * number_at_most(&get, "ANOMALY_RETRAIN_AFTER_HOURS", defaults.retrain_after.as_secs() / 3600, 1, 168, "a week")?),
            drift_hours: number_at_most(&get, "ANOMALY_DRIFT_HOURS", defaults.drift_hours, 1, 168, "a week")?,
        })
    }
}

/// Filesystems that outlive an instance: Azure Files (SMB, NFS) and Blob (blobfuse) mounts.
const NETWORK_FILESYSTEMS: [&str; 6] = ["cifs", "smb3", "nfs", "nfs4", "fuse.blobfuse", "fuse.blobfuse2"];

/// App Service and Functions set these in every instance.
fn running_in_azure(lookup: &impl Fn(&str) -> Option<String>) -> bool {
    ["WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME"]
        .iter()
        .any(|name| lookup(name).is_some_and(|v| !v.trim().is_empty()))
}

/// `.` and `..` resolved lexically (the file may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The type of the filesystem mounted deepest above `path`, from `/proc/mounts` text.
fn filesystem_of<'m>(path: &Path, mounts: &'m str) -> Option<&'m str> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let point = fields.next()?.replace("\\040", " ");
            let fs = fields.next()?;
            path.starts_with(&point).then(|| (point.len(), fs))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
}

/// The incident settings (`ANOMALY_INCIDENT_*` through `get`), each checked alone and then
/// together (open_after within open_of). The offline `incidents` command reads them as the
/// handler does.
pub fn incident_policy(get: &impl Fn(&str) -> Option<String>) -> Result<IncidentPolicy, ConfigError> {
    let defaults = IncidentPolicy::default();
    let open_at = match get("ANOMALY_INCIDENT_OPEN_SEVERITY") {
        None => defaults.open_at,
        Some(text) => match text.trim().parse::<Severity>() {
            Ok(s) if s != Severity::Normal => s,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "ANOMALY_INCIDENT_OPEN_SEVERITY",
                    value: text,
                    problem: "must be low, medium, high or critical".into(),
                })
            }
        },
    };
    let policy = IncidentPolicy {
        open_after: number(get, "ANOMALY_INCIDENT_OPEN_AFTER", defaults.open_after, 1)?,
        open_of: number(get, "ANOMALY_INCIDENT_OPEN_OF", defaults.open_of, 1)?,
        open_at,
        resolve_after: number(get, "ANOMALY_INCIDENT_RESOLVE_AFTER", defaults.resolve_after, 1)?,
        gap_secs: number(get, "ANOMALY_INCIDENT_GAP_SECS", defaults.gap_secs, 0)?,
    };
    policy.validate().map_err(|error| {
        let (name, value) = match error {
            PolicyError::OpenOf(n) => ("ANOMALY_INCIDENT_OPEN_OF", n.to_string()),
            PolicyError::OpenAfter { open_after, .. } => {
                ("ANOMALY_INCIDENT_OPEN_AFTER", open_after.to_string())
            }
            PolicyError::ResolveAfter => ("ANOMALY_INCIDENT_RESOLVE_AFTER", "0".into()),
            PolicyError::OpenAt => ("ANOMALY_INCIDENT_OPEN_SEVERITY", "normal".into()),
        };
        ConfigError::Invalid {
            name,
            value,
            problem: error.to_string(),
        }
    })?;
    Ok(policy)
}

fn flag(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<bool, ConfigError> {
    flag_or(get, name, false)
}

fn flag_or(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" || v == "1" => Ok(true),
        Some(v) if v == "false" || v == "0" => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            name,
            value: v,
            problem: "must be true or false".into(),
        }),
    }
}

/// [`number`], also at most `max` (`what` says how long that is, for the message).
fn number_at_most<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
    max: T,
    what: &str,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match number(get, name, default, min)? {
        v if v <= max => Ok(v),
        v => Err(ConfigError::Invalid {
            name,
            value: v.to_string(),
            problem: format!("must be at most {max} ({what})"),
        }),
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
    fn an_empty_sql_connection_string_is_refused_not_taken_for_sqlite() {
        for empty in ["", "   "] {
            let err = settings(&[("ANOMALY_SQL_CONNECTION_STRING", empty)]).unwrap_err();
            assert!(matches!(err, ConfigError::Sql(_)), "{err}");
            assert!(err.to_string().contains("ANOMALY_SQL_CONNECTION_STRING"), "{err}");
        }
    }

    const MOUNTS: &str = "overlay / overlay rw 0 0
tmpfs /tmp tmpfs rw 0 0
//acct.file.core.windows.net/share /home cifs rw 0 0
//acct.file.core.windows.net/data /mounts/anomaly\\040data cifs rw 0 0
";

    #[test]
    fn in_azure_sqlite_must_be_on_a_mounted_share_unless_allowed() {
        let check = |pairs: &[(&str, &str)], cwd: &str| {
            settings(pairs)
                .unwrap()
                .check_sqlite_durability(MOUNTS, Path::new(cwd))
        };
        let err = check(&[], "/tmp/app").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ANOMALY_SQLITE_PATH") && text.contains("ANOMALY_ALLOW_EPHEMERAL_SQLITE"), "{text}");
        assert!(text.contains("tmpfs"), "{text}");
        assert!(check(&[("ANOMALY_SQLITE_PATH", "/data/a.sqlite")], "/").is_err(), "overlay root");
        check(&[], "/home/site/wwwroot").unwrap();
        check(&[("ANOMALY_SQLITE_PATH", "/mounts/anomaly data/a.sqlite")], "/").unwrap();
        assert!(
            check(&[("ANOMALY_SQLITE_PATH", "/home/../tmp/a.sqlite")], "/").is_err(),
            "`..` is resolved before the mount is looked up"
        );
        check(&[("ANOMALY_ALLOW_EPHEMERAL_SQLITE", "true")], "/tmp").unwrap();
        assert!(settings(&[("ANOMALY_ALLOW_EPHEMERAL_SQLITE", "yes please")]).is_err());
        check(
            &[(
                "ANOMALY_SQL_CONNECTION_STRING",
                "Server=tcp:srv.database.windows.net;Database=db;Authentication=Active Directory Managed Identity",
            )],
            "/tmp",
        )
        .unwrap();
        assert!(running_in_azure(&|k: &str| (k == "WEBSITE_INSTANCE_ID").then(|| "abc".to_string())));
        assert!(!running_in_azure(&|_: &str| None));
    }

    #[test]
    fn incident_settings_are_checked_alone_and_together() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.incident_policy, IncidentPolicy::default());
        assert!(s.publish_window_alerts);
        let s = settings(&[
            ("ANOMALY_INCIDENT_OPEN_AFTER", "3"),
            ("ANOMALY_INCIDENT_OPEN_OF", "5"),
            ("ANOMALY_INCIDENT_OPEN_SEVERITY", "high"),
            ("ANOMALY_INCIDENT_RESOLVE_AFTER", "10"),
            ("ANOMALY_INCIDENT_GAP_SECS", "0"),
            ("ANOMALY_PUBLISH_WINDOW_ALERTS", "false"),
        ])
        .unwrap();
        assert_eq!(
            s.incident_policy,
            IncidentPolicy { open_after: 3, open_of: 5, open_at: Severity::High, resolve_after: 10, gap_secs: 0 }
        );
        assert!(!s.publish_window_alerts);
        for (pairs, named) in [
            (vec![("ANOMALY_INCIDENT_OPEN_AFTER", "4")], "ANOMALY_INCIDENT_OPEN_AFTER"),
            (vec![("ANOMALY_INCIDENT_OPEN_OF", "33"), ("ANOMALY_INCIDENT_OPEN_AFTER", "1")], "ANOMALY_INCIDENT_OPEN_OF"),
            (vec![("ANOMALY_INCIDENT_RESOLVE_AFTER", "0")], "ANOMALY_INCIDENT_RESOLVE_AFTER"),
            (vec![("ANOMALY_INCIDENT_OPEN_SEVERITY", "normal")], "ANOMALY_INCIDENT_OPEN_SEVERITY"),
            (vec![("ANOMALY_INCIDENT_OPEN_SEVERITY", "loud")], "ANOMALY_INCIDENT_OPEN_SEVERITY"),
            (vec![("ANOMALY_PUBLISH_WINDOW_ALERTS", "sometimes")], "ANOMALY_PUBLISH_WINDOW_ALERTS"),
        ] {
            let err = settings(&pairs).unwrap_err();
            assert!(err.to_string().contains(named), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn reload_reads_from_the_model_folder_unless_told() {
        assert_eq!(settings(&[]).unwrap().models_dir, PathBuf::from("models"));
        let s = settings(&[("ANOMALY_MODEL_PATH", "/srv/m/current.onnx")]).unwrap();
        assert_eq!(s.models_dir, PathBuf::from("/srv/m"));
        let s = settings(&[("ANOMALY_MODEL_PATH", "current.onnx")]).unwrap();
        assert_eq!(s.models_dir, PathBuf::from("."));
        let s = settings(&[("ANOMALY_MODELS_DIR", "/x"), ("ANOMALY_MODEL_PATH", "/srv/m/a.onnx")]).unwrap();
        assert_eq!(s.models_dir, PathBuf::from("/x"));
    }

    #[test]
    fn model_store_settings_are_read_checked_and_redacted() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.model_store.is_none(), s.model_poll, s.retrain_after), (true, Duration::from_secs(30), Duration::from_secs(6 * 3600)));
        let s = settings(&[
            ("ANOMALY_MODEL_STORE__blobServiceUri", "https://acct.blob.core.windows.net/"),
            ("ANOMALY_MODEL_CONTAINER", "fleet-models"),
            ("ANOMALY_MODEL_POLL_SECS", "5"),
            ("ANOMALY_RETRAIN_AFTER_HOURS", "12"),
        ])
        .unwrap();
        let store = s.model_store.expect("a model store");
        assert_eq!(store.container_url().as_str(), "https://acct.blob.core.windows.net/fleet-models");
        assert_eq!((s.model_poll, s.retrain_after), (Duration::from_secs(5), Duration::from_secs(12 * 3600)));
        for (name, value) in [("ANOMALY_MODEL_POLL_SECS", "0"), ("ANOMALY_MODEL_POLL_SECS", "3601"), ("ANOMALY_RETRAIN_AFTER_HOURS", "169"), ("ANOMALY_RETRAIN_AFTER_HOURS", "0")] {
            let err = settings(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let key = "c2VjcmV0LWtleS12YWx1ZQ==";
        let err = settings(&[("ANOMALY_MODEL_STORE", &format!("AccountKey={key}"))]).unwrap_err();
        assert!(matches!(err, ConfigError::ModelStore(_)), "{err}");
        assert!(err.to_string().contains("ANOMALY_MODEL_STORE") && !err.to_string().contains(key), "{err}");
        let ok = settings(&[("ANOMALY_MODEL_STORE", &format!("AccountName=a;AccountKey={key}"))]).unwrap();
        assert!(!format!("{ok:?}").contains(key));
        assert!(SECRET_SETTINGS.contains(&"ANOMALY_MODEL_STORE"));
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
