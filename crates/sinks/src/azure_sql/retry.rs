//! Retrying transient failures inside the invocation: exponential backoff with full jitter,
//! bounded by a time budget. Past the budget the error goes back to the caller, the invocation
//! answers 503 and the host's retry policy takes over (so the two never multiply unbounded).

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;

use super::errors::SqlError;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub budget: Duration,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn within(budget: Duration) -> Self {
        RetryPolicy {
            budget,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }

    /// The most the `attempt`-th retry (0-based) may wait: doubling, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.first_delay
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.max_delay)
    }

    /// Runs `operation` until it succeeds, fails permanently, or the next wait would pass the
    /// budget. Returns the last error and how many attempts were made.
    pub async fn run<T, F, Fut>(&self, mut operation: F) -> Result<T, (SqlError, u32)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SqlError>>,
    {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let error = match operation().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            attempt += 1;
            if !error.transient {
                return Err((error, attempt));
            }
            let ceiling = self.ceiling(attempt - 1);
            // Full jitter: instances retrying the same outage spread out instead of stampeding.
            let delay = rand::rng().random_range(Duration::ZERO..=ceiling);
            if started.elapsed() + delay > self.budget {
                return Err((error, attempt));
            }
            tracing::warn!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                number = ?error.number,
                "transient SQL error; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient() -> SqlError {
        SqlError {
            transient: true,
            number: Some(40613),
            message: "database unavailable".into(),
            source: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::within(Duration::from_secs(5));
        let ceilings: Vec<u128> = (0..7).map(|a| policy.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(policy.ceiling(40), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            budget: Duration::from_secs(5),
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        };
        let result = policy
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(transient())
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried_and_the_budget_bounds_transient_ones() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::within(Duration::from_secs(5));
        let (error, attempts) = policy
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(SqlError::permanent("Invalid object name"))
            })
            .await
            .unwrap_err();
        assert!(!error.transient);
        assert_eq!((attempts, calls.load(Ordering::SeqCst)), (1, 1));

        let policy = RetryPolicy {
            budget: Duration::from_millis(150),
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(40),
        };
        let started = Instant::now();
        let (error, attempts) = policy
            .run(|| async { Err::<(), _>(transient()) })
            .await
            .unwrap_err();
        assert!(error.transient && attempts >= 2, "{attempts}");
        // Generous: this checks that it stops, not how fast.
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
