//! One budget of bytes for everything requests hold: bodies being read or kept, and the records
//! built from verified ones. Counting bytes, not requests, is what bounds memory: a thousand
//! small webhooks and a hundred 2 MiB uploads are not the same load.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::telemetry;

#[derive(Debug, Clone)]
pub struct ByteBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Bytes a request holds; returned to the budget when dropped.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

/// The budget had no room before the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

impl ByteBudget {
    pub fn new(total: usize) -> Self {
        ByteBudget {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total,
        }
    }

    /// Bytes held right now.
    pub fn in_use(&self) -> usize {
        self.total.saturating_sub(self.bytes.available_permits())
    }

    /// An empty reservation, to grow as bytes arrive.
    pub fn empty(&self) -> Reservation {
        Reservation { permit: None }
    }

    /// Adds `n` bytes to `reservation`, waiting for room until `until`. Waiters are served in
    /// order, so a large request is not starved by small ones.
    pub async fn grow(
        &self,
        reservation: &mut Reservation,
        n: usize,
        until: Instant,
    ) -> Result<(), Exhausted> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| Exhausted)?;
        let acquire = self.bytes.clone().acquire_many_owned(n);
        let permit = match tokio::time::timeout_at(until, acquire).await {
            Ok(Ok(permit)) => permit,
            // Timed out, or the semaphore was closed (never done).
            _ => return Err(Exhausted),
        };
        match &mut reservation.permit {
            Some(held) => held.merge(permit),
            None => reservation.permit = Some(permit),
        }
        metrics::gauge!(telemetry::BUFFERED_BYTES).set(self.in_use() as f64);
        Ok(())
    }

    /// [`ByteBudget::grow`] with a wait of at most `wait` from now.
    pub async fn reserve(&self, n: usize, wait: Duration) -> Result<Reservation, Exhausted> {
        let mut r = self.empty();
        self.grow(&mut r, n, Instant::now() + wait).await?;
        Ok(r)
    }
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_come_back_when_a_reservation_is_dropped() {
        let budget = ByteBudget::new(100);
        let a = budget.reserve(60, Duration::ZERO).await.expect("room");
        assert_eq!(budget.in_use(), 60);
        assert_eq!(
            budget.reserve(41, Duration::from_millis(20)).await.err(),
            Some(Exhausted)
        );
        let mut b = budget.reserve(40, Duration::ZERO).await.expect("room");
        assert_eq!(budget.in_use(), 100);
        drop(a);
        budget
            .grow(&mut b, 60, Instant::now())
            .await
            .expect("room again");
        assert_eq!(b.bytes(), 100);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiting_request_gets_room_freed_during_its_wait() {
        let budget = ByteBudget::new(10);
        let held = budget.reserve(10, Duration::ZERO).await.expect("room");
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(5, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        let got = waiter.await.expect("task").expect("room after release");
        assert_eq!(got.bytes(), 5);
    }
}
