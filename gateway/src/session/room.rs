//! The gateway's room for sends and forwards appended and not yet answered
//! (`--max-pending-sends`), shared fairly between connections.
//!
//! When the room is full, a send waits for a place (`--admission-wait-ms`,
//! then it is refused `unavailable`). Places that come free go first to the
//! waiting connection that holds the fewest places already, in arrival
//! order among equals, not simply to the longest waiting one: under a flood
//! of many connections each keeping dozens of sends in flight, a person
//! sending one message now and then is let in at the next free place
//! instead of behind every flooding connection's queue, and once the flood
//! stops the people's latency is back at once rather than after the
//! flooders' backlog has drained. A connection's share is its `Holder`.
//!
//! How many places there are can adapt to the pipeline's answers
//! (`room_size.rs`, with `--send-queue-slack-ms`): when sends start
//! queueing inside the pipeline, the room shrinks, so the queue stands
//! here, where the fair order applies, and not behind the room, where a
//! person's send waits for every send let in before it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::room_size::RoomSize;

/// How many places one connection holds right now.
#[derive(Clone, Default)]
pub struct Holder(Arc<AtomicUsize>);

impl Holder {
    pub fn held(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Waiters in the order they get places: fewest held first, then arrival.
type Queue = BTreeMap<(usize, u64), (Holder, oneshot::Sender<()>)>;

struct State {
    /// Places held now, and how many there may be.
    held: usize,
    size: RoomSize,
    arrivals: u64,
    waiting: Queue,
}

impl State {
    fn has_room(&self) -> bool {
        self.held < self.size.limit()
    }
}

/// The room's state, and its size as last decided (read without the lock).
struct Shared {
    state: Mutex<State>,
    size: AtomicUsize,
}

#[derive(Clone)]
pub struct SendRoom {
    shared: Arc<Shared>,
}

/// One place in the room, held until dropped (when the send is answered).
pub struct Place {
    shared: Arc<Shared>,
    holder: Holder,
    since: Instant,
}

impl SendRoom {
    /// Room for `places` sends in flight (at least one), always.
    pub fn new(places: usize) -> SendRoom {
        SendRoom::adaptive(places, places, None)
    }

    /// Room for between `least` and `most` sends in flight: fewer while
    /// sends take more than `slack` longer than the quietest lately
    /// (`room_size.rs`; `None`: always `most`).
    pub fn adaptive(least: usize, most: usize, slack: Option<Duration>) -> SendRoom {
        let size = RoomSize::new(least, most, slack, Instant::now());
        let limit = AtomicUsize::new(size.limit());
        let state = State { held: 0, size, arrivals: 0, waiting: BTreeMap::new() };
        SendRoom { shared: Arc::new(Shared { state: Mutex::new(state), size: limit }) }
    }

    /// A place for `holder`'s connection, waiting up to `wait` for one;
    /// `None` when none came free in time.
    pub async fn enter(&self, holder: &Holder, wait: Duration) -> Option<Place> {
        let (key, mut granted) = {
            let mut state = self.shared.state.lock();
            if state.has_room() && state.waiting.is_empty() {
                state.held += 1;
                holder.0.fetch_add(1, Ordering::Relaxed);
                return Some(self.granted(holder));
            }
            state.arrivals += 1;
            let key = (holder.held(), state.arrivals);
            let (grant, granted) = oneshot::channel();
            state.waiting.insert(key, (holder.clone(), grant));
            (key, granted)
        };
        // The receiver lives until this returns, so a grant always lands.
        if let Ok(Ok(())) = tokio::time::timeout(wait, &mut granted).await {
            return Some(self.granted(holder));
        }
        // Timed out, unless a place was granted just now (grants happen
        // under the lock, so a waiter no longer queued was granted one).
        let queued = self.shared.state.lock().waiting.remove(&key).is_some();
        if queued { None } else { Some(self.granted(holder)) }
    }

    /// The place `holder` was granted (and already counts).
    fn granted(&self, holder: &Holder) -> Place {
        Place { shared: self.shared.clone(), holder: holder.clone(), since: Instant::now() }
    }

    /// Places free now.
    #[cfg(test)]
    fn free(&self) -> usize {
        let state = self.shared.state.lock();
        state.size.limit().saturating_sub(state.held)
    }

    /// Places the room has now.
    pub fn size(&self) -> usize {
        self.shared.size.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Place {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Place (its connection holds {})", self.holder.held())
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.holder.0.fetch_sub(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut state = self.shared.state.lock();
        let held = state.held;
        state.size.answered(now.duration_since(self.since), held, now);
        self.shared.size.store(state.size.limit(), Ordering::Relaxed);
        state.held -= 1;
        // Free places (this one, and more if the room grew) pass to the
        // first waiters still listening; a holder counts its place from
        // now, under the lock, so the order stays exact.
        while state.has_room() {
            let Some((_, (holder, grant))) = state.waiting.pop_first() else { return };
            holder.0.fetch_add(1, Ordering::Relaxed);
            state.held += 1;
            if grant.send(()).is_err() {
                holder.0.fetch_sub(1, Ordering::Relaxed);
                state.held -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_full_room_admits_the_connection_holding_fewest_places_first() {
        let room = SendRoom::new(3);
        let (flood, person) = (Holder::default(), Holder::default());
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(room.enter(&flood, LONG).await.expect("room"));
        }
        assert_eq!((room.free(), flood.held()), (0, 3));
        // The flooding connection queues first, the person after it.
        let flood_waits = tokio::spawn({
            let (room, flood) = (room.clone(), flood.clone());
            async move { room.enter(&flood, LONG).await.map(|place| (place, tokio::time::Instant::now())) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let person_waits = tokio::spawn({
            let (room, person) = (room.clone(), person.clone());
            async move { room.enter(&person, LONG).await.map(|place| (place, tokio::time::Instant::now())) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held.pop());
        let (person_place, person_at) = person_waits.await.expect("task").expect("the person gets the place");
        assert_eq!(person.held(), 1);
        drop(held.pop());
        let (flood_place, flood_at) = flood_waits.await.expect("task").expect("then the flood");
        assert!(person_at <= flood_at);
        assert_eq!(flood.held(), 2);
        drop((person_place, flood_place, held));
        assert_eq!((room.free(), flood.held(), person.held()), (3, 0, 0));
    }

    #[tokio::test]
    async fn a_waiter_past_its_wait_is_refused_and_leaves_no_trace() {
        let room = SendRoom::new(1);
        let holder = Holder::default();
        let first = room.enter(&holder, LONG).await.expect("room");
        let started = std::time::Instant::now();
        assert!(room.enter(&Holder::default(), Duration::from_millis(30)).await.is_none());
        assert!(started.elapsed() >= Duration::from_millis(30), "it waited before giving up");
        drop(first);
        assert_eq!((room.free(), holder.held()), (1, 0), "the place went back, not to the gone waiter");
        assert!(room.enter(&holder, LONG).await.is_some());
    }

    #[tokio::test]
    async fn equal_holders_are_served_in_arrival_order() {
        let room = SendRoom::new(1);
        let first = room.enter(&Holder::default(), LONG).await.expect("room");
        let (order, mut waiters) = (Arc::new(Mutex::new(Vec::new())), Vec::new());
        for n in 0..4 {
            let (room, order) = (room.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let place = room.enter(&Holder::default(), LONG).await.expect("a place in turn");
                order.lock().push(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(place);
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(first);
        for waiter in waiters {
            waiter.await.expect("task");
        }
        assert_eq!(*order.lock(), vec![0, 1, 2, 3]);
        assert_eq!(room.free(), 1);
    }
}
