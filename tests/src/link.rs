//! Links: what happens to bytes between two nodes, one direction at a time.
//!
//! A [`LinkConfig`] describes one direction (`a -> b`); each direction has its own state
//! (random stream, Gilbert-Elliott state, serialization queue, partition flag, counters),
//! so configuring or using one link never shifts the randomness of another.

use core::time::Duration;

use meshlink_core::Instant;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// One-way propagation delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
    /// Uniform in `min..=max` (microsecond resolution).
    Uniform { min: Duration, max: Duration },
    /// Approximately normal (Irwin-Hall: the sum of 12 uniforms), clamped at zero.
    Normal { mean: Duration, std_dev: Duration },
}

/// How datagrams are lost. Stream links never lose bytes (a stream is reliable).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossModel {
    None,
    /// Each datagram independently lost with this probability.
    Bernoulli(f64),
    /// Bursty loss: a two-state Markov chain evaluated per datagram. `p` = P(good -> bad),
    /// `r` = P(bad -> good); a datagram is lost with `loss_good` / `loss_bad` in each state.
    /// The long-run share of datagrams sent in the bad state is `p / (p + r)`.
    GilbertElliott {
        p: f64,
        r: f64,
        loss_good: f64,
        loss_bad: f64,
    },
}

/// What a partition does to stream connections crossing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPartition {
    /// Bytes wait in the pipe and flow again (in order) once the partition heals.
    Stall,
    /// The connection breaks at once: both ends get `handle_stream_closed`.
    Break,
}

/// One direction of a link. `Default` is a clean 10 ms link.
///
/// Datagrams get every effect. Streams get latency, jitter (clamped so bytes stay in
/// order), bandwidth and partitions, but never loss, duplication or reordering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    pub latency: Latency,
    /// Extra delay, uniform in `0..=jitter`, drawn per datagram or stream segment.
    pub jitter: Duration,
    pub loss: LossModel,
    /// Probability that a datagram is delivered twice (the copy gets its own delay).
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_delay` extra.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Serialization rate in bytes per second; `None` is unlimited. Datagrams and stream
    /// segments of this direction share one FIFO queue (unbounded).
    pub bandwidth: Option<u64>,
    /// Stream transmits are cut into segments of at most this many bytes, so receivers
    /// see partial frames as they would from TCP.
    pub mss: usize,
    pub on_partition: StreamPartition,
    /// A bounded receive buffer at the far end (a UDP socket's, read by a slow reader):
    /// `Some((capacity, per_datagram))` holds at most `capacity` arrived datagrams, hands
    /// one to the node every `per_datagram`, and drops what arrives when it is full (what
    /// the kernel does). `None`: every datagram reaches the node on arrival.
    pub rx_buffer: Option<(usize, Duration)>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Latency::Fixed(Duration::from_millis(10)),
            jitter: Duration::ZERO,
            loss: LossModel::None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(20),
            bandwidth: None,
            mss: 1460,
            on_partition: StreamPartition::Stall,
            rx_buffer: None,
        }
    }
}

impl LinkConfig {
    /// A fixed one-way latency.
    pub fn with_latency(mut self, d: Duration) -> Self {
        self.latency = Latency::Fixed(d);
        self
    }
    pub fn with_latency_model(mut self, l: Latency) -> Self {
        self.latency = l;
        self
    }
    pub fn with_jitter(mut self, d: Duration) -> Self {
        self.jitter = d;
        self
    }
    /// Independent (Bernoulli) loss with probability `p`.
    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = LossModel::Bernoulli(p);
        self
    }
    pub fn with_loss_model(mut self, m: LossModel) -> Self {
        self.loss = m;
        self
    }
    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }
    pub fn with_reorder(mut self, p: f64, extra: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = extra;
        self
    }
    pub fn with_bandwidth(mut self, bytes_per_sec: u64) -> Self {
        self.bandwidth = Some(bytes_per_sec);
        self
    }
    /// A bounded receive buffer of `capacity` datagrams, drained one per `per_datagram`
    /// (see [`LinkConfig::rx_buffer`]).
    pub fn with_rx_buffer(mut self, capacity: usize, per_datagram: Duration) -> Self {
        self.rx_buffer = Some((capacity, per_datagram));
        self
    }
    pub fn with_mss(mut self, mss: usize) -> Self {
        self.mss = mss;
        self
    }
    pub fn with_on_partition(mut self, p: StreamPartition) -> Self {
        self.on_partition = p;
        self
    }
}

/// Counters of one link direction. Once nothing is in flight,
/// `sent + duplicated == delivered + dropped`. Stream segments count like datagrams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams and stream segments handed to the link.
    pub sent: u64,
    /// Handed to the receiving node.
    pub delivered: u64,
    /// Lost: random loss, partition, crashed receiver or closed stream end.
    pub dropped: u64,
    /// Extra copies created.
    pub duplicated: u64,
    /// Datagrams held back by the reordering knob.
    pub reordered: u64,
    /// Of `dropped`: datagrams that found the bounded receive buffer full.
    pub rx_overflow: u64,
    pub bytes_sent: u64,
    pub bytes_delivered: u64,
}

/// The state of one direction.
pub(crate) struct LinkState {
    pub config: LinkConfig,
    rng: ChaCha20Rng,
    ge_bad: bool,
    busy_until: Instant,
    /// The receive buffer: datagrams in it, and when its reader is next free.
    pub rx_held: usize,
    pub rx_free_at: Instant,
    pub blocked: bool,
    pub stats: LinkStats,
}

impl LinkState {
    pub fn new(config: LinkConfig, seed: [u8; 32]) -> Self {
        LinkState {
            config,
            rng: ChaCha20Rng::from_seed(seed),
            ge_bad: false,
            busy_until: Instant::ZERO,
            rx_held: 0,
            rx_free_at: Instant::ZERO,
            blocked: false,
            stats: LinkStats::default(),
        }
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`. Draws nothing when `p <= 0`, so a disabled knob leaves
    /// the random stream (and so every other decision) unchanged.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    fn uniform_us(&mut self, max_us: u64) -> u64 {
        if max_us == 0 {
            0
        } else {
            self.rng.next_u64() % (max_us + 1)
        }
    }

    /// Decides whether the next datagram is lost (advancing the Gilbert-Elliott chain).
    pub fn lose(&mut self) -> bool {
        match self.config.loss {
            LossModel::None => false,
            LossModel::Bernoulli(p) => self.chance(p),
            LossModel::GilbertElliott { p, r, loss_good, loss_bad } => {
                let flip = if self.ge_bad { r } else { p };
                if self.chance(flip) {
                    self.ge_bad = !self.ge_bad;
                }
                self.chance(if self.ge_bad { loss_bad } else { loss_good })
            }
        }
    }

    /// Queues `len` bytes for serialization; returns when the last byte leaves.
    pub fn serialize(&mut self, now: Instant, len: usize) -> Instant {
        let Some(bw) = self.config.bandwidth.filter(|b| *b > 0) else { return now };
        let start = now.max(self.busy_until);
        let us = (len as u128 * 1_000_000).div_ceil(u128::from(bw));
        self.busy_until = start + Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX));
        self.busy_until
    }

    /// Propagation delay plus jitter for one datagram or segment.
    pub fn delay(&mut self) -> Duration {
        let base = match self.config.latency {
            Latency::Fixed(d) => micros(d),
            Latency::Uniform { min, max } => {
                let (lo, hi) = (micros(min), micros(max).max(micros(min)));
                lo + self.uniform_us(hi - lo)
            }
            Latency::Normal { mean, std_dev } => {
                // Irwin-Hall: the sum of 12 U(0,1) has mean 6 and variance 1.
                let z: f64 = (0..12).map(|_| self.unit()).sum::<f64>() - 6.0;
                let v = micros(mean) as f64 + z * micros(std_dev) as f64;
                if v > 0.0 {
                    v as u64
                } else {
                    0
                }
            }
        };
        let jitter = self.uniform_us(micros(self.config.jitter));
        Duration::from_micros(base.saturating_add(jitter))
    }
}

fn micros(d: Duration) -> u64 {
    meshlink_core::time::duration_micros(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(config: LinkConfig) -> LinkState {
        LinkState::new(config, [7; 32])
    }

    #[test]
    fn bernoulli_loss_rate() {
        let mut l = state(LinkConfig::default().with_loss(0.2));
        let lost = (0..100_000).filter(|_| l.lose()).count();
        assert!((lost as f64 / 100_000.0 - 0.2).abs() < 0.01, "{lost}");
    }

    #[test]
    fn gilbert_elliott_rate_and_bursts() {
        // Bad 1/(1+9) of the time, always lossy there: 10 % loss in bursts of mean 1/r = 2.
        let m = LossModel::GilbertElliott { p: 0.05, r: 0.5, loss_good: 0.0, loss_bad: 1.0 };
        let mut l = state(LinkConfig::default().with_loss_model(m));
        let seq: Vec<bool> = (0..200_000).map(|_| l.lose()).collect();
        let lost = seq.iter().filter(|x| **x).count() as f64;
        let bursts = seq.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
        assert!((lost / 200_000.0 - 0.1).abs() < 0.01, "rate {}", lost / 200_000.0);
        assert!((lost / bursts - 2.0).abs() < 0.15, "mean burst {}", lost / bursts);
    }

    #[test]
    fn latency_distributions() {
        let mean = |l: &mut LinkState| (0..20_000).map(|_| l.delay().as_micros() as f64).sum::<f64>() / 20_000.0;
        let mut u =
            state(LinkConfig::default().with_latency_model(Latency::Uniform {
                min: Duration::from_millis(10),
                max: Duration::from_millis(30),
            }));
        assert!((0..1000).map(|_| u.delay()).all(|d| d >= Duration::from_millis(10) && d <= Duration::from_millis(30)));
        assert!((mean(&mut u) - 20_000.0).abs() < 300.0);
        let mut n = state(LinkConfig::default().with_latency_model(Latency::Normal {
            mean: Duration::from_millis(50),
            std_dev: Duration::from_millis(5),
        }));
        let xs: Vec<f64> = (0..20_000).map(|_| n.delay().as_micros() as f64).collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!((m - 50_000.0).abs() < 200.0 && (sd - 5_000.0).abs() < 250.0, "mean {m} sd {sd}");
        let mut j = state(LinkConfig::default().with_jitter(Duration::from_millis(10)));
        assert!((mean(&mut j) - 15_000.0).abs() < 200.0, "10 ms + U(0, 10 ms)");
    }

    #[test]
    fn bandwidth_queues_back_to_back() {
        let mut l = state(LinkConfig::default().with_bandwidth(100_000));
        let t0 = Instant::from_millis(1000);
        // 1000 bytes at 100 kB/s = 10 ms each, one after the other.
        assert_eq!(l.serialize(t0, 1000), Instant::from_millis(1010));
        assert_eq!(l.serialize(t0, 1000), Instant::from_millis(1020));
        // After the queue drained, a new packet starts at once.
        assert_eq!(l.serialize(Instant::from_millis(2000), 500), Instant::from_millis(2005));
        let mut free = state(LinkConfig::default());
        assert_eq!(free.serialize(t0, 1 << 20), t0);
    }

    #[test]
    fn disabled_knobs_draw_no_randomness() {
        // A knob at zero must not consume random numbers, or turning on duplication on one
        // scenario would reshuffle unrelated decisions.
        let mut a = state(LinkConfig::default().with_loss(0.5));
        let mut b = state(LinkConfig::default().with_loss(0.5));
        for _ in 0..100 {
            assert!(!b.chance(0.0));
            assert_eq!(a.lose(), b.lose());
        }
    }
}
