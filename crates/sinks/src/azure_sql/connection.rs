//! Connections: TLS required, Entra ID token or SQL login, connect and command timeouts, Azure
//! gateway redirects followed, and a small bb8 pool that drops a connection after any error
//! (bb8-tiberius and deadpool-tiberius still pin tiberius 0.12, hence this manager).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tiberius::{AuthMethod, Client, ColumnData, Config, EncryptionLevel, Query};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use super::errors::SqlError;
use super::migrate::Session;
use super::settings::{SqlAuth, SqlSettings};
use super::statements::{Cell, Param, Statement};
use super::token::TokenCache;

pub type Tds = Client<Compat<TcpStream>>;
/// Azure SQL's gateway redirects once to the database's node; more than this is a loop.
const MAX_REDIRECTS: usize = 3;

/// The rows of a result set.
pub type Rows = Vec<Vec<Cell>>;
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Rows, SqlError>> + Send + 'a>>;

/// Runs statements, one round trip each. The pool in production; a recording double in tests.
pub trait Executor: Send + Sync + 'static {
    fn run<'a>(&'a self, statement: &'a Statement) -> RunFuture<'a>;
}

/// Opens connections for the settings.
pub struct Connector {
    settings: SqlSettings,
    tokens: Option<Arc<TokenCache>>,
}

impl Connector {
    pub fn new(settings: SqlSettings, tokens: Option<Arc<TokenCache>>) -> Self {
        Connector { settings, tokens }
    }

    async fn config(&self) -> Result<Config, SqlError> {
        let s = &self.settings;
        let mut config = Config::new();
        config.host(&s.host);
        config.port(s.port);
        config.database(&s.database);
        config.application_name("sensor-anomaly");
        config.encryption(EncryptionLevel::Required);
        if s.trust_server_certificate {
            config.trust_cert();
        }
        config.handshake_timeout(Some(s.connect_timeout));
        config.command_timeout(Some(s.command_timeout));
        let auth = match (&s.auth, &self.tokens) {
            (SqlAuth::SqlPassword { user, password }, _) => {
                AuthMethod::sql_server(user, password.expose())
            }
            (_, Some(tokens)) => {
                let token = tokens.token().await.map_err(|e| {
                    SqlError::transient("cannot get an Entra ID token for Azure SQL", e)
                })?;
                AuthMethod::aad_token(token.expose())
            }
            (_, None) => {
                return Err(SqlError::permanent(
                    "no credential for Entra ID authentication",
                ))
            }
        };
        config.authentication(auth);
        Ok(config)
    }

    /// A new logged-in connection, following gateway redirects.
    pub async fn open(&self) -> Result<Tds, SqlError> {
        let mut config = self.config().await?;
        let timeout = self.settings.connect_timeout;
        for _ in 0..=MAX_REDIRECTS {
            let addr = config.get_addr();
            let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
                Ok(Ok(tcp)) => tcp,
                Ok(Err(e)) => {
                    return Err(SqlError::transient(format!("cannot connect to {addr}"), e))
                }
                Err(elapsed) => {
                    return Err(SqlError::transient(
                        format!("connecting to {addr} timed out"),
                        elapsed,
                    ))
                }
            };
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(timeout, Client::connect(config.clone(), tcp.compat_write()))
                .await
            {
                Ok(Ok(client)) => return Ok(client),
                Ok(Err(tiberius::error::Error::Routing { host, port })) => {
                    tracing::debug!(%host, port, "Azure SQL gateway redirect");
                    config.host(host);
                    config.port(port);
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(elapsed) => {
                    return Err(SqlError::transient(
                        format!("logging in to {addr} timed out"),
                        elapsed,
                    ))
                }
            }
        }
        Err(SqlError::permanent(format!(
            "more than {MAX_REDIRECTS} gateway redirects"
        )))
    }
}

/// A pooled connection; `broken` after any error, so the pool drops it instead of reusing a
/// session left in an unknown state (mid-result, open transaction).
pub struct PooledConnection {
    client: Tds,
    broken: bool,
}

/// A pooled session that runs statements: a TDS connection here, a stand-in in tests (no
/// server), so that the pool's handling of a cut-off statement is tested on the real executor.
pub trait StatementSession: Send + 'static {
    fn execute<'a>(&'a mut self, statement: &'a Statement) -> RunFuture<'a>;
    /// Set while the session may be mid-statement; the pool drops a broken session.
    fn broken(&mut self) -> &mut bool;
}

impl StatementSession for PooledConnection {
    fn execute<'a>(&'a mut self, statement: &'a Statement) -> RunFuture<'a> {
        Box::pin(execute(&mut self.client, statement.sql, &statement.params))
    }

    fn broken(&mut self) -> &mut bool {
        &mut self.broken
    }
}

impl bb8::ManageConnection for Connector {
    type Connection = PooledConnection;
    type Error = SqlError;

    async fn connect(&self) -> Result<PooledConnection, SqlError> {
        Ok(PooledConnection {
            client: self.open().await?,
            broken: false,
        })
    }

    async fn is_valid(&self, conn: &mut PooledConnection) -> Result<(), SqlError> {
        conn.client
            .simple_query("SELECT 1")
            .await?
            .into_row()
            .await?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut PooledConnection) -> bool {
        conn.broken
    }
}

/// Keeps the pool's last connection error: bb8 retries connecting until its timeout and then
/// reports only the timeout, which would hide *why* (refused, login failed, no token).
#[derive(Debug, Clone, Default)]
struct LastConnectError(Arc<std::sync::Mutex<Option<String>>>);

impl bb8::ErrorSink<SqlError> for LastConnectError {
    fn sink(&self, error: SqlError) {
        let text = match std::error::Error::source(&error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        };
        tracing::debug!(error = %text, "SQL connection attempt failed");
        if let Ok(mut last) = self.0.lock() {
            *last = Some(text);
        }
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<SqlError>> {
        Box::new(self.clone())
    }
}

impl LastConnectError {
    fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut last| last.take())
    }
}

/// The executor over the pool; counts statements sent (one per round trip).
pub struct PoolExecutor<M: bb8::ManageConnection = Connector> {
    pool: bb8::Pool<M>,
    sent: AtomicU64,
    last_connect_error: LastConnectError,
    wait: Duration,
}

impl<M> PoolExecutor<M>
where
    M: bb8::ManageConnection<Error = SqlError>,
    M::Connection: StatementSession,
{
    /// Builds the pool lazily: start-up does not fail when the database is briefly away (the
    /// health endpoint and the invocations report it instead).
    pub fn new(connector: M, size: u32, wait: Duration) -> Self {
        let last_connect_error = LastConnectError::default();
        let pool = bb8::Pool::builder()
            .error_sink(Box::new(last_connect_error.clone()))
            .max_size(size)
            .min_idle(None)
            .connection_timeout(wait)
            // Tokens expire; recycle sessions well before a day-old login could matter.
            .max_lifetime(Some(Duration::from_secs(30 * 60)))
            .idle_timeout(Some(Duration::from_secs(10 * 60)))
            .test_on_check_out(false)
            .build_unchecked(connector);
        PoolExecutor {
            pool,
            sent: AtomicU64::new(0),
            last_connect_error,
            wait,
        }
    }

    pub fn statements_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl<M> Executor for PoolExecutor<M>
where
    M: bb8::ManageConnection<Error = SqlError>,
    M::Connection: StatementSession,
{
    fn run<'a>(&'a self, statement: &'a Statement) -> RunFuture<'a> {
        Box::pin(async move {
            let mut conn = self.pool.get().await.map_err(|e| match e {
                bb8::RunError::User(e) => e,
                bb8::RunError::TimedOut => SqlError::transient(
                    format!(
                        "no SQL connection within {} s (last attempt: {})",
                        self.wait.as_secs_f64(),
                        self.last_connect_error
                            .take()
                            .unwrap_or_else(|| "all connections busy".into())
                    ),
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ),
            })?;
            self.sent.fetch_add(1, Ordering::Relaxed);
            // Broken until the statement completes cleanly: a future dropped mid-statement (the
            // host cancelled the invocation, a timeout fired) never reaches the line after
            // `await`, and a session returned with half a result set unread would hand its next
            // user a protocol error, classified as permanent.
            *conn.broken() = true;
            let result = conn.execute(statement).await;
            *conn.broken() = result.is_err();
            result
        })
    }
}

/// One statement (an RPC with parameters), the rows of its last result set that has rows.
async fn execute(
    client: &mut Tds,
    sql: &str,
    params: &[Param],
) -> Result<Vec<Vec<Cell>>, SqlError> {
    let mut query = Query::new(sql);
    for param in params {
        match param {
            Param::Text(v) => query.bind(v.as_deref()),
            Param::BigInt(v) => query.bind(*v),
        }
    }
    let results = query.query(client).await?.into_results().await?;
    Ok(last_rows(results))
}

fn last_rows(results: Vec<Vec<tiberius::Row>>) -> Vec<Vec<Cell>> {
    results
        .into_iter()
        .rev()
        .find(|rows| !rows.is_empty())
        .unwrap_or_default()
        .into_iter()
        .map(|row| row.into_iter().map(cell).collect())
        .collect()
}

fn cell(data: ColumnData<'static>) -> Cell {
    match data {
        ColumnData::U8(Some(v)) => Cell::Int(v.into()),
        ColumnData::I16(Some(v)) => Cell::Int(v.into()),
        ColumnData::I32(Some(v)) => Cell::Int(v.into()),
        ColumnData::I64(Some(v)) => Cell::Int(v),
        ColumnData::Bit(Some(v)) => Cell::Int(v.into()),
        ColumnData::F32(Some(v)) => Cell::Float(v.into()),
        ColumnData::F64(Some(v)) => Cell::Float(v),
        ColumnData::String(Some(v)) => Cell::Text(v.into_owned()),
        ColumnData::U8(None)
        | ColumnData::I16(None)
        | ColumnData::I32(None)
        | ColumnData::I64(None)
        | ColumnData::Bit(None)
        | ColumnData::F32(None)
        | ColumnData::F64(None)
        | ColumnData::String(None) => Cell::Null,
        other => Cell::Text(format!("{other:?}")),
    }
}

/// Migrations run on one dedicated connection, as SQL batches (not RPCs), so the transaction a
/// batch opens stays open for the next one.
pub struct BatchSession(pub Tds);

impl Session for BatchSession {
    async fn run(&mut self, sql: &str) -> Result<Vec<Vec<Cell>>, SqlError> {
        let results = self.0.simple_query(sql).await?.into_results().await?;
        Ok(last_rows(results))
    }
}
