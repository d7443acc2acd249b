//! The store over a recording executor double: what is sent per call, retries, and how
//! failures are classified. The real server runs the contract suite (crates/tools/tests/it/azure_sql.rs,
//! gated on ANOMALY_TEST_SQL_CONNECTION_STRING).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use super::connection::{Executor, RunFuture};
use super::errors::SqlError;
use super::retry::RetryPolicy;
use super::statements::{Cell, Param, Statement, HISTORY, INSERT_ANOMALIES, PING};
use super::*;
use domain::Lineage;

type Reply = Result<Vec<Vec<Cell>>, SqlError>;

/// A test double at the boundary of what cannot run here (a SQL Server): records each
/// statement and answers from a script.
#[derive(Default)]
struct RecordingExecutorDouble {
    sent: Mutex<Vec<Statement>>,
    replies: Mutex<VecDeque<Reply>>,
}

impl RecordingExecutorDouble {
    fn answering(replies: Vec<Reply>) -> Arc<Self> {
        Arc::new(RecordingExecutorDouble {
            sent: Mutex::default(),
            replies: Mutex::new(replies.into()),
        })
    }

    fn sent(&self) -> Vec<Statement> {
        self.sent.lock().unwrap().clone()
    }
}

impl Executor for RecordingExecutorDouble {
    fn run<'a>(&'a self, statement: &'a Statement) -> RunFuture<'a> {
        self.sent.lock().unwrap().push(statement.clone());
        let reply = self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(Vec::new()));
        Box::pin(async move { reply })
    }
}

fn store(executor: Arc<RecordingExecutorDouble>) -> AzureSqlStore {
    let retry = RetryPolicy {
        budget: Duration::from_millis(200),
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    AzureSqlStore::with_executor(executor, retry, "localhost,1433/test".into())
}

fn row(i: usize) -> AnomalyRow {
    AnomalyRow {
        device_id: format!("d{}", i % 7),
        window_end: format!("2026-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60),
        model_version: "v1".into(),
        score: 2.0,
        threshold: 1.0,
        severity: domain::Severity::Medium,
        contributions: json!({"a": 2.0}),
        features: json!({"a_mean": 1.0}),
        top_channel: "a".into(),
        explanation: "a is off".into(),
        lineage: Lineage::default(),
        inserted_at: None,
    }
}

fn count(n: i64) -> Reply {
    Ok(vec![vec![Cell::Int(n)]])
}

fn sql_error(number: u32, transient: bool) -> SqlError {
    SqlError {
        transient,
        number: Some(number),
        message: format!("server error {number}"),
        source: None,
    }
}

#[tokio::test]
async fn one_invocation_is_one_statement_whatever_the_batch_size() {
    for n in [1usize, 100, 5000] {
        let executor = RecordingExecutorDouble::answering(vec![count(n as i64)]);
        let store = store(executor.clone());
        let rows: Vec<AnomalyRow> = (0..n).map(row).collect();
        assert_eq!(store.insert(rows).await.unwrap(), n);
        let sent = executor.sent();
        assert_eq!(sent.len(), 1, "{n} rows");
        assert_eq!(sent[0].sql, INSERT_ANOMALIES);
        assert_eq!(sent[0].params.len(), 1);
    }
    // Nothing to store: nothing sent.
    let executor = RecordingExecutorDouble::answering(vec![]);
    assert_eq!(store(executor.clone()).insert(Vec::new()).await.unwrap(), 0);
    assert!(executor.sent().is_empty());
}

#[tokio::test]
async fn transient_errors_are_retried_within_the_budget_then_reported_as_transient() {
    let executor = RecordingExecutorDouble::answering(vec![
        Err(sql_error(40613, true)),
        Err(sql_error(1205, true)),
        count(3),
    ]);
    let rows: Vec<AnomalyRow> = (0..3).map(row).collect();
    assert_eq!(
        store(executor.clone()).insert(rows.clone()).await.unwrap(),
        3
    );
    assert_eq!(executor.sent().len(), 3, "the same statement, re-sent");

    let always_down: Vec<Reply> = (0..1000).map(|_| Err(sql_error(40501, true))).collect();
    let executor = RecordingExecutorDouble::answering(always_down);
    let error = store(executor.clone()).insert(rows).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("SQL error 40501"), "{error}");
    assert!(executor.sent().len() >= 2);
}

#[tokio::test]
async fn permanent_errors_fail_at_once_with_their_number() {
    let executor = RecordingExecutorDouble::answering(vec![Err(sql_error(208, false))]);
    let error = store(executor.clone())
        .insert(vec![row(1)])
        .await
        .unwrap_err();
    assert!(!error.is_transient());
    assert!(error.to_string().contains("SQL error 208"), "{error}");
    assert_eq!(executor.sent().len(), 1);
    // Bad data never reaches the server.
    let mut bad = row(1);
    bad.window_end = "soon".into();
    let executor = RecordingExecutorDouble::answering(vec![]);
    assert!(store(executor.clone()).insert(vec![bad]).await.is_err());
    assert!(executor.sent().is_empty());
}

#[tokio::test]
async fn history_and_ping_send_their_statements() {
    let stored = vec![
        Cell::Text("d1".into()),
        Cell::Text("2026-01-01T00:01:00Z".into()),
        Cell::Text("v1".into()),
        Cell::Float(2.0),
        Cell::Float(1.0),
        Cell::Text("medium".into()),
        Cell::Text("{\"a\":2.0}".into()),
        Cell::Text("{\"a_mean\":1.0}".into()),
        Cell::Text("a".into()),
        Cell::Text("a is off".into()),
        Cell::Null,
        Cell::Null,
        Cell::Null,
        Cell::Null,
        Cell::Text("2026-01-01T00:02:00Z".into()),
    ];
    let executor = RecordingExecutorDouble::answering(vec![Ok(vec![stored]), count(1), count(0)]);
    let store = store(executor.clone());
    let rows = store
        .history(HistoryQuery {
            device_id: Some("d1".into()),
            since: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let mut expected = row(60);
    expected.device_id = "d1".into();
    expected.inserted_at = Some("2026-01-01T00:02:00Z".into());
    assert_eq!(rows[0], expected);
    store.ping().await.unwrap();
    let error = store.ping().await.unwrap_err();
    assert!(error.to_string().contains("may not insert"), "{error}");
    let sent = executor.sent();
    assert_eq!(sent[0].sql, HISTORY);
    assert_eq!(sent[0].params[1], Param::Text(Some("d1".into())));
    assert_eq!((sent[1].sql, sent[2].sql), (PING, PING));
    assert_eq!(store.kind(), crate::StoreKind::AzureSql);
}

/// A stand-in for a SQL session (no server here) under the real `PoolExecutor` and bb8 pool:
/// what happens to a session whose statement is cut off is the production code path.
mod cancelled_statements {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use crate::azure_sql::connection::{
        Executor, PoolExecutor, RunFuture, StatementSession,
    };
    use crate::azure_sql::errors::SqlError;
    use crate::azure_sql::statements::{self, Cell, Statement};

    struct StandInSession {
        id: usize,
        broken: bool,
        hang: Arc<AtomicBool>,
        fail: Arc<AtomicBool>,
    }

    impl StatementSession for StandInSession {
        fn execute<'a>(&'a mut self, _: &'a Statement) -> RunFuture<'a> {
            let (id, hang, fail) = (self.id, self.hang.load(Ordering::SeqCst), self.fail.load(Ordering::SeqCst));
            Box::pin(async move {
                if hang {
                    // The server is still sending rows when the invocation is cancelled.
                    std::future::pending::<()>().await;
                }
                if fail {
                    return Err(SqlError::permanent("stand-in failure"));
                }
                Ok(vec![vec![Cell::Int(id as i64)]])
            })
        }

        fn broken(&mut self) -> &mut bool {
            &mut self.broken
        }
    }

    #[derive(Default)]
    struct StandInManager {
        opened: AtomicUsize,
        hang: Arc<AtomicBool>,
        fail: Arc<AtomicBool>,
    }

    impl bb8::ManageConnection for StandInManager {
        type Connection = StandInSession;
        type Error = SqlError;

        async fn connect(&self) -> Result<StandInSession, SqlError> {
            Ok(StandInSession {
                id: self.opened.fetch_add(1, Ordering::SeqCst),
                broken: false,
                hang: self.hang.clone(),
                fail: self.fail.clone(),
            })
        }

        async fn is_valid(&self, _: &mut StandInSession) -> Result<(), SqlError> {
            Ok(())
        }

        fn has_broken(&self, conn: &mut StandInSession) -> bool {
            conn.broken
        }
    }

    #[tokio::test]
    async fn a_statement_cancelled_mid_flight_never_returns_its_session_to_the_pool_with_a_stand_in_session(
    ) {
        let manager = StandInManager::default();
        let (hang, fail) = (manager.hang.clone(), manager.fail.clone());
        let executor = PoolExecutor::new(manager, 1, Duration::from_secs(5));
        let ping = statements::ping();
        let session = |rows: Vec<Vec<Cell>>| rows[0][0].clone();
        assert_eq!(session(executor.run(&ping).await.unwrap()), Cell::Int(0));
        assert_eq!(session(executor.run(&ping).await.unwrap()), Cell::Int(0), "a clean session is reused");

        hang.store(true, Ordering::SeqCst);
        let cut_off = tokio::time::timeout(Duration::from_millis(20), executor.run(&ping)).await;
        assert!(cut_off.is_err(), "the statement was cut off");
        hang.store(false, Ordering::SeqCst);
        assert_eq!(
            session(executor.run(&ping).await.unwrap()),
            Cell::Int(1),
            "the half-used session was dropped and a new one opened"
        );

        fail.store(true, Ordering::SeqCst);
        assert!(executor.run(&ping).await.is_err());
        fail.store(false, Ordering::SeqCst);
        assert_eq!(session(executor.run(&ping).await.unwrap()), Cell::Int(2), "a failed one too");
        assert_eq!(executor.statements_sent(), 6);
    }
}
