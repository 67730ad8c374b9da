//! Request/response and send-to-many through the messaging layer, in virtual time
//! (PROTOCOL.md §15; issue 14 acceptance 1).

use std::collections::HashMap;
use std::time::Duration;

use meshlink_core::messaging::{MessagingConfig, MessagingError, RefuseCode, RequestOptions, SendReport};
use meshlink_core::{Config, Error, Instant, Priority, TransportKind};
use meshlink_sim::messenger::{MsgEvent, SimMessenger, SimOutcome};
use meshlink_sim::{LinkConfig, NodeIdx, Sim};

fn sim_with(n: usize, mc: MessagingConfig, latency_ms: u64) -> (Sim<SimMessenger>, Vec<NodeIdx>) {
    let cfg = Config::default().with(|c| c.dead_peer_timeout = Duration::from_secs(600));
    sim_with_config(n, cfg, mc, latency_ms)
}

fn sim_with_config(n: usize, cfg: Config, mc: MessagingConfig, latency_ms: u64) -> (Sim<SimMessenger>, Vec<NodeIdx>) {
    let mut sim = Sim::<SimMessenger>::with_seed(14);
    sim.set_default_link(LinkConfig::default().with_latency(Duration::from_millis(latency_ms)));
    let nodes: Vec<_> = (0..n).map(|_| sim.add_messenger(cfg.clone(), mc.clone()).unwrap()).collect();
    (sim, nodes)
}

fn connect(sim: &mut Sim<SimMessenger>, a: NodeIdx, b: NodeIdx) {
    sim.connect_messengers(a, b, TransportKind::Datagram).unwrap();
    assert!(
        sim.run_until_cond(Duration::from_secs(10), |s| s.messengers_connected(a, b) && s.messengers_connected(b, a))
    );
    sim.take_events(a);
    sim.take_events(b);
}

fn outcomes(sim: &mut Sim<SimMessenger>, a: NodeIdx) -> Vec<(Instant, u64, SimOutcome)> {
    sim.take_events(a)
        .into_iter()
        .filter_map(|e| match e.event {
            MsgEvent::Outcome { id, outcome, .. } => Some((e.at, id, outcome)),
            _ => None,
        })
        .collect()
}

fn request(
    sim: &mut Sim<SimMessenger>,
    a: NodeIdx,
    b: NodeIdx,
    subject: &str,
    body: &[u8],
    opts: RequestOptions<'_>,
) -> Result<u64, MessagingError> {
    let peer = sim.messenger_peer(b);
    sim.with_node(a, |m, now| m.inner.request(now, &peer, subject, body, opts))
}

/// Sends `total` requests from `a` to `b` as fast as the tables allow, returning every
/// outcome by the body it was sent with.
fn flood(
    sim: &mut Sim<SimMessenger>,
    a: NodeIdx,
    b: NodeIdx,
    total: u32,
    opts: RequestOptions<'_>,
) -> HashMap<u64, (u32, SimOutcome)> {
    let mut sent: HashMap<u64, u32> = HashMap::new();
    let mut done = HashMap::new();
    let mut next = 0u32;
    let mut rounds = 0;
    while done.len() < total as usize {
        rounds += 1;
        assert!(rounds < 10_000, "stuck: {} of {total} done", done.len());
        while next < total {
            match request(sim, a, b, "echo.test", &next.to_le_bytes(), opts) {
                Ok(id) => {
                    sent.insert(id, next);
                    next += 1;
                }
                Err(MessagingError::PeerPendingLimit { .. } | MessagingError::PendingLimit { .. }) => break,
                Err(MessagingError::Node(Error::QueueFull { .. })) => break,
                Err(e) => panic!("request {next}: {e:?}"),
            }
        }
        sim.run_for(Duration::from_millis(20));
        for (_, id, o) in outcomes(sim, a) {
            let i = sent.remove(&id).unwrap_or_else(|| panic!("outcome for an id never sent or twice: {id}"));
            done.insert(id, (i, o));
        }
    }
    done
}

#[test]
fn ten_thousand_requests_to_a_live_peer_all_match() {
    let mc = MessagingConfig::default().with(|c| c.max_pending_per_peer = 512);
    let (mut sim, n) = sim_with(2, mc, 5);
    connect(&mut sim, n[0], n[1]);
    sim.with_node(n[1], |m, _| {
        m.echo = true;
        m.inner.register("echo.>", "1.0").unwrap();
    });
    let done = flood(&mut sim, n[0], n[1], 10_000, RequestOptions::new().version("1.4"));
    assert_eq!(done.len(), 10_000);
    for (i, o) in done.values() {
        assert_eq!(*o, SimOutcome::Response(i.to_le_bytes().to_vec()), "request {i}");
    }
    let st = sim.node(n[0]).inner.stats();
    assert_eq!((st.requests_sent, st.late_responses, st.timeouts), (10_000, 0, 0));
    assert_eq!(sim.node(n[0]).inner.pending(), 0);
    assert_eq!(sim.node(n[1]).inner.stats().requests_received, 10_000);
}

#[test]
fn ten_thousand_requests_to_a_dead_peer_all_time_out_and_free_the_table() {
    let mc = MessagingConfig::default().with(|c| c.max_pending_per_peer = 1024);
    // Datagram flow control off: a crashed peer grants no credit, so with a window the
    // requests after the first 64 records would stay in the send queue (QueueFull at
    // once, not a timeout). This test is about the timeout path of the pending table.
    let cfg = Config::default().with(|c| {
        c.dead_peer_timeout = Duration::from_secs(600);
        c.datagram_window = 0;
    });
    let (mut sim, n) = sim_with_config(2, cfg, mc, 5);
    connect(&mut sim, n[0], n[1]);
    sim.crash(n[1]);
    let opts = RequestOptions::new().timeout(Duration::from_millis(100));
    let done = flood(&mut sim, n[0], n[1], 10_000, opts);
    assert_eq!(done.len(), 10_000);
    assert!(done.values().all(|(_, o)| *o == SimOutcome::Timeout));
    let m = &sim.node(n[0]).inner;
    assert_eq!(m.pending(), 0, "every slot freed");
    assert_eq!(m.pending_to(&sim.messenger_peer(n[1])), 0);
    assert_eq!(m.stats().timeouts, 10_000);
    assert_eq!(m.poll_timeout(), m.node().poll_timeout(), "no request deadline left");
}

#[test]
fn no_responders_comes_back_within_one_round_trip() {
    let (mut sim, n) = sim_with(2, MessagingConfig::default(), 40);
    connect(&mut sim, n[0], n[1]);
    let t0 = sim.now();
    let id = request(&mut sim, n[0], n[1], "nobody.home", b"?", RequestOptions::new()).unwrap();
    sim.run_for(Duration::from_secs(1));
    let got = outcomes(&mut sim, n[0]);
    assert_eq!(got.len(), 1);
    let (at, gid, o) = &got[0];
    assert_eq!((*gid, o), (id, &SimOutcome::NoResponders));
    // 40 ms each way: the refusal is back after one round trip, not after the 10 s timeout.
    assert!(at.saturating_since(t0) <= Duration::from_millis(81), "took {:?}", at.saturating_since(t0));
    assert_eq!(sim.node(n[1]).inner.stats().refusals_sent, 1);
    assert_eq!(sim.node(n[0]).inner.pending(), 0);
}

#[test]
fn a_full_table_gives_the_typed_error_per_peer_and_per_node() {
    let mc = MessagingConfig::default().with(|c| {
        c.max_pending = 4;
        c.max_pending_per_peer = 2;
    });
    let (mut sim, n) = sim_with(4, mc, 5);
    for &p in &n[1..] {
        connect(&mut sim, n[0], p);
    }
    let o = RequestOptions::new;
    request(&mut sim, n[0], n[1], "a", b"", o()).unwrap();
    request(&mut sim, n[0], n[1], "a", b"", o()).unwrap();
    assert_eq!(request(&mut sim, n[0], n[1], "a", b"", o()), Err(MessagingError::PeerPendingLimit { limit: 2 }));
    request(&mut sim, n[0], n[2], "a", b"", o()).unwrap();
    request(&mut sim, n[0], n[2], "a", b"", o()).unwrap();
    assert_eq!(request(&mut sim, n[0], n[3], "a", b"", o()), Err(MessagingError::PendingLimit { limit: 4 }));
    assert_eq!(sim.node(n[0]).inner.pending(), 4);
    // The refusals (nobody registered "a") free the table again.
    sim.run_for(Duration::from_millis(100));
    assert_eq!(outcomes(&mut sim, n[0]).len(), 4);
    assert_eq!(sim.node(n[0]).inner.pending(), 0);
    request(&mut sim, n[0], n[3], "a", b"", o()).unwrap();
}

#[test]
fn cancel_ends_the_request_tells_the_peer_and_a_late_answer_is_counted() {
    let (mut sim, n) = sim_with(2, MessagingConfig::default(), 5);
    connect(&mut sim, n[0], n[1]);
    sim.with_node(n[1], |m, _| m.inner.register("job.*", "").unwrap());
    let id = request(&mut sim, n[0], n[1], "job.build", b"x", RequestOptions::new().parent(99)).unwrap();
    sim.run_for(Duration::from_millis(50));
    let got = sim.take_events(n[1]);
    let (peer, rid) = got
        .iter()
        .find_map(|e| match &e.event {
            MsgEvent::Request { peer, id, parent: Some(99), subject, .. } if subject == "job.build" => {
                Some((*peer, *id))
            }
            _ => None,
        })
        .expect("request delivered with its parent id");
    assert_eq!(rid, id);
    sim.with_node(n[0], |m, now| m.inner.cancel(now, id)).unwrap();
    assert_eq!(sim.with_node(n[0], |m, now| m.inner.cancel(now, id)), Err(MessagingError::UnknownRequest));
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        outcomes(&mut sim, n[0]).iter().map(|o| (o.1, o.2.clone())).collect::<Vec<_>>(),
        [(id, SimOutcome::Cancelled)]
    );
    assert!(sim.take_events(n[1]).iter().any(|e| e.event == MsgEvent::Cancelled { peer, id }));
    // The responder answers anyway: dropped and counted, no second outcome.
    sim.with_node(n[1], |m, now| m.inner.respond(now, &peer, id, b"late")).unwrap();
    sim.run_for(Duration::from_millis(50));
    assert!(outcomes(&mut sim, n[0]).is_empty());
    assert_eq!(sim.node(n[0]).inner.stats().late_responses, 1);
    assert_eq!(sim.node(n[0]).inner.pending(), 0);
}

#[test]
fn a_response_after_the_timeout_is_dropped_and_counted() {
    let (mut sim, n) = sim_with(2, MessagingConfig::default(), 5);
    connect(&mut sim, n[0], n[1]);
    sim.with_node(n[1], |m, _| m.inner.register("slow", "").unwrap());
    let id =
        request(&mut sim, n[0], n[1], "slow", b"", RequestOptions::new().timeout(Duration::from_millis(100))).unwrap();
    sim.run_for(Duration::from_millis(200));
    assert_eq!(outcomes(&mut sim, n[0]).iter().map(|o| o.2.clone()).collect::<Vec<_>>(), [SimOutcome::Timeout]);
    let a = sim.messenger_peer(n[0]);
    sim.with_node(n[1], |m, now| m.inner.respond(now, &a, id, b"too late")).unwrap();
    sim.run_for(Duration::from_millis(50));
    assert!(outcomes(&mut sim, n[0]).is_empty());
    assert_eq!(sim.node(n[0]).inner.stats().late_responses, 1);
}

#[test]
fn versions_handler_errors_and_disconnects_are_distinct_outcomes() {
    let (mut sim, n) = sim_with(2, MessagingConfig::default(), 5);
    connect(&mut sim, n[0], n[1]);
    sim.with_node(n[1], |m, _| m.inner.register("svc", "2.0").unwrap());
    let old = request(&mut sim, n[0], n[1], "svc", b"", RequestOptions::new().version("1.3")).unwrap();
    let new = request(&mut sim, n[0], n[1], "svc", b"", RequestOptions::new().version("2.1")).unwrap();
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        outcomes(&mut sim, n[0]).iter().map(|o| (o.1, o.2.clone())).collect::<Vec<_>>(),
        [(old, SimOutcome::Refused(RefuseCode::VersionMismatch))]
    );
    let a = sim.messenger_peer(n[0]);
    assert_eq!(
        sim.with_node(n[1], |m, now| m.inner.respond_error(now, &a, new, 7, "x")),
        Err(MessagingError::InvalidErrorCode { code: 7 })
    );
    sim.with_node(n[1], |m, now| m.inner.respond_error(now, &a, new, 0x1234, "disk full")).unwrap();
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        outcomes(&mut sim, n[0]).iter().map(|o| (o.1, o.2.clone())).collect::<Vec<_>>(),
        [(new, SimOutcome::Failed { code: 0x1234, message: "disk full".into() })]
    );
    // A session that ends takes its requests with it, as Disconnected.
    let gone = request(&mut sim, n[0], n[1], "svc", b"", RequestOptions::new()).unwrap();
    let b = sim.messenger_peer(n[1]);
    sim.with_node(n[0], |m, now| m.inner.node_mut().disconnect(now, &b)).unwrap();
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        outcomes(&mut sim, n[0]).iter().map(|o| (o.1, o.2.clone())).collect::<Vec<_>>(),
        [(gone, SimOutcome::Disconnected)]
    );
    assert_eq!(sim.node(n[0]).inner.pending(), 0);
}

#[test]
fn send_to_many_reports_each_peer() {
    let (mut sim, n) = sim_with(4, MessagingConfig::default(), 5);
    connect(&mut sim, n[0], n[1]);
    connect(&mut sim, n[0], n[2]);
    let peers = [sim.messenger_peer(n[1]), sim.messenger_peer(n[2]), sim.messenger_peer(n[3])];
    let mut small = [SendReport::EMPTY; 2];
    let r = sim
        .with_node(n[0], |m, now| m.inner.node_mut().send_many(now, &peers, 0x40, Priority::High, b"hi", &mut small));
    assert_eq!(r, Err(MessagingError::ResultsTooSmall { needed: 3 }));
    let mut res = [SendReport::EMPTY; 3];
    let sum = sim
        .with_node(n[0], |m, now| m.inner.node_mut().send_many(now, &peers, 0x40, Priority::High, b"hi", &mut res))
        .unwrap();
    assert_eq!((sum.queued, sum.failed, sum.reported), (2, 1, 3));
    assert_eq!(
        res.map(|r| (r.peer, r.result)),
        [(peers[0], Ok(())), (peers[1], Ok(())), (peers[2], Err(Error::UnknownPeer))]
    );
    let mut all = [SendReport::EMPTY; 2];
    let sum = sim
        .with_node(n[0], |m, now| m.inner.node_mut().send_all(now, 0x03, Priority::Normal, b"all", &mut all))
        .unwrap();
    assert_eq!((sum.queued, sum.reported), (2, 2));
    let mut got: Vec<_> = all.iter().map(|r| r.peer).collect();
    got.sort_by_key(|p| p.0);
    let mut want = peers[..2].to_vec();
    want.sort_by_key(|p| p.0);
    assert_eq!(got, want);
    sim.run_for(Duration::from_millis(50));
    for &p in &n[1..3] {
        let msgs: Vec<_> = sim
            .take_events(p)
            .into_iter()
            .filter_map(|e| match e.event {
                MsgEvent::Node(meshlink_sim::SimEvent::Message { data, .. }) => Some(data),
                _ => None,
            })
            .collect();
        assert_eq!(msgs, [b"hi".to_vec(), b"all".to_vec()]);
    }
    assert!(sim.take_events(n[3]).is_empty());
}
