//! A bounded fan-out bus: every subscriber (sink) gets every event through its own bounded
//! queue. A full queue never blocks the publisher or the other subscribers: the event is
//! dropped for that subscriber only and counted, and the subscriber receives the count as a
//! [`Delivery::Lost`] before its next event. Nothing is dropped silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// What a subscriber receives.
#[derive(Debug)]
pub enum Delivery<T> {
    /// The next event.
    Event(Arc<T>),
    /// This many events were dropped for this subscriber because its queue was full.
    Lost(u64),
}

struct Subscription<T> {
    name: String,
    tx: mpsc::Sender<Arc<T>>,
    lost: Arc<AtomicU64>,
    lost_total: Arc<AtomicU64>,
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
        self.subs.push(Subscription {
            name: name.clone(),
            tx,
            lost: Arc::clone(&lost),
            lost_total: Arc::new(AtomicU64::new(0)),
        });
        Subscriber { name, rx, lost }
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
        if let Some(n) = self.take_lost() {
            return Some(Delivery::Lost(n));
        }
        match self.rx.recv().await {
            Some(ev) => Some(Delivery::Event(ev)),
            None => self.take_lost().map(Delivery::Lost),
        }
    }

    /// The next delivery if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery<T>> {
        if let Some(n) = self.take_lost() {
            return Some(Delivery::Lost(n));
        }
        self.rx.try_recv().ok().map(Delivery::Event)
    }

    fn take_lost(&self) -> Option<u64> {
        match self.lost.swap(0, Ordering::Relaxed) {
            0 => None,
            n => Some(n),
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
            }
        }
        assert_eq!(slow_seen, vec![0, 1, 2, 3]);
        assert_eq!(lost, 6, "every dropped event is reported");
    }
}
