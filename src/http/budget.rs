//! One budget of bytes for everything requests hold: bodies being read or kept, and the records
//! built from verified ones. Counting bytes, not requests, is what bounds memory: a thousand
//! small webhooks and a hundred 2 MiB uploads are not the same load.
//!
//! Bodies may take all but `record_room` bytes of it, so the records of bodies already verified
//! always find room eventually: a record waits only for other records, which are being
//! published, never for bodies, which might be waiting for room themselves.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::telemetry;

#[derive(Debug, Clone)]
pub struct ByteBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Every byte: bodies and records.
    all: Arc<Semaphore>,
    /// What bodies may hold at most: `total - record_room`.
    bodies: Arc<Semaphore>,
    total: usize,
}

/// Bytes a request holds; returned to the budget when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Inner>,
    all: Option<OwnedSemaphorePermit>,
    bodies: Option<OwnedSemaphorePermit>,
}

/// The budget had no room before the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

impl ByteBudget {
    /// `record_room` (the largest record) must be below `total`.
    pub fn new(total: usize, record_room: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        ByteBudget {
            inner: Arc::new(Inner {
                all: Arc::new(Semaphore::new(total)),
                bodies: Arc::new(Semaphore::new(total.saturating_sub(record_room))),
                total,
            }),
        }
    }

    /// Bytes held right now.
    pub fn in_use(&self) -> usize {
        self.inner.in_use()
    }

    /// An empty reservation, to grow as bytes arrive.
    pub fn empty(&self) -> Reservation {
        Reservation {
            budget: self.inner.clone(),
            all: None,
            bodies: None,
        }
    }

    /// Adds `n` body bytes to `reservation`, waiting for room until `until`. Waiters are served
    /// in order, so a large request is not starved by small ones.
    pub async fn grow_body(
        &self,
        reservation: &mut Reservation,
        n: usize,
        until: Instant,
    ) -> Result<(), Exhausted> {
        let body = acquire(&self.inner.bodies, n, until).await?;
        let all = acquire(&self.inner.all, n, until).await?;
        merge(&mut reservation.bodies, body);
        merge(&mut reservation.all, all);
        self.inner.report();
        Ok(())
    }

    /// Adds `n` record bytes to `reservation`, waiting for room until `until`.
    pub async fn grow_record(
        &self,
        reservation: &mut Reservation,
        n: usize,
        until: Instant,
    ) -> Result<(), Exhausted> {
        let all = acquire(&self.inner.all, n, until).await?;
        merge(&mut reservation.all, all);
        self.inner.report();
        Ok(())
    }
}

async fn acquire(
    semaphore: &Arc<Semaphore>,
    n: usize,
    until: Instant,
) -> Result<Option<OwnedSemaphorePermit>, Exhausted> {
    if n == 0 {
        return Ok(None);
    }
    let n = u32::try_from(n).map_err(|_| Exhausted)?;
    match tokio::time::timeout_at(until, semaphore.clone().acquire_many_owned(n)).await {
        Ok(Ok(permit)) => Ok(Some(permit)),
        // Timed out, or the semaphore was closed (never done).
        _ => Err(Exhausted),
    }
}

fn merge(held: &mut Option<OwnedSemaphorePermit>, more: Option<OwnedSemaphorePermit>) {
    match (held.as_mut(), more) {
        (Some(h), Some(m)) => h.merge(m),
        (None, more) => *held = more,
        (Some(_), None) => {}
    }
}

impl Inner {
    fn in_use(&self) -> usize {
        self.total.saturating_sub(self.all.available_permits())
    }

    fn report(&self) {
        metrics::gauge!(telemetry::BUFFERED_BYTES).set(self.in_use() as f64);
    }
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.all.as_ref().map_or(0, |p| p.num_permits())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.all.take().is_some() {
            self.bodies.take();
            self.budget.report();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl ByteBudget {
        async fn reserve_body(&self, n: usize, wait: Duration) -> Result<Reservation, Exhausted> {
            let mut r = self.empty();
            self.grow_body(&mut r, n, Instant::now() + wait).await?;
            Ok(r)
        }
    }

    #[tokio::test]
    async fn bytes_come_back_when_a_reservation_is_dropped() {
        let budget = ByteBudget::new(100, 0);
        let a = budget.reserve_body(60, Duration::ZERO).await.expect("room");
        assert_eq!(budget.in_use(), 60);
        assert_eq!(
            budget
                .reserve_body(41, Duration::from_millis(20))
                .await
                .err(),
            Some(Exhausted)
        );
        let mut b = budget.reserve_body(40, Duration::ZERO).await.expect("room");
        assert_eq!(budget.in_use(), 100);
        drop(a);
        budget
            .grow_body(&mut b, 60, Instant::now())
            .await
            .expect("room again");
        assert_eq!(b.bytes(), 100);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiting_request_gets_room_freed_during_its_wait() {
        let budget = ByteBudget::new(10, 0);
        let held = budget.reserve_body(10, Duration::ZERO).await.expect("room");
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve_body(5, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        let got = waiter.await.expect("task").expect("room after release");
        assert_eq!(got.bytes(), 5);
    }

    #[tokio::test]
    async fn bodies_filling_their_share_never_starve_a_record() {
        // Bodies may hold 60 of 100; a record of up to 40 always fits beside them.
        let budget = ByteBudget::new(100, 40);
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(budget.reserve_body(10, Duration::ZERO).await.expect("room"));
        }
        assert_eq!(
            budget
                .reserve_body(1, Duration::from_millis(20))
                .await
                .err(),
            Some(Exhausted),
            "bodies are at their share"
        );
        let mut first = held.pop().expect("one");
        budget
            .grow_record(&mut first, 40, Instant::now() + Duration::from_millis(20))
            .await
            .expect("a record always finds room");
        assert_eq!(budget.in_use(), 100);
    }
}
