//! A bounded fan-out bus: every subscriber (sink) gets every event through its own bounded
//! queue. A full queue never blocks the publisher or the other subscribers: the event is
//! dropped for that subscriber only and counted, and the subscriber receives the count as a
//! [`Delivery::Lost`] before its next event. Losses upstream of the bus (a kernel ring buffer)
//! are reported with [`Bus::report_loss`], which never drops: each subscriber receives them as
//! [`Delivery::LostAt`]. Nothing is dropped silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// What a subscriber receives.
#[derive(Debug)]
pub enum Delivery<T> {
    /// The next event.
    Event(Arc<T>),
    /// This many events were dropped for this subscriber because its queue was full.
    Lost(u64),
    /// This many events were lost upstream, at the named source.
    LostAt(String, u64),
}

/// Upstream losses waiting to be delivered, per source, summed.
type PendingLosses = Arc<Mutex<Vec<(String, u64)>>>;

struct Subscription<T> {
    name: String,
    tx: mpsc::Sender<Arc<T>>,
    lost: Arc<AtomicU64>,
    lost_total: Arc<AtomicU64>,
    upstream: PendingLosses,
}

/// The publishing side.
pub struct Bus<T> {
    subs: Vec<Subscription<T>>,
    capacity: usize,
}

impl<T> std::fmt::Debug for Bus<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field(
                "subscribers",
                &self.subs.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// The receiving side of one subscriber.
pub struct Subscriber<T> {
    name: String,
    rx: mpsc::Receiver<Arc<T>>,
    lost: Arc<AtomicU64>,
    upstream: PendingLosses,
}

impl<T> std::fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T> Bus<T> {
    /// A bus whose subscribers each queue at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            subs: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds a subscriber named `name` (used in `lost` events: `bus:<name>`).
    pub fn subscribe(&mut self, name: impl Into<String>) -> Subscriber<T> {
        let name = name.into();
        let (tx, rx) = mpsc::channel(self.capacity);
        let lost = Arc::new(AtomicU64::new(0));
        let upstream = PendingLosses::default();
        self.subs.push(Subscription {
            name: name.clone(),
            tx,
            lost: Arc::clone(&lost),
            lost_total: Arc::new(AtomicU64::new(0)),
            upstream: Arc::clone(&upstream),
        });
        Subscriber {
            name,
            rx,
            lost,
            upstream,
        }
    }

    /// Sends `event` to every subscriber without waiting; returns how many accepted it.
    pub fn publish(&self, event: T) -> usize {
        let event = Arc::new(event);
        let mut delivered = 0;
        for sub in &self.subs {
            match sub.tx.try_send(Arc::clone(&event)) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_) | mpsc::error::TrySendError::Closed(_)) => {
                    sub.lost.fetch_add(1, Ordering::Relaxed);
                    sub.lost_total.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        delivered
    }

    /// Reports `count` events lost upstream at `source` to every subscriber. Never dropped:
    /// counts of the same source are summed until the subscriber reads them.
    pub fn report_loss(&self, source: &str, count: u64) {
        if count == 0 {
            return;
        }
        for sub in &self.subs {
            let mut pending = sub
                .upstream
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match pending.iter_mut().find(|(s, _)| s == source) {
                Some((_, n)) => *n += count,
                None => pending.push((source.to_owned(), count)),
            }
        }
    }

    /// Events dropped so far, per subscriber name.
    pub fn lost_totals(&self) -> Vec<(String, u64)> {
        self.subs
            .iter()
            .map(|s| (s.name.clone(), s.lost_total.load(Ordering::Relaxed)))
            .collect()
    }
}

impl<T> Subscriber<T> {
    /// The subscriber's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next delivery; a pending loss count comes first. `None` once the bus is dropped
    /// and everything (losses included) was delivered.
    pub async fn recv(&mut self) -> Option<Delivery<T>> {
        if let Some(d) = self.take_losses() {
            return Some(d);
        }
        match self.rx.recv().await {
            Some(ev) => Some(Delivery::Event(ev)),
            None => self.take_losses(),
        }
    }

    /// The next delivery if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery<T>> {
        if let Some(d) = self.take_losses() {
            return Some(d);
        }
        self.rx.try_recv().ok().map(Delivery::Event)
    }

    fn take_losses(&self) -> Option<Delivery<T>> {
        let upstream = self
            .upstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        if let Some((source, n)) = upstream {
            return Some(Delivery::LostAt(source, n));
        }
        match self.lost.swap(0, Ordering::Relaxed) {
            0 => None,
            n => Some(Delivery::Lost(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_subscriber_loses_and_counts_while_fast_one_gets_everything() {
        let mut bus = Bus::new(4);
        let mut fast = bus.subscribe("fast");
        let mut slow = bus.subscribe("slow");
        let mut got_fast = Vec::new();
        for i in 0..10u32 {
            bus.publish(i);
            // The fast subscriber keeps up; the slow one reads nothing yet.
            while let Some(Delivery::Event(e)) = fast.try_recv() {
                got_fast.push(*e);
            }
        }
        assert_eq!(got_fast, (0..10).collect::<Vec<_>>());
        assert_eq!(
            bus.lost_totals(),
            vec![("fast".into(), 0), ("slow".into(), 6)]
        );
        drop(bus);
        let mut slow_seen = Vec::new();
        let mut lost = 0;
        while let Some(d) = slow.recv().await {
            match d {
                Delivery::Event(e) => slow_seen.push(*e),
                Delivery::Lost(n) => lost += n,
                Delivery::LostAt(..) => unreachable!("no upstream loss reported"),
            }
        }
        assert_eq!(slow_seen, vec![0, 1, 2, 3]);
        assert_eq!(lost, 6, "every dropped event is reported");
    }

    #[tokio::test]
    async fn upstream_losses_reach_even_a_full_subscriber() {
        let mut bus = Bus::new(1);
        let mut sub = bus.subscribe("s");
        bus.publish(1u32);
        bus.publish(2u32); // dropped: the queue holds one
        bus.report_loss("kernel_ringbuf", 5);
        bus.report_loss("kernel_ringbuf", 2);
        drop(bus);
        let mut got = Vec::new();
        while let Some(d) = sub.recv().await {
            got.push(match d {
                Delivery::Event(e) => format!("event {e}"),
                Delivery::Lost(n) => format!("lost {n}"),
                Delivery::LostAt(s, n) => format!("{s} {n}"),
            });
        }
        assert_eq!(got, vec!["kernel_ringbuf 7", "lost 1", "event 1"]);
    }
}
