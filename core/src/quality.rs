//! Connection-quality estimators: RTT, jitter, loss, bandwidth, counters and a score.
//!
//! Each estimator is a small standalone type fed by the session (in the manner of
//! quinn's `RttEstimator`); [`QualityTracker`] bundles them per peer and produces a plain
//! [`Quality`] snapshot. Everything is integer or `+ - * /` float arithmetic, because
//! `no_std` core has no `sqrt`/`powf`/`abs` for floats without libm.
//!
//! RTT ([`Rtt`]), loss ([`Loss`]) and the [`Counters`] are always there: keepalive,
//! dead-peer detection and the RTO need them. The costlier figures, [`Jitter`],
//! [`Bandwidth`] (two windows per peer, rolled on every record) and the [`score`], and the
//! matching [`Quality`] fields (`jitter_us`, `bw_in_bps`, `bw_out_bps`, `score`), exist
//! only with the `quality-extras` feature (in `full`).

use core::time::Duration;

use crate::time::{duration_micros, Instant};

/// Nanoseconds of a duration, widened so the EWMA arithmetic below cannot overflow
/// (`Duration::MAX` is ~1.8e28 ns; u128 holds 3.4e38).
fn nanos(d: Duration) -> u128 {
    d.as_nanos()
}

/// Inverse of [`nanos`], saturating at `Duration::MAX`.
fn from_nanos(n: u128) -> Duration {
    const NS: u128 = 1_000_000_000;
    match u64::try_from(n / NS) {
        // n % NS < 1e9 always fits in u32.
        Ok(secs) => Duration::new(secs, (n % NS) as u32),
        Err(_) => Duration::MAX,
    }
}

/// `Duration::abs_diff` needs Rust 1.81; the workspace's rust-version is 1.80.
#[allow(clippy::manual_abs_diff)]
fn abs_diff(a: Duration, b: Duration) -> Duration {
    if a > b {
        a - b
    } else {
        b - a
    }
}

/// RFC 6298 smoothed RTT: first sample srtt=r, rttvar=r/2; then rttvar = 3/4 rttvar +
/// 1/4 |srtt - r|, srtt = 7/8 srtt + 1/8 r. Also min and latest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rtt {
    smoothed: Option<Duration>,
    var: Duration,
    min: Option<Duration>,
    latest: Option<Duration>,
}

impl Rtt {
    /// Feeds one RTT measurement (RFC 6298 §2.2 / §2.3).
    pub fn update(&mut self, sample: Duration) {
        self.latest = Some(sample);
        self.min = Some(self.min.map_or(sample, |m| m.min(sample)));
        match self.smoothed {
            None => {
                // §2.2: SRTT <- R, RTTVAR <- R/2
                self.smoothed = Some(sample);
                self.var = sample / 2;
            }
            Some(srtt) => {
                // §2.3, with alpha = 1/8 and beta = 1/4; RTTVAR uses the *old* SRTT.
                // One division per update keeps the rounding to < 1 ns.
                let dev = nanos(abs_diff(srtt, sample));
                self.var = from_nanos((3 * nanos(self.var) + dev) / 4);
                self.smoothed = Some(from_nanos((7 * nanos(srtt) + nanos(sample)) / 8));
            }
        }
    }
    /// SRTT, None before the first sample.
    pub fn smoothed(&self) -> Option<Duration> {
        self.smoothed
    }
    /// RTTVAR (zero before the first sample).
    pub fn var(&self) -> Duration {
        self.var
    }
    /// Smallest sample seen.
    pub fn min(&self) -> Option<Duration> {
        self.min
    }
    /// Most recent sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }
    /// RFC 6298 RTO = srtt + max(G, 4*rttvar), clamped to [min, max] given.
    ///
    /// Before any sample, `initial` (RFC 6298 §2.1 recommends 1 s), clamped as well.
    /// If `min > max`, `min` wins (never panics, unlike `Ord::clamp`).
    pub fn rto(&self, granularity: Duration, min: Duration, max: Duration, initial: Duration) -> Duration {
        let rto = match self.smoothed {
            None => initial,
            Some(srtt) => srtt.saturating_add(granularity.max(self.var.saturating_mul(4))),
        };
        rto.min(max).max(min)
    }
}

#[cfg(feature = "quality-extras")]
/// RFC 3550 §6.4.1 interarrival jitter applied to successive RTT samples:
/// D = r_i - r_{i-1}; J += (|D| - J)/16.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jitter {
    last: Option<Duration>,
    jitter: Duration,
}

#[cfg(feature = "quality-extras")]
impl Jitter {
    /// Feeds one RTT sample; the first only primes the difference.
    pub fn update(&mut self, rtt_sample: Duration) {
        if let Some(last) = self.last {
            // J + (|D| - J)/16 == (15 J + |D|) / 16, which stays unsigned.
            let d = nanos(abs_diff(rtt_sample, last));
            self.jitter = from_nanos((15 * nanos(self.jitter) + d) / 16);
        }
        self.last = Some(rtt_sample);
    }
    /// The current jitter estimate (zero until two samples were seen).
    pub fn get(&self) -> Duration {
        self.jitter
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Empty,
    /// Sent, no pong yet, not judged.
    Outstanding,
    /// Pong arrived within the deadline.
    Answered,
    /// Judged lost: deadline passed without a pong, or evicted while outstanding.
    Lost,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u32,
    sent_at: Instant,
    state: SlotState,
}

const EMPTY_SLOT: Slot = Slot { seq: 0, sent_at: Instant::ZERO, state: SlotState::Empty };

/// Loss over the last 64 pings: a ring of 64 (seq u32, sent_at Instant, state) slots.
///
/// Every sent ping ends up counted exactly once, as answered or as lost, so
/// `pings_sent == pongs_received + pings_lost + (pings still outstanding)` always holds.
#[derive(Debug, Clone)]
pub struct Loss {
    slots: [Slot; Loss::WINDOW],
    sent: u64,
    received: u64,
    lost: u64,
}

impl Loss {
    /// Pings remembered. A power of two dividing 2^32, so `seq % WINDOW` stays
    /// continuous across the u32 wraparound.
    pub const WINDOW: usize = 64;

    /// No pings yet.
    pub const fn new() -> Self {
        Loss { slots: [EMPTY_SLOT; Loss::WINDOW], sent: 0, received: 0, lost: 0 }
    }

    fn index(seq: u32) -> usize {
        seq as usize % Self::WINDOW
    }

    /// Record a ping sent at `now` with sequence `seq` (the caller increments seq by 1
    /// each time, wrapping).
    ///
    /// The slot's previous ping, if still unanswered, is judged lost now: once evicted its
    /// pong can no longer be accepted, so this is its final outcome.
    pub fn on_ping_sent(&mut self, seq: u32, now: Instant) {
        let slot = &mut self.slots[Self::index(seq)];
        if slot.state == SlotState::Outstanding {
            self.lost = self.lost.saturating_add(1);
        }
        *slot = Slot { seq, sent_at: now, state: SlotState::Outstanding };
        self.sent = self.sent.saturating_add(1);
    }

    /// A pong for `seq` arrived at `now`. Returns the RTT sample if seq is one of the
    /// outstanding, unanswered, not-yet-expired pings in the window; None for
    /// unknown/duplicate/too old/expired (forged pongs are ignored and must not change the
    /// figures). A pong arriving after `deadline` counts as lost, not answered.
    pub fn on_pong(&mut self, seq: u32, now: Instant, deadline: Duration) -> Option<Duration> {
        let slot = &mut self.slots[Self::index(seq)];
        if slot.state != SlotState::Outstanding || slot.seq != seq {
            return None;
        }
        let rtt = now.saturating_since(slot.sent_at);
        if rtt > deadline {
            slot.state = SlotState::Lost;
            self.lost = self.lost.saturating_add(1);
            None
        } else {
            slot.state = SlotState::Answered;
            self.received = self.received.saturating_add(1);
            Some(rtt)
        }
    }

    /// Judges every outstanding ping whose deadline has passed as lost. Called by the
    /// session each timer tick so [`Self::pings_lost`] does not lag.
    pub fn expire(&mut self, now: Instant, deadline: Duration) {
        for slot in self.slots.iter_mut() {
            if slot.state == SlotState::Outstanding && expired(slot, now, deadline) {
                slot.state = SlotState::Lost;
                self.lost = self.lost.saturating_add(1);
            }
        }
    }

    /// Share of the pings in the window whose deadline has passed, that got no pong in
    /// time: in 0.0..=1.0; 0.0 when none has been judged yet. Pings still within their
    /// deadline are not counted either way.
    ///
    /// Answered pings also wait for their deadline before being counted: counting them
    /// at once, while their unanswered peers must wait, would bias the figure low.
    pub fn loss(&self, now: Instant, deadline: Duration) -> f32 {
        let (mut judged, mut lost) = (0u32, 0u32);
        for slot in &self.slots {
            let is_lost = match slot.state {
                SlotState::Empty => continue,
                SlotState::Lost => true,
                SlotState::Outstanding | SlotState::Answered if !expired(slot, now, deadline) => continue,
                SlotState::Outstanding => true,
                SlotState::Answered => false,
            };
            judged += 1;
            lost += u32::from(is_lost);
        }
        if judged == 0 {
            0.0
        } else {
            lost as f32 / judged as f32
        }
    }

    /// Outstanding pings already past their deadline but not yet judged by [`Self::expire`].
    fn pending_lost(&self, now: Instant, deadline: Duration) -> u64 {
        let n = self.slots.iter().filter(|s| s.state == SlotState::Outstanding && expired(s, now, deadline)).count();
        n as u64
    }

    /// Pings sent since creation.
    pub fn pings_sent(&self) -> u64 {
        self.sent
    }
    /// Pongs received within their deadline since creation.
    pub fn pongs_received(&self) -> u64 {
        self.received
    }
    /// Pings judged lost since creation (exact as of the last [`Self::expire`]).
    pub fn pings_lost(&self) -> u64 {
        self.lost
    }
}

/// "After `deadline`" is strict: a pong at exactly the deadline is in time.
fn expired(slot: &Slot, now: Instant, deadline: Duration) -> bool {
    now.saturating_since(slot.sent_at) > deadline
}

impl Default for Loss {
    fn default() -> Self {
        Self::new()
    }
}

/// EWMA weight of each 1-second bucket: a = 1/4 (as a fraction NUM/DEN), so the rate
/// follows a step change within ~10 s ((3/4)^10 ~ 6 %).
#[cfg(feature = "quality-extras")]
const BW_A_NUM: u128 = 1;
#[cfg(feature = "quality-extras")]
const BW_A_DEN: u128 = 4;
#[cfg(feature = "quality-extras")]
const BUCKET: Duration = Duration::from_secs(1);
/// Idle buckets decayed one by one at most, so a long idle gap costs O(1). After 64 idle
/// seconds only (3/4)^64 ~ 1e-8 of the rate remains (10 GB/s -> ~100 B/s), so a longer gap
/// sets it to zero outright: a negligible jump for a link idle over a minute.
#[cfg(feature = "quality-extras")]
const BW_MAX_IDLE_STEPS: u64 = 64;

#[cfg(feature = "quality-extras")]
/// Exponential moving average of a byte rate, in bytes per second, over 1-second
/// buckets: bytes accumulate in the current bucket; when `now` passes the bucket end,
/// rate = rate*(1-a) + bucket*a with a = 1/4 per elapsed second (idle seconds decay the
/// rate as zero-byte buckets, capped at a few dozen iterations so a long idle gap costs
/// O(1)).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bandwidth {
    /// Start of the current bucket; None before the first record.
    bucket_start: Option<Instant>,
    bucket_bytes: u64,
    rate: u64,
}

#[cfg(feature = "quality-extras")]
impl Bandwidth {
    /// The state after closing every bucket that ended by `now` (pure, so that
    /// [`Self::bytes_per_sec`] can decay an idle rate without `&mut`).
    fn rolled(&self, now: Instant) -> Bandwidth {
        let Some(start) = self.bucket_start else {
            return *self;
        };
        let elapsed = now.saturating_since(start);
        if elapsed < BUCKET {
            return *self;
        }
        let buckets = elapsed.as_secs(); // >= 1, BUCKET being one second
        let keep = BW_A_DEN - BW_A_NUM;
        // The bucket that just closed, then the idle ones.
        let mut rate = (keep * u128::from(self.rate) + BW_A_NUM * u128::from(self.bucket_bytes)) / BW_A_DEN;
        let idle = buckets - 1;
        if idle > BW_MAX_IDLE_STEPS {
            rate = 0;
        } else {
            for _ in 0..idle {
                rate = keep * rate / BW_A_DEN;
            }
        }
        Bandwidth {
            bucket_start: Some(start.saturating_add(Duration::from_secs(buckets))),
            bucket_bytes: 0,
            // rate <= max(old rate, bucket) <= u64::MAX.
            rate: u64::try_from(rate).unwrap_or(u64::MAX),
        }
    }

    /// Counts `bytes` transferred at `now`.
    pub fn record(&mut self, now: Instant, bytes: usize) {
        if self.bucket_start.is_none() {
            self.bucket_start = Some(now);
        }
        *self = self.rolled(now);
        self.bucket_bytes = self.bucket_bytes.saturating_add(bytes as u64);
    }

    /// The smoothed rate as of `now` (the still-open bucket is not included).
    pub fn bytes_per_sec(&self, now: Instant) -> u64 {
        self.rolled(now).rate
    }
}

/// Traffic counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
}

/// A snapshot for events and APIs (plain data, Copy).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Quality {
    /// Smoothed RTT.
    pub rtt_us: Option<u64>,
    pub rtt_min_us: Option<u64>,
    pub rtt_var_us: u64,
    /// RFC 3550 jitter of the ping RTTs (`quality-extras`).
    #[cfg(feature = "quality-extras")]
    pub jitter_us: u64,
    /// 0..=1 over the last 64 pings.
    pub loss: f32,
    pub pings_sent: u64,
    pub pongs_received: u64,
    pub pings_lost: u64,
    /// Bytes per second (`quality-extras`).
    #[cfg(feature = "quality-extras")]
    pub bw_in_bps: u64,
    #[cfg(feature = "quality-extras")]
    pub bw_out_bps: u64,
    pub counters: Counters,
    /// 0..=1, see [`score`] (`quality-extras`).
    #[cfg(feature = "quality-extras")]
    pub score: f32,
}

/// RTT at which the score's latency factor halves: the project's documented scale.
/// 300 ms RTT is twice ITU-T G.114's 150 ms one-way bound for transparent interactivity.
#[cfg(feature = "quality-extras")]
const SCORE_RTT_HALF_US: f32 = 300_000.0;
/// Jitter at which the score's jitter factor halves (project's documented scale; a
/// typical real-time playout buffer is well below 100 ms).
#[cfg(feature = "quality-extras")]
const SCORE_JITTER_HALF_US: f32 = 100_000.0;

/// The quality score in 0..=1:
///
/// `score = (1 - loss)^2 * 1/(1 + rtt/300 ms) * 1/(1 + jitter/100 ms)`
///
/// Loss is squared because it hurts more than delay. With no RTT sample yet the quality is
/// unknown and rated "medium": `0.5 * (1 - loss)^2`. Worked numbers:
/// - rtt 20 ms, jitter 2 ms, loss 0: 1 * 300/320 * 100/102 = 0.9191...
/// - rtt 100 ms, jitter 10 ms, loss 0.1: 0.81 * 0.75 * 1/1.1 = 0.5522...
/// - rtt 300 ms, jitter 0, loss 0: 0.5; any rtt with loss 1: 0
/// - no RTT, loss 0: 0.5
///
/// Always finite and in [0, 1]: loss is clamped to [0, 1], and a NaN loss counts as total
/// loss (a broken figure must not make a path look good).
#[cfg(feature = "quality-extras")]
pub fn score(rtt: Option<Duration>, jitter: Duration, loss: f32) -> f32 {
    // f32::clamp passes NaN through, so NaN is handled first.
    let loss = if loss.is_nan() { 1.0 } else { loss.clamp(0.0, 1.0) };
    let delivered = (1.0 - loss) * (1.0 - loss);
    let s = match rtt {
        None => 0.5 * delivered,
        Some(rtt) => {
            let rtt_f = 1.0 / (1.0 + duration_micros(rtt) as f32 / SCORE_RTT_HALF_US);
            let jit_f = 1.0 / (1.0 + duration_micros(jitter) as f32 / SCORE_JITTER_HALF_US);
            delivered * rtt_f * jit_f
        }
    };
    // Unreachable with the clamped inputs above; kept so the bound holds locally.
    if s.is_nan() {
        0.0
    } else {
        s.clamp(0.0, 1.0)
    }
}

/// Combines all of the above for one peer.
#[derive(Debug, Clone)]
pub struct QualityTracker {
    pub rtt: Rtt,
    #[cfg(feature = "quality-extras")]
    pub jitter: Jitter,
    pub loss: Loss,
    #[cfg(feature = "quality-extras")]
    pub bw_in: Bandwidth,
    #[cfg(feature = "quality-extras")]
    pub bw_out: Bandwidth,
    pub counters: Counters,
}

impl QualityTracker {
    pub fn new() -> Self {
        QualityTracker {
            rtt: Rtt::default(),
            #[cfg(feature = "quality-extras")]
            jitter: Jitter::default(),
            loss: Loss::new(),
            #[cfg(feature = "quality-extras")]
            bw_in: Bandwidth::default(),
            #[cfg(feature = "quality-extras")]
            bw_out: Bandwidth::default(),
            counters: Counters::default(),
        }
    }
    pub fn on_ping_sent(&mut self, seq: u32, now: Instant) {
        self.loss.on_ping_sent(seq, now);
    }
    /// Feeds rtt + jitter when the pong is valid; returns the sample.
    pub fn on_pong(&mut self, seq: u32, now: Instant, deadline: Duration) -> Option<Duration> {
        let sample = self.loss.on_pong(seq, now, deadline)?;
        self.rtt.update(sample);
        #[cfg(feature = "quality-extras")]
        self.jitter.update(sample);
        Some(sample)
    }
    /// A direct RTT sample from elsewhere (e.g. the handshake round trip).
    ///
    /// Feeds the RTT only, not the jitter: such samples include the peer's processing
    /// (a handshake's Diffie-Hellmans), so their difference to a ping's RTT is not
    /// network jitter.
    pub fn on_rtt_sample(&mut self, sample: Duration) {
        self.rtt.update(sample);
    }
    pub fn on_bytes_in(&mut self, now: Instant, bytes: usize) {
        let _ = now; // only the bandwidth window (`quality-extras`) needs the time
        #[cfg(feature = "quality-extras")]
        self.bw_in.record(now, bytes);
        self.counters.bytes_in = self.counters.bytes_in.saturating_add(bytes as u64);
    }
    pub fn on_bytes_out(&mut self, now: Instant, bytes: usize) {
        let _ = now;
        #[cfg(feature = "quality-extras")]
        self.bw_out.record(now, bytes);
        self.counters.bytes_out = self.counters.bytes_out.saturating_add(bytes as u64);
    }
    pub fn on_msg_in(&mut self) {
        self.counters.msgs_in = self.counters.msgs_in.saturating_add(1);
    }
    pub fn on_msg_out(&mut self) {
        self.counters.msgs_out = self.counters.msgs_out.saturating_add(1);
    }
    /// The figures as of `now`. `pings_lost` includes pings already past `deadline` that
    /// no [`Loss::expire`] has judged yet, so it is exact without needing `&mut`.
    pub fn snapshot(&self, now: Instant, deadline: Duration) -> Quality {
        let loss = self.loss.loss(now, deadline);
        Quality {
            rtt_us: self.rtt.smoothed().map(duration_micros),
            rtt_min_us: self.rtt.min().map(duration_micros),
            rtt_var_us: duration_micros(self.rtt.var()),
            #[cfg(feature = "quality-extras")]
            jitter_us: duration_micros(self.jitter.get()),
            loss,
            pings_sent: self.loss.pings_sent(),
            pongs_received: self.loss.pongs_received(),
            pings_lost: self.loss.pings_lost().saturating_add(self.loss.pending_lost(now, deadline)),
            #[cfg(feature = "quality-extras")]
            bw_in_bps: self.bw_in.bytes_per_sec(now),
            #[cfg(feature = "quality-extras")]
            bw_out_bps: self.bw_out.bytes_per_sec(now),
            counters: self.counters,
            #[cfg(feature = "quality-extras")]
            score: score(self.rtt.smoothed(), self.jitter.get(), loss),
        }
    }
}

impl Default for QualityTracker {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }
    fn at_ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn rtt_rfc6298_arithmetic() {
        let mut r = Rtt::default();
        assert_eq!((r.smoothed(), r.min(), r.latest(), r.var()), (None, None, None, Duration::ZERO));
        assert_eq!(r.rto(MS, ms(200), ms(60_000), ms(1000)), ms(1000));
        r.update(ms(100));
        // srtt = 100, var = 50
        assert_eq!((r.smoothed(), r.var()), (Some(ms(100)), ms(50)));
        r.update(ms(200));
        // var = 3/4*50 + 1/4*|100-200| = 62.5; srtt = 7/8*100 + 1/8*200 = 112.5
        assert_eq!((r.smoothed(), r.var()), (Some(us(112_500)), us(62_500)));
        r.update(ms(50));
        // var = 3/4*62.5 + 1/4*|112.5-50| = 62.5; srtt = 7/8*112.5 + 50/8 = 104.6875
        assert_eq!(r.smoothed(), Some(Duration::from_nanos(104_687_500)));
        assert_eq!(r.var(), us(62_500));
        assert_eq!((r.min(), r.latest()), (Some(ms(50)), Some(ms(50))));
        // RTO = 104.6875 + max(1, 4*62.5) = 354.6875 ms
        assert_eq!(r.rto(MS, Duration::ZERO, ms(60_000), ms(1000)), Duration::from_nanos(354_687_500));
        // G dominates when the variance is tiny
        assert_eq!(r.rto(ms(500), Duration::ZERO, ms(60_000), ms(1000)), Duration::from_nanos(604_687_500));
        // clamping, including a min > max misuse (min wins, no panic)
        assert_eq!(r.rto(MS, ms(1000), ms(60_000), ms(1000)), ms(1000));
        assert_eq!(r.rto(MS, Duration::ZERO, ms(200), ms(1000)), ms(200));
        assert_eq!(r.rto(MS, ms(300), ms(200), ms(1000)), ms(300));
        // extreme samples saturate instead of overflowing
        r.update(Duration::MAX);
        r.update(Duration::MAX);
        assert_eq!(r.rto(Duration::MAX, Duration::ZERO, Duration::MAX, Duration::ZERO), Duration::MAX);
        assert_eq!(r.min(), Some(ms(50)));
    }

    #[cfg(feature = "quality-extras")]
    #[test]
    fn jitter_converges_on_alternating_rtt() {
        let mut j = Jitter::default();
        j.update(ms(10));
        assert_eq!(j.get(), Duration::ZERO);
        j.update(ms(30));
        // J = 0 + (20 - 0)/16 = 1.25 ms
        assert_eq!(j.get(), us(1250));
        for i in 0..300 {
            j.update(if i % 2 == 0 { ms(10) } else { ms(30) });
        }
        // |D| is always 20 ms, so J -> 20 ms; (15/16)^300 ~ 4e-9 is far below 1 us.
        let err = abs_diff(j.get(), ms(20));
        assert!(err < us(1), "jitter {:?}", j.get());
        // constant RTT decays it
        for _ in 0..300 {
            j.update(ms(10));
        }
        assert!(j.get() < us(1), "jitter {:?}", j.get());
    }

    const DL: Duration = Duration::from_millis(1000);

    #[test]
    fn loss_exactly_10_of_64() {
        let mut l = Loss::new();
        assert_eq!(l.loss(at_ms(0), DL), 0.0);
        for seq in 0..64u32 {
            let t = u64::from(seq) * 500;
            l.on_ping_sent(seq, at_ms(t));
            if seq % 6 != 0 || seq >= 60 {
                // 10 unanswered: 0, 6, ..., 54
                assert_eq!(l.on_pong(seq, at_ms(t + 30), DL), Some(ms(30)));
            }
        }
        let end = at_ms(63 * 500 + 1001);
        assert_eq!(l.loss(end, DL), 10.0 / 64.0);
        assert_eq!(l.pings_lost(), 0, "judged lazily");
        l.expire(end, DL);
        assert_eq!((l.pings_sent(), l.pongs_received(), l.pings_lost()), (64, 54, 10));
        l.expire(end, DL); // idempotent
        assert_eq!(l.pings_lost(), 10);
        assert_eq!(l.loss(end, DL), 10.0 / 64.0);
    }

    #[test]
    fn loss_counts_only_pings_past_their_deadline() {
        let mut l = Loss::new();
        l.on_ping_sent(0, at_ms(0)); // will be lost
        l.on_ping_sent(1, at_ms(0)); // answered
        assert!(l.on_pong(1, at_ms(10), DL).is_some());
        l.on_ping_sent(2, at_ms(900)); // still pending at t = 1500
        l.on_ping_sent(3, at_ms(900)); // answered, but within its deadline at t = 1500
        assert!(l.on_pong(3, at_ms(950), DL).is_some());
        assert_eq!(l.loss(at_ms(999), DL), 0.0);
        // exactly at the deadline is still in time
        assert_eq!(l.loss(at_ms(1000), DL), 0.0);
        assert_eq!(l.loss(at_ms(1500), DL), 0.5);
        assert_eq!(l.on_pong(2, at_ms(1800), DL), Some(ms(900)));
        assert_eq!(l.loss(at_ms(5000), DL), 0.25);
    }

    #[test]
    fn forged_duplicate_and_late_pongs_are_ignored() {
        let mut l = Loss::new();
        l.on_ping_sent(7, at_ms(0));
        l.on_ping_sent(8, at_ms(0));
        let figures = |l: &Loss| (l.pings_sent(), l.pongs_received(), l.pings_lost(), l.loss(at_ms(3000), DL));
        let before = figures(&l);
        // unknown seqs, including ones that map to the same slots
        for seq in [0, 9, 7 + 64, 8 + 128, u32::MAX] {
            assert_eq!(l.on_pong(seq, at_ms(5), DL), None);
        }
        assert_eq!(figures(&l), before);
        // pong exactly at the deadline: answered; duplicate: ignored
        assert_eq!(l.on_pong(7, at_ms(1000), DL), Some(ms(1000)));
        let after_first = figures(&l);
        assert_eq!(l.on_pong(7, at_ms(1001), DL), None);
        assert_eq!(figures(&l), after_first);
        // late pong: lost, and a repeat of it changes nothing
        assert_eq!(l.on_pong(8, at_ms(1001), DL), None);
        assert_eq!((l.pongs_received(), l.pings_lost()), (1, 1));
        assert_eq!(l.on_pong(8, at_ms(1002), DL), None);
        l.expire(at_ms(5000), DL);
        assert_eq!((l.pings_sent(), l.pongs_received(), l.pings_lost()), (2, 1, 1));
        assert_eq!(l.loss(at_ms(5000), DL), 0.5);
    }

    #[test]
    fn sequence_wraps_at_u32_max() {
        let mut l = Loss::new();
        let first = u32::MAX - 31;
        let mut seq = first;
        for i in 0..64u64 {
            l.on_ping_sent(seq, at_ms(i));
            assert_eq!(l.on_pong(seq, at_ms(i + 20), DL), Some(ms(20)), "seq {seq}");
            seq = seq.wrapping_add(1);
        }
        assert_eq!(seq, 32);
        assert_eq!(l.on_pong(u32::MAX, at_ms(100), DL), None, "duplicate across the wrap");
        // one more ping evicts `first`'s slot: its pong can no longer match
        l.on_ping_sent(seq, at_ms(100));
        assert_eq!(l.on_pong(first, at_ms(101), DL), None);
        assert_eq!(l.on_pong(seq, at_ms(101), DL), Some(ms(1)));
        assert_eq!((l.pings_sent(), l.pongs_received(), l.pings_lost()), (65, 65, 0));
        assert_eq!(l.loss(at_ms(10_000), DL), 0.0);
    }

    #[test]
    fn eviction_of_unanswered_ping_counts_as_lost() {
        let mut l = Loss::new();
        for seq in 0..65u32 {
            l.on_ping_sent(seq, at_ms(u64::from(seq)));
        }
        assert_eq!(l.pings_lost(), 1);
        assert_eq!(l.on_pong(0, at_ms(70), DL), None);
        assert_eq!(l.on_pong(1, at_ms(70), DL), Some(ms(69)));
        l.expire(at_ms(10_000), DL);
        assert_eq!((l.pings_sent(), l.pongs_received(), l.pings_lost()), (65, 1, 64));
    }

    /// sent == received + lost + outstanding, under a random mix of all operations.
    #[test]
    fn cumulative_counters_are_exact() {
        let mut state = 12345u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 33
        };
        let mut l = Loss::new();
        let mut seq = u32::MAX - 500;
        let mut now = 0u64;
        for _ in 0..20_000 {
            now += next() % 300;
            match next() % 4 {
                0 | 1 => {
                    l.on_ping_sent(seq, at_ms(now));
                    seq = seq.wrapping_add(1);
                }
                2 => {
                    // mostly recent pings, sometimes evicted or never-sent ones
                    let back = if next() % 4 == 0 { (next() % 200) as u32 } else { (next() % 6) as u32 + 1 };
                    let _ = l.on_pong(seq.wrapping_sub(back), at_ms(now), DL);
                }
                _ => l.expire(at_ms(now), DL),
            }
            let outstanding = l.slots.iter().filter(|s| s.state == SlotState::Outstanding).count() as u64;
            assert_eq!(l.pings_sent(), l.pongs_received() + l.pings_lost() + outstanding);
            let f = l.loss(at_ms(now), DL);
            assert!((0.0..=1.0).contains(&f));
        }
        let (rx, lost) = (l.pongs_received(), l.pings_lost());
        assert!(rx > 1000 && lost > 1000, "received {rx}, lost {lost}");
        // after everything expires, nothing is outstanding
        l.expire(Instant::FAR_FUTURE, DL);
        assert_eq!(l.pings_sent(), l.pongs_received() + l.pings_lost());
    }

    #[cfg(feature = "quality-extras")]
    #[test]
    fn bandwidth_converges_and_decays() {
        let mut b = Bandwidth::default();
        assert_eq!(b.bytes_per_sec(at_ms(5000)), 0);
        // 1000 bytes every 100 ms = 10 000 B/s for 60 s
        for i in 0..600u64 {
            b.record(at_ms(1000 + i * 100), 1000);
        }
        let end = 1000 + 600 * 100;
        let rate = b.bytes_per_sec(at_ms(end));
        assert!((9_900..=10_000).contains(&rate), "rate {rate}");
        // one idle second: 3/4 of it
        let one = b.bytes_per_sec(at_ms(end + 1000));
        assert!((7_400..=7_500).contains(&one), "rate {one}");
        // 30 idle seconds: (3/4)^30 * 10000 ~ 1.8
        assert!(b.bytes_per_sec(at_ms(end + 30_000)) <= 2);
        // a long gap is O(1) and gives 0
        assert_eq!(b.bytes_per_sec(at_ms(end + 1_000_000_000)), 0);
        assert_eq!(b.bytes_per_sec(Instant::FAR_FUTURE), 0);
        // recording after the gap starts again from (almost) nothing
        b.record(at_ms(end + 100_000), 4000);
        assert_eq!(b.bytes_per_sec(at_ms(end + 101_000)), 1000);
        // time going backwards and huge byte counts do not panic
        b.record(at_ms(0), usize::MAX);
        b.record(at_ms(0), usize::MAX);
        let _ = b.bytes_per_sec(Instant::FAR_FUTURE);
        b.record(Instant::FAR_FUTURE, 1);
    }

    #[cfg(feature = "quality-extras")]
    #[test]
    fn score_worked_examples_and_bounds() {
        let close = |a: f32, b: f32| {
            let d = a - b;
            (if d < 0.0 { -d } else { d }) < 1e-5
        };
        let s = score(Some(ms(20)), ms(2), 0.0);
        assert!(close(s, 0.9375 * 100.0 / 102.0), "{s}");
        assert!(close(s, 0.919_117_6), "{s}");
        assert!(close(score(Some(ms(100)), ms(10), 0.1), 0.81 * 0.75 / 1.1));
        assert!(close(score(Some(ms(300)), Duration::ZERO, 0.0), 0.5));
        assert_eq!(score(Some(Duration::ZERO), Duration::ZERO, 0.0), 1.0);
        assert_eq!(score(None, ms(50), 0.0), 0.5);
        assert!(close(score(None, Duration::ZERO, 0.5), 0.125));
        assert_eq!(score(Some(ms(20)), ms(2), 1.0), 0.0);
        assert_eq!(score(None, Duration::ZERO, 1.0), 0.0);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -3.0, 7.0] {
            for rtt in [None, Some(Duration::ZERO), Some(ms(20)), Some(Duration::MAX)] {
                for jit in [Duration::ZERO, Duration::MAX] {
                    let s = score(rtt, jit, bad);
                    assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{rtt:?} {jit:?} {bad} -> {s}");
                }
            }
        }
        assert_eq!(score(Some(ms(20)), ms(2), f32::NAN), 0.0);
        assert_eq!(score(Some(Duration::ZERO), Duration::ZERO, -3.0), 1.0);
        // monotonic in each input
        assert!(score(Some(ms(20)), ms(2), 0.0) > score(Some(ms(40)), ms(2), 0.0));
        assert!(score(Some(ms(20)), ms(2), 0.0) > score(Some(ms(20)), ms(4), 0.0));
        assert!(score(Some(ms(20)), ms(2), 0.0) > score(Some(ms(20)), ms(2), 0.01));
    }

    #[cfg(feature = "quality-extras")]
    #[test]
    fn tracker_snapshot() {
        let mut q = QualityTracker::new();
        let empty = q.snapshot(at_ms(0), DL);
        assert_eq!(empty.rtt_us, None);
        assert_eq!(empty.score, 0.5);
        assert_eq!(empty.loss, 0.0);

        q.on_rtt_sample(ms(40)); // handshake: RTT only
        assert_eq!(q.jitter.get(), Duration::ZERO);
        q.on_ping_sent(0, at_ms(0));
        q.on_ping_sent(1, at_ms(100));
        q.on_ping_sent(2, at_ms(200));
        assert_eq!(q.on_pong(0, at_ms(20), DL), Some(ms(20)));
        assert_eq!(q.on_pong(0, at_ms(21), DL), None);
        assert_eq!(q.on_pong(99, at_ms(21), DL), None);
        assert_eq!(q.on_pong(2, at_ms(230), DL), Some(ms(30)));
        q.on_bytes_in(at_ms(0), 100);
        q.on_bytes_in(at_ms(500), 300);
        q.on_bytes_out(at_ms(0), 50);
        q.on_msg_in();
        q.on_msg_in();
        q.on_msg_out();

        let s = q.snapshot(at_ms(1500), DL);
        // srtt: 40 -> 7/8*40 + 20/8 = 37.5 -> 7/8*37.5 + 30/8 = 36.5625 ms
        assert_eq!(s.rtt_us, Some(36_562));
        assert_eq!(s.rtt_min_us, Some(20_000));
        // jitter from pong samples only: |30 - 20| / 16
        assert_eq!(s.jitter_us, 625);
        // ping 1 expired without pong (not yet judged by expire), ping 2 not yet judged
        assert_eq!((s.pings_sent, s.pongs_received, s.pings_lost), (3, 2, 1));
        // judged at t = 1500: pings 0 (answered), 1 (lost), 2 (answered at 30 ms)
        assert_eq!(s.loss, 1.0 / 3.0);
        assert_eq!(s.counters, Counters { bytes_in: 400, bytes_out: 50, msgs_in: 2, msgs_out: 1 });
        // one closed 1-s bucket of 400 bytes at a = 1/4
        assert_eq!((s.bw_in_bps, s.bw_out_bps), (100, 12));
        assert_eq!(s.score, score(Some(Duration::from_nanos(36_562_500)), us(625), 1.0 / 3.0));
        assert_eq!(q.loss.pings_lost(), 0, "snapshot does not mutate");
        q.loss.expire(at_ms(1500), DL);
        assert_eq!(q.snapshot(at_ms(1500), DL), s);
    }
}
