//! What went wrong talking to SQL, and whether trying again can help.
//!
//! Transient: the documented Azure SQL transient error numbers, deadlocks, lost connections,
//! timeouts, a pool with no free connection, a token the identity endpoint did not hand out.
//! Everything else (a missing table, a permission, a constraint, bad data) is permanent: the
//! invocation fails with 500 and the log names the error number.

use crate::{BoxError, StoreError};

/// Azure SQL's transient error numbers (Microsoft's list for retry logic, plus deadlock victim
/// 1205 and the unique-key races 2601/2627 that a retry resolves: the retry sees the row and
/// inserts nothing).
pub const TRANSIENT_ERROR_NUMBERS: [u32; 24] = [
    64, 233, 615, 926, 1205, 2601, 2627, 4060, 4221, 10053, 10054, 10060, 10928, 10929, 40143,
    40197, 40501, 40540, 40613, 42108, 42109, 49918, 49919, 49920,
];

pub fn is_transient_number(number: u32) -> bool {
    TRANSIENT_ERROR_NUMBERS.contains(&number)
}

/// A failed SQL operation, classified, with its error number when the server sent one.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    pub transient: bool,
    pub number: Option<u32>,
    pub message: String,
    #[source]
    pub source: Option<BoxError>,
}

impl SqlError {
    pub fn transient(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        SqlError {
            transient: true,
            number: None,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        SqlError {
            transient: false,
            number: None,
            message: message.into(),
            source: None,
        }
    }

    /// As a store error, with what was being done.
    pub fn into_store_error(self, doing: &str) -> StoreError {
        let number = self
            .number
            .map(|n| format!(" (SQL error {n})"))
            .unwrap_or_default();
        let context = format!("Azure SQL, {doing}{number}: {}", self.message);
        let source: BoxError = Box::new(self);
        if source
            .downcast_ref::<SqlError>()
            .is_some_and(|e| e.transient)
        {
            StoreError::Transient {
                context,
                source: Some(source),
            }
        } else {
            StoreError::Permanent {
                context,
                source: Some(source),
            }
        }
    }
}

impl From<tiberius::error::Error> for SqlError {
    fn from(error: tiberius::error::Error) -> Self {
        use tiberius::error::Error as E;
        let (transient, number) = match &error {
            E::Server(token) => (is_transient_number(token.code()), Some(token.code())),
            // Connection lost or reset, or a command timeout (`TimedOut`).
            E::Io { .. } => (true, None),
            // A redirect that was not followed here: a new connection follows it.
            E::Routing { .. } => (true, None),
            _ => (false, None),
        };
        SqlError {
            transient,
            number,
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_table_of_transient_numbers_is_covered() {
        for n in [
            926, 4060, 4221, 615, 1205, 10928, 10929, 40197, 40501, 40613, 49918, 49919, 49920,
        ] {
            assert!(is_transient_number(n), "{n}");
        }
        // Permanent: invalid object, permission denied, string truncation, conversion, login failed.
        for n in [208, 229, 2628, 8114, 18456, 547] {
            assert!(!is_transient_number(n), "{n}");
        }
    }

    #[test]
    fn io_and_routing_errors_are_transient_others_permanent() {
        let io = tiberius::error::Error::Io {
            kind: std::io::ErrorKind::TimedOut,
            message: "timed out".into(),
        };
        assert!(SqlError::from(io).transient);
        let routing = tiberius::error::Error::Routing {
            host: "gw".into(),
            port: 11000,
        };
        assert!(SqlError::from(routing).transient);
        let conversion = tiberius::error::Error::Conversion("bad".into());
        let error = SqlError::from(conversion);
        assert!(!error.transient);
        let store = error.into_store_error("inserting anomalies");
        assert!(!store.is_transient());
        assert!(
            store.to_string().contains("Azure SQL, inserting anomalies"),
            "{store}"
        );
    }

    #[test]
    fn the_error_number_is_in_the_store_error() {
        let error = SqlError {
            transient: false,
            number: Some(208),
            message: "Invalid object name 'dbo.anomalies'.".into(),
            source: None,
        };
        let store = error.into_store_error("inserting anomalies");
        assert!(store.to_string().contains("(SQL error 208)"), "{store}");
        assert!(std::error::Error::source(&store).is_some());
    }
}
