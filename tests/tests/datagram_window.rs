//! Datagram flow control (PROTOCOL.md §8.8) in virtual time: a fast sender and a slow
//! receiver behind a bounded receive buffer (a UDP socket's, modelled by the link). With
//! the credit window every message arrives and the buffer never overflows; without it the
//! same setup loses messages in the buffer, as the kernel did on loopback.

mod common;

use common::*;
use meshlink_core::{Config, Error, TransportKind};
use meshlink_sim::{LinkConfig, NodeIdx, Sim};

const COUNT: u32 = 400;
/// 16 KiB messages: 14 datagrams of 1200 bytes each.
const LEN: usize = 16 * 1024;
/// The receive buffer holds this many datagrams; the reader takes one every 100 us
/// (10,000 datagrams/s, far below what the sender can queue).
const RX_CAP: usize = 80;

fn config(window: u32) -> Config {
    Config::default().with(|c| c.datagram_window = window)
}

fn setup(seed: u64, window: u32, link: LinkConfig) -> (Sim, NodeIdx, NodeIdx) {
    let mut sim = Sim::new(seed);
    let a = sim.add_node(config(window)).unwrap();
    let b = sim.add_node(config(window)).unwrap();
    sim.set_links(a, b, LinkConfig::default().with_latency(ms(1)));
    sim.set_link(a, b, link);
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(10), "datagram window");
    (sim, a, b)
}

fn slow_link() -> LinkConfig {
    LinkConfig::default().with_latency(ms(1)).with_rx_buffer(RX_CAP, std::time::Duration::from_micros(100))
}

/// Queues every message as fast as `send` accepts them (QueueFull: 1 ms later again).
fn send_all(sim: &mut Sim, a: NodeIdx, b: NodeIdx) {
    for seq in 0..COUNT {
        let msg = payload(seq, LEN);
        loop {
            match sim.send(a, b, &msg) {
                Ok(()) => break,
                Err(Error::QueueFull { .. }) => sim.run_for(ms(1)),
                Err(e) => panic!("send {seq}: {e}"),
            }
        }
    }
}

fn received(sim: &Sim, b: NodeIdx) -> Vec<u32> {
    messages(sim, b).iter().map(|(_, d)| check_payload(d)).collect()
}

#[test]
fn a_fast_sender_to_a_slow_reader_loses_nothing_with_the_window() {
    let (mut sim, a, b) = setup(1, 64, slow_link());
    send_all(&mut sim, a, b);
    assert!(sim.run_until_cond(secs(60), |s| message_count(s, b) >= COUNT as usize), "stalled");
    assert_eq!(received(&sim, b), (0..COUNT).collect::<Vec<_>>(), "every message, in order");
    let st = sim.link_stats(a, b);
    assert_eq!((st.rx_overflow, st.dropped), (0, 0), "the receive buffer overflowed: {st:?}");
    let f = sim.node(a).flow(&sim.peer_id(b)).unwrap();
    assert!(f.enabled && f.in_flight <= 64, "{f:?}");
    // About one Credit per half window of data records.
    let credits = sim.node(b).flow(&sim.peer_id(a)).unwrap().credits_sent;
    assert!(credits >= u64::from(COUNT) * 14 / 32, "{credits} credits");
}

#[test]
fn without_the_window_the_same_setup_loses_messages() {
    let (mut sim, a, b) = setup(1, 0, slow_link());
    assert!(!sim.node(a).flow(&sim.peer_id(b)).unwrap().enabled);
    send_all(&mut sim, a, b);
    sim.run_for(secs(10));
    let st = sim.link_stats(a, b);
    assert!(st.rx_overflow > 100, "the buffer should overflow without flow control: {st:?}");
    assert!(message_count(&sim, b) < COUNT as usize / 2, "{} arrived", message_count(&sim, b));
}

#[test]
fn the_window_survives_loss_and_reordering() {
    // 1 % loss and 5 % reordering on the data path, 1 % loss of the Credits coming back.
    let link = slow_link().with_loss(0.01).with_reorder(0.05, ms(3));
    let (mut sim, a, b) = setup(3, 64, link);
    sim.set_link(b, a, LinkConfig::default().with_latency(ms(1)).with_loss(0.01));
    send_all(&mut sim, a, b);
    // Everything queued goes out: lost records and lost Credits never wedge the window.
    let done = sim.run_until_cond(secs(120), |s| {
        s.node(a).flow(&s.peer_id(b)).is_some_and(|f| f.in_flight == 0 || f.send_limit > COUNT as u64 * 14)
    });
    sim.run_for(secs(2));
    assert!(done, "the sender wedged: {:?}", sim.node(a).flow(&sim.peer_id(b)));
    let st = sim.link_stats(a, b);
    assert_eq!(st.rx_overflow, 0, "the receive buffer overflowed: {st:?}");
    // A message is lost with any of its 14 datagrams (datagram mode does not retransmit).
    let got = received(&sim, b);
    assert!(got.len() > COUNT as usize * 7 / 10, "{} of {COUNT} arrived", got.len());
    let mut once = got.clone();
    once.sort_unstable();
    once.dedup();
    assert_eq!(once.len(), got.len(), "a message arrived twice");
}
