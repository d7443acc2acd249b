//! The Azure SQL sink's settings: `ANOMALY_SQL_CONNECTION_STRING` in ADO.NET form (what the
//! Azure portal shows and Microsoft.Data.SqlClient reads), plus pool and retry knobs.
//!
//! ```text
//! Server=tcp:myserver.database.windows.net,1433;Database=anomalies;Authentication=Active Directory Managed Identity
//! Server=tcp:myserver.database.windows.net;Database=anomalies;Authentication=Active Directory Managed Identity;User Id=<client id of a user-assigned identity>
//! Server=localhost,1433;Database=anomalies;User Id=sa;Password=...;TrustServerCertificate=true     (the local container only)
//! ```
//!
//! In Azure only Entra ID tokens are accepted (no passwords): SQL authentication and
//! `TrustServerCertificate` are refused for `*.database.windows.net`. TLS is always required.

use std::collections::BTreeMap;
use std::time::Duration;

use domain::Secret;

pub const CONNECTION_STRING: &str = "ANOMALY_SQL_CONNECTION_STRING";
pub const POOL_SIZE: &str = "ANOMALY_SQL_POOL_SIZE";
pub const RETRY_BUDGET_MS: &str = "ANOMALY_SQL_RETRY_BUDGET_MS";

/// How the sink authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlAuth {
    /// `Authentication=Active Directory Managed Identity`: the function app's identity; a
    /// user-assigned one when `User Id` gives its client id.
    ManagedIdentity { client_id: Option<String> },
    /// `Authentication=Active Directory Default`: the managed identity when running in Azure
    /// (the platform sets `IDENTITY_ENDPOINT`), else the developer tools (`az login`, `azd`).
    Default,
    /// `Authentication=Active Directory Az Cli` (or `Developer Tools`): `az login` / `azd auth login`.
    DeveloperTools,
    /// `User Id` + `Password`: for the local SQL Server container only.
    SqlPassword { user: String, password: Secret },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSettings {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub auth: SqlAuth,
    /// Only for a local server with a self-signed certificate; refused for Azure SQL.
    pub trust_server_certificate: bool,
    /// `Connect Timeout` (seconds, default 15): TCP connect, TLS and login.
    pub connect_timeout: Duration,
    /// `Command Timeout` (seconds, default 30): how long one round trip may wait on the server.
    pub command_timeout: Duration,
    /// `ANOMALY_SQL_POOL_SIZE` (default 4): connections per instance.
    pub pool_size: u32,
    /// `ANOMALY_SQL_RETRY_BUDGET_MS` (default 20000): how long one write may spend retrying
    /// transient errors before the invocation answers 503 and the host retries the batch.
    pub retry_budget: Duration,
}

/// A bad SQL setting, naming the setting and (for the connection string) the keyword. The
/// connection string itself is never echoed: it may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {setting} is invalid: {problem}")]
pub struct SqlSettingsError {
    pub setting: &'static str,
    pub problem: String,
}

fn invalid(problem: impl Into<String>) -> SqlSettingsError {
    SqlSettingsError {
        setting: CONNECTION_STRING,
        problem: problem.into(),
    }
}

/// The keywords this parser reads.
const KNOWN: [&str; 17] = [
    "server",
    "datasource",
    "address",
    "addr",
    "networkaddress",
    "database",
    "initialcatalog",
    "authentication",
    "userid",
    "uid",
    "user",
    "password",
    "pwd",
    "encrypt",
    "trustservercertificate",
    "connecttimeout",
    "connectiontimeout",
];
/// Read too (`Command Timeout`), or accepted and ignored.
const ALSO_KNOWN: [&str; 3] = ["commandtimeout", "applicationname", "persistsecurityinfo"];

/// ADO.NET keywords this parser does not support but names when it refuses them.
const ADO_NET_KEYWORDS: [&str; 14] = [
    "pooling",
    "maxpoolsize",
    "minpoolsize",
    "multipleactiveresultsets",
    "multisubnetfailover",
    "applicationintent",
    "packetsize",
    "connectretrycount",
    "connectretryinterval",
    "workstationid",
    "integratedsecurity",
    "trustedconnection",
    "failoverpartner",
    "hostnameincertificate",
];

/// A keyword as an error shows it: named when it is one ADO.NET knows, else only described.
/// Other text may be the tail of an unquoted password holding `;` and `=`.
fn keyword(key: &str) -> String {
    if KNOWN.contains(&key) || ALSO_KNOWN.contains(&key) || ADO_NET_KEYWORDS.contains(&key) {
        format!("`{key}`")
    } else {
        format!("a keyword of {} characters (not shown: it may be part of a password)", key.chars().count())
    }
}

/// A value that is not a secret (a port, a flag, a timeout), as an error shows it: bounded.
fn shown(value: &str) -> String {
    const MAX: usize = 40;
    let cut: String = value.chars().take(MAX).collect();
    if cut.len() < value.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// `key=value;...` with ADO.NET quoting (`"..."`, `'...'`, `{...}`, doubled quotes inside);
/// keys are case-insensitive and spaces in them are ignored (`User ID` = `userid`).
fn parse_pairs(text: &str) -> Result<BTreeMap<String, String>, SqlSettingsError> {
    let mut pairs = BTreeMap::new();
    let mut chars = text.chars().peekable();
    let total = text.chars().count();
    loop {
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            chars.next();
            if c == '=' {
                break;
            }
            if c == ';' {
                if key.trim().is_empty() {
                    key.clear();
                    continue;
                }
                // Never shown: a part without `=` is often the rest of a password with a `;`.
                let at = total - chars.clone().count() - key.chars().count() - 1;
                return Err(invalid(format!(
                    "the part at character {at} has no `=` (a value holding `;` must be quoted: \"...\" or '...')"
                )));
            }
            key.push(c);
        }
        let key: String = key
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if key.is_empty() {
            if chars.peek().is_none() {
                return Ok(pairs);
            }
            return Err(invalid("a keyword is empty"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        match chars.peek().copied() {
            Some(open @ ('"' | '\'' | '{')) => {
                chars.next();
                let close = if open == '{' { '}' } else { open };
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == close {
                        if chars.peek() == Some(&close) {
                            chars.next();
                            value.push(c);
                            continue;
                        }
                        closed = true;
                        break;
                    }
                    value.push(c);
                }
                if !closed {
                    return Err(invalid(format!(
                        "the value of {} has no closing {close}",
                        keyword(&key)
                    )));
                }
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                    if !c.is_whitespace() {
                        return Err(invalid(format!(
                            "unexpected text after the quoted value of {}",
                            keyword(&key)
                        )));
                    }
                }
            }
            _ => {
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                }
                value = value.trim().to_string();
            }
        }
        if pairs.insert(key.clone(), value).is_some() {
            return Err(invalid(format!("{} is given twice", keyword(&key))));
        }
    }
}

fn first<'a>(pairs: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| pairs.get(*k))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn boolean(
    pairs: &BTreeMap<String, String>,
    keys: &[&str],
) -> Result<Option<bool>, SqlSettingsError> {
    match first(pairs, keys) {
        None => Ok(None),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(Some(true)),
            "false" | "no" => Ok(Some(false)),
            other => Err(invalid(format!(
                "`{}` must be true or false, got {}",
                keys[0],
                shown(other)
            ))),
        },
    }
}

fn seconds(
    pairs: &BTreeMap<String, String>,
    keys: &[&str],
    default: u64,
) -> Result<Duration, SqlSettingsError> {
    match first(pairs, keys) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
            _ => Err(invalid(format!(
                "`{}` must be a positive number of seconds, got {}",
                keys[0],
                shown(v)
            ))),
        },
    }
}

fn is_azure_sql(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    [
        ".database.windows.net",
        ".database.usgovcloudapi.net",
        ".database.chinacloudapi.cn",
        ".database.cloudapi.de",
    ]
    .iter()
    .any(|suffix| host.ends_with(suffix))
}

impl SqlSettings {
    /// Reads the sink's settings; `None` when `ANOMALY_SQL_CONNECTION_STRING` is unset (the
    /// embedded SQLite store is used).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SqlSettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // Set but empty is a mistake (a Key Vault reference that did not resolve, a cleared
        // app setting), not a choice of SQLite: falling back would store into a per-instance
        // file while every invocation answers 2xx.
        if lookup(CONNECTION_STRING).is_some_and(|v| v.trim().is_empty()) {
            return Err(SqlSettingsError {
                setting: CONNECTION_STRING,
                problem: "is set but empty; remove the setting to use the embedded SQLite store"
                    .into(),
            });
        }
        let Some(text) = get(CONNECTION_STRING) else {
            for knob in [POOL_SIZE, RETRY_BUDGET_MS] {
                if get(knob).is_some() {
                    return Err(SqlSettingsError {
                        setting: knob,
                        problem: format!("is set but {CONNECTION_STRING} is not"),
                    });
                }
            }
            return Ok(None);
        };
        let mut settings = Self::from_connection_string(&text)?;
        if let Some(v) = get(POOL_SIZE) {
            settings.pool_size = match v.trim().parse::<u32>() {
                Ok(n @ 1..=64) => n,
                _ => {
                    return Err(SqlSettingsError {
                        setting: POOL_SIZE,
                        problem: format!("must be a whole number from 1 to 64, got {v:?}"),
                    })
                }
            };
        }
        if let Some(v) = get(RETRY_BUDGET_MS) {
            settings.retry_budget = match v.trim().parse::<u64>() {
                Ok(n) => Duration::from_millis(n),
                Err(_) => {
                    return Err(SqlSettingsError {
                        setting: RETRY_BUDGET_MS,
                        problem: format!("must be a whole number of milliseconds, got {v:?}"),
                    })
                }
            };
        }
        Ok(Some(settings))
    }

    pub fn from_connection_string(text: &str) -> Result<Self, SqlSettingsError> {
        let pairs = parse_pairs(text)?;
        if let Some(unknown) = pairs
            .keys()
            .find(|k| !KNOWN.contains(&k.as_str()) && !ALSO_KNOWN.contains(&k.as_str()))
        {
            return Err(invalid(format!("unsupported keyword {}", keyword(unknown))));
        }
        let server = first(
            &pairs,
            &["server", "datasource", "address", "addr", "networkaddress"],
        )
        .ok_or_else(|| invalid("`Server` is missing"))?;
        let server = server.strip_prefix("tcp:").unwrap_or(server).trim();
        if server.contains('\\') {
            return Err(invalid(
                "named instances (`host\\instance`) are not supported; give `host,port`",
            ));
        }
        let (host, port) = match server.split_once(',') {
            Some((host, port)) => (
                host.trim().to_string(),
                port.trim()
                    .parse::<u16>()
                    .map_err(|_| invalid(format!("`Server` port {} is not a port number", shown(port))))?,
            ),
            None => (server.to_string(), 1433),
        };
        if host.is_empty() {
            return Err(invalid("`Server` has no host"));
        }
        let database = first(&pairs, &["database", "initialcatalog"])
            .ok_or_else(|| invalid("`Database` (or `Initial Catalog`) is missing"))?
            .to_string();
        let user = first(&pairs, &["userid", "uid", "user"]).map(str::to_string);
        let password = first(&pairs, &["password", "pwd"]).map(Secret::new);
        let method = first(&pairs, &["authentication"]).map(|m| {
            m.to_ascii_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        });
        let azure = is_azure_sql(&host);
        let auth = match method.as_deref() {
            Some("active directory managed identity" | "active directory msi") => {
                if password.is_some() {
                    return Err(invalid("`Password` makes no sense with a managed identity"));
                }
                SqlAuth::ManagedIdentity { client_id: user }
            }
            Some("active directory default") => SqlAuth::Default,
            Some("active directory az cli" | "active directory developer tools") => SqlAuth::DeveloperTools,
            Some("sql password" | "sqlpassword") | None => {
                let (Some(user), Some(password)) = (user, password) else {
                    return Err(invalid(
                        "give `Authentication=Active Directory Managed Identity` (Azure), `Active Directory Default` or `Active Directory Az Cli` (az login), or `User Id` and `Password` (the local container)",
                    ));
                };
                if azure {
                    return Err(invalid(
                        "SQL authentication is for the local SQL Server container only; Azure SQL is reached with Entra ID (`Authentication=Active Directory Managed Identity`)",
                    ));
                }
                SqlAuth::SqlPassword { user, password }
            }
            Some(other) => {
                return Err(invalid(format!(
                    "`Authentication` {} is not supported (Active Directory Managed Identity, Active Directory Default, Active Directory Az Cli, Sql Password)",
                    shown(other)
                )))
            }
        };
        let encrypt = first(&pairs, &["encrypt"]).map(str::to_ascii_lowercase);
        match encrypt.as_deref() {
            None | Some("true" | "yes" | "mandatory") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "`Encrypt` {}: TLS is required (leave `Encrypt` out, or set it to true)",
                    shown(other)
                )))
            }
        }
        let trust_server_certificate =
            boolean(&pairs, &["trustservercertificate"])?.unwrap_or(false);
        if trust_server_certificate && azure {
            return Err(invalid(
                "`TrustServerCertificate=true` is refused for Azure SQL: its certificate is verified",
            ));
        }
        Ok(SqlSettings {
            host,
            port,
            database,
            auth,
            trust_server_certificate,
            connect_timeout: seconds(&pairs, &["connecttimeout", "connectiontimeout"], 15)?,
            command_timeout: seconds(&pairs, &["commandtimeout"], 30)?,
            pool_size: 4,
            retry_budget: Duration::from_millis(20_000),
        })
    }

    /// `host,port/database`: where writes go, for logs and `/api/health` (no credentials).
    pub fn target(&self) -> String {
        format!("{},{}/{}", self.host, self.port, self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SqlSettings, SqlSettingsError> {
        SqlSettings::from_connection_string(text)
    }

    #[test]
    fn azure_portal_and_local_container_strings_parse() {
        let s = parse("Server=tcp:srv.database.windows.net,1433;Initial Catalog=anomalies;Encrypt=True;TrustServerCertificate=False;Connection Timeout=30;Authentication=\"Active Directory Default\";").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.database.as_str()),
            ("srv.database.windows.net", 1433, "anomalies")
        );
        assert_eq!(s.auth, SqlAuth::Default);
        assert_eq!(s.connect_timeout, Duration::from_secs(30));
        assert_eq!(s.command_timeout, Duration::from_secs(30));
        assert_eq!(s.target(), "srv.database.windows.net,1433/anomalies");

        let s = parse("Server=srv.database.windows.net;Database=db;Authentication=Active Directory Managed Identity;User Id=1b2c").unwrap();
        assert_eq!(
            s.auth,
            SqlAuth::ManagedIdentity {
                client_id: Some("1b2c".into())
            }
        );
        assert_eq!(s.port, 1433);

        let s = parse("server=localhost,14330; database=anomalies; user id=sa; password={p;a}}ss}; TrustServerCertificate=yes; Command Timeout=5").unwrap();
        assert_eq!(
            s.auth,
            SqlAuth::SqlPassword {
                user: "sa".into(),
                password: Secret::new("p;a}ss")
            }
        );
        assert!(s.trust_server_certificate);
        assert_eq!(s.command_timeout, Duration::from_secs(5));
        assert!(
            !format!("{s:?}").contains("p;a}ss"),
            "password redacted in Debug"
        );
    }

    #[test]
    fn an_unquoted_password_with_a_semicolon_never_shows_in_the_error() {
        // Found by the `connection_string` fuzz target: errors echoed the text after a `;`.
        for text in [
            "Server=localhost;Database=db;User Id=sa;Password=hunter;2secret",
            "Server=localhost;Database=db;User Id=sa;Password=hunter;2secret=x",
            "Server=localhost;Database=db;User Id=sa;Password=hunter;2se cret=x",
            "Server=localhost;Database=db;User Id=sa;Password=hunter;sEcret=x",
        ] {
            let message = parse(text).expect_err(text).to_string();
            assert!(!message.to_lowercase().contains("ecret"), "{message}");
        }
        let long = format!("Server=localhost,{};Database=db", "9".repeat(5000));
        assert!(parse(&long).expect_err("port").to_string().len() < 200);
    }

    #[test]
    fn identity_only_in_azure_and_tls_always() {
        for (text, expected) in [
            ("Server=srv.database.windows.net;Database=db;User Id=sa;Password=x", "local SQL Server container only"),
            ("Server=srv.database.windows.net;Database=db;Authentication=Active Directory Default;TrustServerCertificate=true", "certificate is verified"),
            ("Server=localhost;Database=db;User Id=sa;Password=x;Encrypt=false", "TLS is required"),
            ("Server=localhost;Database=db", "give `Authentication="),
            ("Server=localhost;Database=db;Authentication=Active Directory Password", "not supported"),
            ("Database=db;Authentication=Active Directory Default", "`Server` is missing"),
            ("Server=localhost;Authentication=Active Directory Default", "`Database`"),
            ("Server=localhost,99999;Database=db;Authentication=Active Directory Default", "not a port"),
            ("Server=host\\sqlexpress;Database=db;Authentication=Active Directory Default", "named instances"),
            ("Server=localhost;Database=db;Authentication=Active Directory Default;Pooling=false", "unsupported keyword `pooling`"),
            ("Server=localhost;Database=db;Authentication=Active Directory Default;Connect Timeout=0", "positive number of seconds"),
            ("Server=localhost;Database=db;User Id=sa;Password=\"unterminated", "no closing"),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.contains(CONNECTION_STRING), "{err}");
            assert!(!err.contains("unterminated") && !err.contains("Password=x"), "{err}");
        }
    }

    #[test]
    fn knobs_are_validated_and_need_the_connection_string() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(SqlSettings::from_lookup(lookup(&[])).unwrap(), None);
        let err = SqlSettings::from_lookup(lookup(&[(POOL_SIZE, "8")])).unwrap_err();
        assert_eq!(err.setting, POOL_SIZE);
        let base = "Server=localhost;Database=db;Authentication=Active Directory Az Cli";
        let s = SqlSettings::from_lookup(|n: &str| match n {
            CONNECTION_STRING => Some(base.into()),
            POOL_SIZE => Some("8".into()),
            RETRY_BUDGET_MS => Some("1500".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.pool_size, s.retry_budget),
            (8, Duration::from_millis(1500))
        );
        assert_eq!(s.auth, SqlAuth::DeveloperTools);
        let err = SqlSettings::from_lookup(|n: &str| match n {
            CONNECTION_STRING => Some(base.into()),
            POOL_SIZE => Some("0".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("ANOMALY_SQL_POOL_SIZE"), "{err}");
    }
}
