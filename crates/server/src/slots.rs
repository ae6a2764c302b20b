//! TCP connection slots. One table for every listener: a cap on open connections, a cap per
//! client network (/24 for IPv4, /56 for IPv6, so a handful of addresses from one network
//! count as one client), and, when the cap is reached, the connection idle the longest is
//! closed to make room for the new one (RFC 7766 §6.2.3: "servers MAY close the idle
//! connections" under pressure). Connections in the middle of a message or an answer are
//! never chosen, so holding slots costs an attacker a steady stream of queries, and even
//! then a new client evicts one of them instead of waiting.
//!
//! The table is touched once per accept and once per close. On the query path a connection
//! only stores a time in its own atomic, so a busy TCP client never takes the lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

/// `ConnState::idle_since` while a message is read or answered: never evicted.
const BUSY: u64 = u64::MAX;

/// A client network: the address with host bits cleared (/24, /56).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Network(u128);

impl Network {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4) & 0xffff_ff00)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of(IpAddr::V4(v4)),
                None => Self((u128::from(v6) & !((1u128 << 72) - 1)) | 1),
            },
        }
    }
}

/// Why a connection was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its network already holds its share.
    Network,
    /// Every slot is taken by a connection that is busy.
    Full,
}

/// What a connection task shares with the table.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// Milliseconds since the table started at which the connection last went idle, or
    /// [`BUSY`].
    idle_since: AtomicU64,
}

struct Entry {
    net: Network,
    state: Arc<ConnState>,
    close: CancellationToken,
}

#[derive(Default)]
struct Inner {
    conns: HashMap<u64, Entry>,
    nets: HashMap<Network, usize>,
    next_id: u64,
}

/// The connection table.
pub(crate) struct Slots {
    cap: usize,
    per_network: usize,
    start: Instant,
    inner: Mutex<Inner>,
}

/// One admitted connection; dropping it frees the slot (unless it was evicted already).
pub(crate) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    state: Arc<ConnState>,
    /// Cancelled when the connection is evicted or the server shuts down.
    pub(crate) close: CancellationToken,
}

impl Slots {
    pub(crate) fn new(cap: usize, per_network: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            per_network: per_network.max(1),
            start: Instant::now(),
            inner: Mutex::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(BUSY - 1)
    }

    /// A slot for a new connection from `ip`; at the cap, the longest-idle connection is
    /// told to close (returned `true` in the second field, for counting). `shutdown`
    /// becomes the parent of the connection's close token.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, shutdown: &CancellationToken) -> Result<(Slot, bool), Refused> {
        let net = Network::of(ip);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.nets.get(&net).copied().unwrap_or(0) >= self.per_network {
            return Err(Refused::Network);
        }
        let mut evicted = false;
        if inner.conns.len() >= self.cap {
            let victim = inner
                .conns
                .iter()
                .filter_map(|(id, e)| {
                    let t = e.state.idle_since.load(Ordering::Relaxed);
                    (t != BUSY).then_some((t, *id))
                })
                .min();
            let Some((_, id)) = victim else { return Err(Refused::Full) };
            if let Some(e) = inner.conns.remove(&id) {
                e.close.cancel();
                release(&mut inner.nets, e.net);
                evicted = true;
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let state = Arc::new(ConnState { idle_since: AtomicU64::new(self.now_ms()) });
        let close = shutdown.child_token();
        inner.conns.insert(id, Entry { net, state: state.clone(), close: close.clone() });
        *inner.nets.entry(net).or_insert(0) += 1;
        drop(inner);
        Ok((Slot { slots: self.clone(), id, state, close }, evicted))
    }

    /// Connections holding a slot now.
    pub(crate) fn open(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).conns.len()
    }
}

fn release(nets: &mut HashMap<Network, usize>, net: Network) {
    if let Some(n) = nets.get_mut(&net) {
        *n -= 1;
        if *n == 0 {
            nets.remove(&net);
        }
    }
}

impl Slot {
    /// The connection is reading or answering a message: not to be evicted.
    pub(crate) fn busy(&self) {
        self.state.idle_since.store(BUSY, Ordering::Relaxed);
    }

    /// The connection waits for its next message.
    pub(crate) fn idle(&self) {
        self.state.idle_since.store(self.slots.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = inner.conns.remove(&self.id) {
            release(&mut inner.nets, e.net);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_are_slash_24_and_slash_56() {
        assert_eq!(Network::of(ip("192.0.2.1")), Network::of(ip("192.0.2.254")));
        assert_ne!(Network::of(ip("192.0.2.1")), Network::of(ip("192.0.3.1")));
        assert_eq!(Network::of(ip("2001:db8:0:ff::1")), Network::of(ip("2001:db8:0:ff:ffff::2")));
        assert_ne!(Network::of(ip("2001:db8:0:100::1")), Network::of(ip("2001:db8:0:0::1")));
        assert_eq!(Network::of(ip("::ffff:192.0.2.7")), Network::of(ip("192.0.2.1")));
        // An IPv6 /56 never equals an IPv4 /24.
        assert_ne!(Network::of(ip("::")), Network::of(ip("0.0.0.0")));
    }

    #[test]
    fn the_longest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let shutdown = CancellationToken::new();
        let slots = Slots::new(3, 2);
        let (a, _) = slots.admit(ip("192.0.2.1"), &shutdown).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (b, _) = slots.admit(ip("198.51.100.1"), &shutdown).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (c, _) = slots.admit(ip("203.0.113.1"), &shutdown).unwrap();
        // The table is full: 192.0.2.99 evicts the longest idle, `a`.
        let (a2, evicted) = slots.admit(ip("192.0.2.99"), &shutdown).unwrap();
        assert!(evicted && a.close.is_cancelled());
        assert!(!b.close.is_cancelled() && !c.close.is_cancelled());
        assert_eq!(slots.open(), 3);
        drop(a);
        assert_eq!(slots.open(), 3, "an evicted slot is not freed twice");
        b.busy();
        let (d, evicted) = slots.admit(ip("192.0.2.50"), &shutdown).unwrap();
        assert!(evicted);
        assert!(!b.close.is_cancelled(), "a busy connection is never evicted");
        assert!(c.close.is_cancelled());
        assert_eq!(
            slots.admit(ip("192.0.2.51"), &shutdown).err(),
            Some(Refused::Network),
            "two from 192.0.2.0/24 already"
        );
        drop((a2, d));
        shutdown.cancel();
        assert!(b.close.is_cancelled(), "shutdown closes every connection");
    }

    #[test]
    fn all_busy_means_refused() {
        let shutdown = CancellationToken::new();
        let slots = Slots::new(1, 1);
        let (a, _) = slots.admit(ip("192.0.2.1"), &shutdown).unwrap();
        a.busy();
        assert_eq!(slots.admit(ip("198.51.100.1"), &shutdown).err(), Some(Refused::Full));
        a.idle();
        assert!(slots.admit(ip("198.51.100.1"), &shutdown).is_ok());
    }
}
