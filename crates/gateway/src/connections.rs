//! What the accept loop knows about each open connection, so that no client can hold a slot it does not use.
//!
//! A connection slot is the scarcest thing the gateway has (file descriptors, HTTP/2 stream buffers, upstream
//! permits behind them). A client can hold one cheaply in three ways, and each has its rule here:
//! - **Idle**: an HTTP/2 connection that answers PINGs but opens no stream, an HTTP/1.1 keep-alive connection
//!   that sends nothing. A connection with no request in flight for [`Limits::idle`] is closed; and when the
//!   global cap is reached, the connection idle the longest is shed to make room for a new client.
//! - **Not reading**: a client that pipelines requests and never reads the answers, or stops reading a large
//!   streamed answer, or keeps an HTTP/2 receive window at zero. Either the socket write stays blocked, or an
//!   answer's body has a frame ready that the protocol layer does not take (it is waiting for the peer). Past
//!   [`Limits::write`] the connection is closed, which drops the answers and releases what they held (an
//!   upstream permit, buffered bytes). Clients that read, however slowly, keep streaming.
//! - **Many connections from one address**: at most [`Limits::per_address`] open at once per client address,
//!   except for configured reverse proxies, which speak for many clients. Answers from that address's
//!   connections that have waited on the peer for [`STALLED_AFTER`] count against the same cap: an address that
//!   keeps HTTP/2 streams from draining gets no new connection, and when it opens them on connections it
//!   already has, those holding the most are closed until it is back under the cap.
//! - **Memory across all connections**: each connection knows the answer bytes it holds (built and not yet
//!   handed to the protocol layer, plus handed and not yet taken by the socket). When the total passes
//!   [`Limits::buffered`], the connections holding the most are closed until it is back under the bound, so
//!   many addresses together cannot grow the process without limit either.
//!
//! The registry is a mutex-guarded map touched once per connection start and end and when shedding; the
//! per-request bookkeeping is atomics plus a small per-connection map of answers waiting on the peer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// Bytes the socket must take to count as progress for an answer waiting on the peer: HTTP/2 keep-alive PINGs
/// (17 bytes every 20 s) are not a client reading.
pub(crate) const PROGRESS_BYTES: u64 = 1024;

/// Most bytes of one answer counted as held before it is handed over: what HTTP/2 buffers per stream.
pub(crate) const MAX_ANNOUNCED: u64 = 64 * 1024;

/// An answer waiting on the peer for this long counts against its address's connection cap.
pub(crate) const STALLED_AFTER: Duration = Duration::from_millis(500);

/// Timeouts and caps of the connection rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A connection with no request in flight is closed after this long.
    pub idle: Duration,
    /// A connection whose peer does not take what it is sent is closed after this long.
    pub write: Duration,
    /// Open connections per client address (reverse proxies excepted).
    pub per_address: usize,
    /// Answer bytes all connections together may hold before the heaviest are closed.
    pub buffered: u64,
}

/// Milliseconds on a clock private to the registry; 0 means "never".
fn now_ms(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64 + 1
}

/// One open connection's activity, shared by its task, its requests and their answers.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    last_active: AtomicU64,
    write_blocked_since: AtomicU64,
    /// The last time the socket had taken [`PROGRESS_BYTES`] more bytes.
    last_write: AtomicU64,
    /// Bytes taken since `last_write`.
    written: AtomicU64,
    /// Answer bytes handed to the protocol layer and not yet taken by the socket (an estimate that never
    /// drifts: each write takes off what it wrote, heads and framing included, down to zero).
    in_transit: AtomicU64,
    /// Answer bytes built and not yet handed over (as the answers' size hints announce them, at most
    /// [`MAX_ANNOUNCED`] per answer).
    unhanded: AtomicU64,
    next_body: AtomicU64,
    /// Answers with a frame handed over and not yet taken further, by body id: since when.
    waiting: Mutex<HashMap<u64, u64>>,
    /// Notified when the accept loop sheds this connection.
    pub(crate) shed: Notify,
    /// Whether it has been asked to close by a rule that looks at all connections (not counted again).
    closing: std::sync::atomic::AtomicBool,
}

/// Why a connection should close now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep serving.
    Keep,
    /// No request in flight for the idle timeout: close gracefully.
    Idle,
    /// The peer has not taken what it was sent within the write timeout: drop the connection.
    Stalled,
}

impl Activity {
    fn new(epoch: Instant) -> Activity {
        Activity {
            epoch,
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(now_ms(epoch)),
            write_blocked_since: AtomicU64::new(0),
            last_write: AtomicU64::new(now_ms(epoch)),
            written: AtomicU64::new(0),
            in_transit: AtomicU64::new(0),
            unhanded: AtomicU64::new(0),
            next_body: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            shed: Notify::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.last_active
            .store(now_ms(self.epoch), Ordering::Relaxed);
    }

    /// A request started: it is in flight until the returned guard (moved into its answer) is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight {
            activity: self.clone(),
            body: self.next_body.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The socket refused a write or a flush: blocked since now (unless already).
    pub(crate) fn write_blocked(&self) {
        let _ = self.write_blocked_since.compare_exchange(
            0,
            now_ms(self.epoch),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The socket took a write of `bytes` (progress once [`PROGRESS_BYTES`] add up) or a flush.
    pub(crate) fn write_done(&self, bytes: usize) {
        if bytes > 0 {
            let _ = self
                .in_transit
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                    Some(t.saturating_sub(bytes as u64))
                });
            let total = self.written.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
            if total >= PROGRESS_BYTES {
                self.written.store(0, Ordering::Relaxed);
                self.last_write.store(now_ms(self.epoch), Ordering::Relaxed);
            }
        }
        if self.write_blocked_since.load(Ordering::Relaxed) != 0 {
            self.write_blocked_since.store(0, Ordering::Relaxed);
            self.touch();
        }
    }

    /// Answer bytes this connection holds: built and not handed over, or handed over and not yet taken by the
    /// socket.
    pub(crate) fn held(&self) -> u64 {
        self.unhanded.load(Ordering::Relaxed) + self.in_transit.load(Ordering::Relaxed)
    }

    /// Answers that have waited on the peer for [`STALLED_AFTER`] or longer while the socket took nothing (a
    /// slow reader of a large answer keeps taking bytes and is not stalled; the same rule as [`Self::verdict`]).
    fn stalled_answers(&self) -> usize {
        let now = now_ms(self.epoch);
        let after = STALLED_AFTER.as_millis() as u64;
        let last_write = self.last_write.load(Ordering::Relaxed);
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|since| now.saturating_sub((**since).max(last_write)) >= after)
            .count()
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.write_blocked_since.load(Ordering::Relaxed) == 0
    }

    /// What the connection's watchdog should do now.
    pub(crate) fn verdict(&self, limits: &Limits) -> Verdict {
        let now = now_ms(self.epoch);
        let write_ms = limits.write.as_millis() as u64;
        let blocked = self.write_blocked_since.load(Ordering::Relaxed);
        if blocked != 0 && now.saturating_sub(blocked) >= write_ms {
            return Verdict::Stalled;
        }
        let oldest_wait = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .copied()
            .min();
        // An answer waiting on the peer is a stall only when the socket has taken nothing for as long: a slow
        // reader of a large answer keeps taking bytes.
        let last_write = self.last_write.load(Ordering::Relaxed);
        if oldest_wait.is_some_and(|since| now.saturating_sub(since.max(last_write)) >= write_ms) {
            return Verdict::Stalled;
        }
        let last = self.last_active.load(Ordering::Relaxed);
        if self.idle() && now.saturating_sub(last) >= limits.idle.as_millis() as u64 {
            return Verdict::Idle;
        }
        Verdict::Keep
    }

    fn set_waiting(&self, body: u64, waiting: bool) {
        let mut map = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting {
            map.insert(body, now_ms(self.epoch));
        } else {
            map.remove(&body);
        }
    }
}

/// A request in flight; dropping it (with the answer's body) ends it.
#[derive(Debug)]
pub(crate) struct InFlight {
    activity: Arc<Activity>,
    body: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.set_waiting(self.body, false);
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.activity.touch();
    }
}

/// An answer's body that tells the connection's activity when it has a frame the peer has not taken yet: from
/// its creation until its first frame is asked for, and from each frame handed to the protocol layer until the
/// next is asked for or the body is dropped (after the last frame is sent).
pub(crate) struct Tracked<B> {
    inner: B,
    flight: InFlight,
    /// Of the bytes the body announced at creation, those not handed over yet.
    unhanded: u64,
}

impl<B: Body> Tracked<B> {
    /// Track `inner`. A body with anything to send waits on the peer from the start: over HTTP/2 a stream whose
    /// window the peer keeps at zero is never asked for its first frame.
    pub(crate) fn new(inner: B, flight: InFlight) -> Tracked<B> {
        let unhanded = if inner.is_end_stream() {
            0
        } else {
            flight.activity.set_waiting(flight.body, true);
            // A streamed answer (a proxied upstream body) announces its whole length but holds little of it.
            inner.size_hint().lower().min(MAX_ANNOUNCED)
        };
        flight
            .activity
            .unhanded
            .fetch_add(unhanded, Ordering::Relaxed);
        Tracked {
            inner,
            flight,
            unhanded,
        }
    }

    /// `n` bytes were handed to the protocol layer.
    fn handed(&mut self, n: u64) {
        let announced = n.min(self.unhanded);
        self.unhanded -= announced;
        let activity = &self.flight.activity;
        activity.unhanded.fetch_sub(announced, Ordering::Relaxed);
        activity.in_transit.fetch_add(n, Ordering::Relaxed);
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.flight
            .activity
            .unhanded
            .fetch_sub(self.unhanded, Ordering::Relaxed);
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let activity = &this.flight.activity;
        activity.set_waiting(this.flight.body, false);
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            // Until the protocol layer asks for more, or drops the body once the last frame is sent, the frame
            // waits on the peer (HTTP/2 can hold a whole answer in its buffers behind a closed window).
            activity.touch();
            activity.set_waiting(this.flight.body, true);
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            this.handed(n);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Ask a connection to close, once.
fn close(activity: &Activity) {
    activity.closing.store(true, Ordering::Relaxed);
    activity.shed.notify_one();
}

/// What [`Registry::enforce`] closed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Enforced {
    /// Connections of addresses over their cap with stalled answers counted.
    pub per_address: usize,
    /// Connections closed because all together held too many answer bytes.
    pub buffered: usize,
    /// The answer bytes those held.
    pub held_bytes: u64,
}

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address already has the most connections allowed.
    PerAddress,
}

/// Every open connection, for the per-address cap and for shedding.
#[derive(Debug)]
pub(crate) struct Registry {
    epoch: Instant,
    limits: Limits,
    exempt: Vec<IpAddr>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    conns: HashMap<u64, (IpAddr, Arc<Activity>)>,
    per_address: HashMap<IpAddr, usize>,
}

/// A registered connection; dropping it unregisters it.
#[derive(Debug)]
pub(crate) struct Registered {
    registry: Arc<Registry>,
    id: u64,
    ip: IpAddr,
    /// The connection's activity.
    pub(crate) activity: Arc<Activity>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.conns.remove(&self.id);
        if let Some(n) = inner.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_address.remove(&self.ip);
            }
        }
    }
}

/// The address connections are counted under: IPv4-mapped IPv6 as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Registry {
    /// A registry with `limits`; connections from `exempt` (reverse proxies) have no per-address cap.
    pub(crate) fn new(limits: Limits, exempt: &[IpAddr]) -> Registry {
        Registry {
            epoch: Instant::now(),
            limits,
            exempt: exempt.iter().copied().map(canonical).collect(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The limits the connections are held to.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Admit a connection from `ip`, or say why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Registered, Refusal> {
        let ip = canonical(ip);
        let mut inner = self.lock();
        let open = inner.per_address.get(&ip).copied().unwrap_or(0);
        if open > 0 && !self.exempt.contains(&ip) {
            let stalled: usize = inner
                .conns
                .values()
                .filter(|(from, _)| *from == ip)
                .map(|(_, a)| a.stalled_answers())
                .sum();
            if open + stalled >= self.limits.per_address.max(1) {
                return Err(Refusal::PerAddress);
            }
        }
        inner.next += 1;
        let id = inner.next;
        let activity = Arc::new(Activity::new(self.epoch));
        inner.conns.insert(id, (ip, activity.clone()));
        *inner.per_address.entry(ip).or_insert(0) += 1;
        Ok(Registered {
            registry: self.clone(),
            id,
            ip,
            activity,
        })
    }

    /// Ask the connection idle the longest (no request in flight, nothing blocked), other than `newcomer`, to
    /// close. Returns whether there was one.
    pub(crate) fn shed_idlest(&self, newcomer: &Registered) -> bool {
        let inner = self.lock();
        let idlest = inner
            .conns
            .iter()
            .filter(|(id, (_, a))| **id != newcomer.id && a.idle())
            .map(|(_, (_, a))| a)
            .min_by_key(|a| a.last_active.load(Ordering::Relaxed));
        match idlest {
            Some(a) => {
                a.shed.notify_one();
                true
            }
            None => false,
        }
    }

    /// Apply the rules that look at all connections at once, and say what they closed: an address whose open
    /// connections and stalled answers together pass [`Limits::per_address`] loses the connections holding the
    /// most stalled answers; then, while all connections together hold more than [`Limits::buffered`] answer
    /// bytes, the heaviest are closed.
    pub(crate) fn enforce(&self) -> Enforced {
        let inner = self.lock();
        let live: Vec<(IpAddr, &Arc<Activity>)> = inner
            .conns
            .values()
            .filter(|(_, a)| !a.closing.load(Ordering::Relaxed))
            .map(|(ip, a)| (*ip, a))
            .collect();
        let mut done = Enforced::default();
        self.enforce_per_address(&live, &mut done);
        self.enforce_buffered(&live, &mut done);
        done
    }

    fn enforce_per_address(&self, live: &[(IpAddr, &Arc<Activity>)], done: &mut Enforced) {
        let mut by_address: HashMap<IpAddr, Vec<(usize, &Arc<Activity>)>> = HashMap::new();
        for (ip, a) in live {
            if !self.exempt.contains(ip) {
                by_address
                    .entry(*ip)
                    .or_default()
                    .push((a.stalled_answers(), a));
            }
        }
        let cap = self.limits.per_address.max(1);
        for mut conns in by_address.into_values() {
            let mut count = conns.len() + conns.iter().map(|(n, _)| n).sum::<usize>();
            if count <= cap {
                continue;
            }
            conns.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
            for (stalled, activity) in conns {
                if count <= cap || stalled == 0 {
                    break;
                }
                close(activity);
                count -= 1 + stalled;
                done.per_address += 1;
            }
        }
    }

    fn enforce_buffered(&self, live: &[(IpAddr, &Arc<Activity>)], done: &mut Enforced) {
        let mut held: Vec<(u64, &Arc<Activity>)> = live
            .iter()
            .filter(|(_, a)| !a.closing.load(Ordering::Relaxed))
            .map(|(_, a)| (a.held(), *a))
            .collect();
        let mut total: u64 = held.iter().map(|(h, _)| h).sum();
        if total <= self.limits.buffered {
            return;
        }
        held.sort_unstable_by_key(|h| std::cmp::Reverse(h.0));
        for (bytes, activity) in held {
            if total <= self.limits.buffered || bytes == 0 {
                break;
            }
            close(activity);
            total -= bytes;
            done.buffered += 1;
            done.held_bytes += bytes;
        }
    }

    /// Open connections.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.lock().conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::net::Ipv4Addr;

    fn limits(per_address: usize) -> Limits {
        Limits {
            idle: Duration::from_millis(50),
            write: Duration::from_millis(50),
            per_address,
            buffered: 1 << 20,
        }
    }

    #[tokio::test]
    async fn held_bytes_follow_an_answer_from_built_to_taken() {
        let registry = Arc::new(Registry::new(limits(4), &[]));
        let conn = registry.admit(Ipv4Addr::LOCALHOST.into()).unwrap();
        let body = Tracked::new(
            Full::new(Bytes::from(vec![0u8; 10_000])),
            conn.activity.begin(),
        );
        assert_eq!(conn.activity.held(), 10_000, "built, not handed over");
        let mut body = body;
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().unwrap().len(), 10_000);
        assert_eq!(conn.activity.held(), 10_000, "handed over, not yet sent");
        conn.activity.write_done(4_000);
        assert_eq!(conn.activity.held(), 6_000);
        conn.activity.write_done(6_100);
        assert_eq!(conn.activity.held(), 0, "sent (with its framing)");
        // An answer dropped before it was handed over holds nothing any more.
        let unsent = Tracked::new(
            Full::new(Bytes::from(vec![0u8; 5_000])),
            conn.activity.begin(),
        );
        assert_eq!(conn.activity.held(), 5_000);
        drop(unsent);
        assert_eq!(conn.activity.held(), 0);
        // A large answer (a proxied upstream body announces its whole length) counts what HTTP/2 buffers.
        let large = Tracked::new(
            Full::new(Bytes::from(vec![0u8; 1 << 20])),
            conn.activity.begin(),
        );
        assert_eq!(conn.activity.held(), MAX_ANNOUNCED);
        drop(large);
        assert_eq!(conn.activity.held(), 0);
        // Heads and framing written do not build up: the count only goes down to zero.
        conn.activity.write_done(1 << 20);
        let small = Tracked::new(Full::new(Bytes::from_static(b"abc")), conn.activity.begin());
        assert_eq!(conn.activity.held(), 3);
        drop(small);
    }

    #[tokio::test]
    async fn over_the_bound_the_heaviest_connections_are_closed_first() {
        let mut lim = limits(16);
        lim.buffered = 66_000;
        let registry = Arc::new(Registry::new(lim, &[]));
        let ip: IpAddr = Ipv4Addr::LOCALHOST.into();
        let mut bodies = Vec::new();
        let mut conns = Vec::new();
        for size in [20_000usize, 40_000, 5_000] {
            let conn = registry.admit(ip).unwrap();
            bodies.push(Tracked::new(
                Full::new(Bytes::from(vec![0u8; size])),
                conn.activity.begin(),
            ));
            conns.push(conn);
        }
        assert_eq!(
            registry.enforce(),
            Enforced::default(),
            "65 kB is under the bound"
        );
        let conn = registry.admit(ip).unwrap();
        bodies.push(Tracked::new(
            Full::new(Bytes::from(vec![0u8; 30_000])),
            conn.activity.begin(),
        ));
        conns.push(conn);
        // 95 kB: closing the 40 kB connection is enough.
        let done = registry.enforce();
        assert_eq!((done.buffered, done.held_bytes), (1, 40_000));
        assert_eq!(registry.enforce(), Enforced::default(), "asked once");
        let shed = |c: &Registered| {
            futures_util::FutureExt::now_or_never(c.activity.shed.notified()).is_some()
        };
        let closed: Vec<bool> = conns.iter().map(shed).collect();
        assert_eq!(closed, [false, true, false, false]);
    }

    #[tokio::test]
    async fn answers_waiting_on_the_peer_count_against_the_address_cap() {
        let registry = Arc::new(Registry::new(limits(4), &[]));
        let ip: IpAddr = Ipv4Addr::LOCALHOST.into();
        let conn = registry.admit(ip).unwrap();
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                Tracked::new(
                    Full::new(Bytes::from_static(b"answer")),
                    conn.activity.begin(),
                )
            })
            .collect();
        // Not yet stalled: a second connection is admitted.
        let second = registry.admit(ip).unwrap();
        drop(second);
        tokio::time::sleep(STALLED_AFTER + Duration::from_millis(100)).await;
        assert_eq!(
            registry.admit(ip).unwrap_err(),
            Refusal::PerAddress,
            "1 connection + 3 stalled answers fill a cap of 4"
        );
        assert_eq!(
            registry.enforce(),
            Enforced::default(),
            "at the cap, not over it"
        );
        // Another address is not affected, and once the answers go the address is admitted again.
        assert!(registry.admit(Ipv4Addr::new(10, 0, 0, 9).into()).is_ok());
        drop(waiting);
        assert!(registry.admit(ip).is_ok());
    }

    /// A client reading a large answer slowly keeps taking bytes: its waiting answer is not stalled.
    #[tokio::test]
    async fn an_answer_to_a_slow_reader_is_not_stalled() {
        let registry = Arc::new(Registry::new(limits(4), &[]));
        let conn = registry.admit(Ipv4Addr::LOCALHOST.into()).unwrap();
        let _answer = Tracked::new(
            Full::new(Bytes::from_static(b"answer")),
            conn.activity.begin(),
        );
        tokio::time::sleep(STALLED_AFTER + Duration::from_millis(100)).await;
        assert_eq!(conn.activity.stalled_answers(), 1, "nothing taken: stalled");
        conn.activity.write_done(PROGRESS_BYTES as usize);
        assert_eq!(
            conn.activity.stalled_answers(),
            0,
            "bytes just taken: reading"
        );
    }

    #[tokio::test]
    async fn stalled_answers_on_connections_already_open_close_the_heaviest() {
        let registry = Arc::new(Registry::new(limits(6), &[]));
        let ip: IpAddr = Ipv4Addr::LOCALHOST.into();
        // Three connections opened first, then answers kept waiting on two of them: 3 + 2 + 5 = 10 > 6.
        let conns: Vec<_> = (0..3).map(|_| registry.admit(ip).unwrap()).collect();
        let answer = |c: &Registered| {
            Tracked::new(Full::new(Bytes::from_static(b"answer")), c.activity.begin())
        };
        let _light: Vec<_> = (0..2).map(|_| answer(&conns[0])).collect();
        let _heavy: Vec<_> = (0..5).map(|_| answer(&conns[1])).collect();
        assert_eq!(registry.enforce(), Enforced::default(), "not stalled yet");
        tokio::time::sleep(STALLED_AFTER + Duration::from_millis(100)).await;
        let done = registry.enforce();
        assert_eq!(
            done.per_address, 1,
            "closing the heaviest (3 - 1 + 2 = 4) is enough"
        );
        let shed: Vec<bool> = conns
            .iter()
            .map(|c| futures_util::FutureExt::now_or_never(c.activity.shed.notified()).is_some())
            .collect();
        assert_eq!(shed, [false, true, false]);
        // Proxies are exempt.
        let proxied = Arc::new(Registry::new(limits(1), &[ip]));
        let conn = proxied.admit(ip).unwrap();
        let _waiting: Vec<_> = (0..3).map(|_| answer(&conn)).collect();
        tokio::time::sleep(STALLED_AFTER + Duration::from_millis(100)).await;
        assert_eq!(proxied.enforce(), Enforced::default());
    }

    #[test]
    fn per_address_cap_counts_mapped_addresses_as_one_and_exempts_proxies() {
        let proxy: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let reg = Arc::new(Registry::new(limits(2), &[proxy]));
        let a: IpAddr = Ipv4Addr::new(192, 0, 2, 7).into();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let one = reg.admit(a).unwrap();
        let two = reg.admit(mapped).unwrap();
        assert_eq!(reg.admit(a).unwrap_err(), Refusal::PerAddress);
        // Another address is not affected; a closed connection frees its place.
        let other = reg.admit(Ipv4Addr::new(192, 0, 2, 8).into()).unwrap();
        drop(one);
        let three = reg.admit(a).unwrap();
        // A reverse proxy speaks for many clients.
        let proxied: Vec<_> = (0..5).map(|_| reg.admit(proxy).unwrap()).collect();
        assert_eq!(reg.open(), 3 + proxied.len());
        drop((two, three, other, proxied));
        assert_eq!(reg.open(), 0);
        assert!(reg.lock().per_address.is_empty());
    }

    #[test]
    fn idle_and_stalled_verdicts() {
        let reg = Arc::new(Registry::new(limits(8), &[]));
        let conn = reg.admit(Ipv4Addr::LOCALHOST.into()).unwrap();
        let act = conn.activity.clone();
        assert_eq!(act.verdict(&reg.limits()), Verdict::Keep);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(act.verdict(&reg.limits()), Verdict::Idle);

        // A request in flight is not idle, however long it takes (the upstream may be slow).
        let flight = act.begin();
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(act.verdict(&reg.limits()), Verdict::Keep);
        drop(flight);
        assert_eq!(act.verdict(&reg.limits()), Verdict::Keep);

        // A socket that stays blocked is a stall; one that takes bytes again is not.
        act.write_blocked();
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(act.verdict(&reg.limits()), Verdict::Stalled);
        act.write_done(10);
        assert_eq!(act.verdict(&reg.limits()), Verdict::Keep);

        // A waiting answer: a few bytes (a PING) are not progress, a kilobyte is.
        let flight = act.begin();
        act.set_waiting(99, true);
        std::thread::sleep(Duration::from_millis(80));
        act.write_done(17);
        assert_eq!(act.verdict(&reg.limits()), Verdict::Stalled);
        act.write_done(PROGRESS_BYTES as usize);
        assert_eq!(act.verdict(&reg.limits()), Verdict::Keep);
        act.set_waiting(99, false);
        drop(flight);
    }

    #[tokio::test]
    async fn an_answer_not_taken_is_a_stall_and_one_read_to_the_end_is_not() {
        let reg = Arc::new(Registry::new(limits(8), &[]));
        let conn = reg.admit(Ipv4Addr::LOCALHOST.into()).unwrap();
        let act = conn.activity.clone();
        // Two frames: after the first is handed over, the body waits on the peer.
        let chunks = futures_util::stream::iter(vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"a"))),
            Ok(Frame::data(Bytes::from_static(b"b"))),
        ]);
        let mut body = Tracked::new(http_body_util::StreamBody::new(chunks), act.begin());
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(act.verdict(&reg.limits()), Verdict::Stalled);
        // Taking the next frame clears it; the end of the answer ends the request.
        let _ = body.frame().await;
        assert_eq!(act.verdict(&reg.limits()), Verdict::Keep);
        drop(body);
        assert!(act.idle());

        // A one-frame answer waits on the peer until it is sent and dropped …
        let mut body = Tracked::new(Full::new(Bytes::from_static(b"x")), act.begin());
        let _ = body.frame().await;
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(act.verdict(&reg.limits()), Verdict::Stalled);
        drop(body);
        assert_ne!(act.verdict(&reg.limits()), Verdict::Stalled);
        // … so does one never asked for its first frame (a closed HTTP/2 window); an empty one does not.
        let waiting = Tracked::new(Full::new(Bytes::from_static(b"x")), act.begin());
        let empty = Tracked::new(http_body_util::Empty::<Bytes>::new(), act.begin());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(act.verdict(&reg.limits()), Verdict::Stalled);
        drop(waiting);
        assert_ne!(act.verdict(&reg.limits()), Verdict::Stalled);
        drop(empty);
    }

    #[test]
    fn shedding_picks_the_longest_idle_connection_and_never_a_busy_one() {
        let reg = Arc::new(Registry::new(limits(8), &[]));
        let old = reg.admit(Ipv4Addr::LOCALHOST.into()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let busy = reg.admit(Ipv4Addr::LOCALHOST.into()).unwrap();
        let _flight = busy.activity.begin();
        std::thread::sleep(Duration::from_millis(5));
        let recent = reg.admit(Ipv4Addr::LOCALHOST.into()).unwrap();
        assert!(reg.shed_idlest(&recent));
        // The oldest idle one was told; `notified` completes at once on a stored permit.
        let told = futures_util::FutureExt::now_or_never(old.activity.shed.notified());
        assert!(told.is_some());
        let told_busy = futures_util::FutureExt::now_or_never(busy.activity.shed.notified());
        assert!(told_busy.is_none());
        // The newcomer is never shed to make room for itself.
        drop(old);
        assert!(!reg.shed_idlest(&recent));
    }
}
