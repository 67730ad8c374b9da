//! Publish/subscribe through the messaging layer, in virtual time (PROTOCOL.md §15.3;
//! issue 14 acceptance 2).
//!
//! Sessions are STREAM sessions: the simulator models a stream as a reliable pipe, so
//! the links' loss and reordering are absorbed below the session (as TCP does). A
//! datagram session does not retransmit messages (§9), and pub/sub adds no
//! retransmission of its own: exactly-once delivery is claimed over streams.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use meshlink_core::messaging::subject::matches;
use meshlink_core::messaging::{MessagingConfig, MessagingError, PublishReport, SubId};
use meshlink_core::{Config, PeerId, Priority, TransportKind};
use meshlink_sim::messenger::{MsgEvent, SimMessenger};
use meshlink_sim::{LinkConfig, NodeIdx, Sim};

const MS: Duration = Duration::from_millis(1);

fn sim_with(n: usize, mc: MessagingConfig, link: LinkConfig) -> (Sim<SimMessenger>, Vec<NodeIdx>) {
    let mut sim = Sim::<SimMessenger>::with_seed(24);
    sim.set_default_link(link);
    let cfg = Config::default().with(|c| c.dead_peer_timeout = Duration::from_secs(600));
    let nodes: Vec<_> = (0..n).map(|_| sim.add_messenger(cfg.clone(), mc.clone()).unwrap()).collect();
    (sim, nodes)
}

fn connect(sim: &mut Sim<SimMessenger>, a: NodeIdx, b: NodeIdx) {
    sim.connect_messengers(a, b, TransportKind::Stream).unwrap();
    assert!(
        sim.run_until_cond(Duration::from_secs(10), |s| s.messengers_connected(a, b) && s.messengers_connected(b, a))
    );
}

fn subscribe(sim: &mut Sim<SimMessenger>, a: NodeIdx, pattern: &str) -> SubId {
    sim.with_node(a, |m, now| m.inner.subscribe(now, pattern, Priority::Normal)).unwrap()
}

fn publish(sim: &mut Sim<SimMessenger>, a: NodeIdx, subject: &str, body: &[u8]) -> PublishReport {
    sim.with_node(a, |m, now| m.inner.publish(now, subject, body)).unwrap()
}

/// Every event of every node since the last call, in order.
fn drain(sim: &mut Sim<SimMessenger>, nodes: &[NodeIdx]) -> HashMap<NodeIdx, Vec<MsgEvent>> {
    nodes.iter().map(|&n| (n, sim.take_events(n).into_iter().map(|e| e.event).collect())).collect()
}

/// (sub, origin, subject, seq, body) of every publication in `evs`.
fn pubs(evs: &[MsgEvent]) -> Vec<(SubId, PeerId, String, u64, Vec<u8>)> {
    evs.iter()
        .filter_map(|e| match e {
            MsgEvent::Publication { sub, origin, subject, seq, body, .. } => {
                Some((*sub, *origin, subject.clone(), *seq, body.clone()))
            }
            _ => None,
        })
        .collect()
}

fn actives(evs: &[MsgEvent]) -> Vec<(SubId, PeerId)> {
    evs.iter()
        .filter_map(|e| match e {
            MsgEvent::SubscribeActive { sub, peer } => Some((*sub, *peer)),
            _ => None,
        })
        .collect()
}

#[test]
fn twenty_node_mesh_under_loss_delivers_each_publication_to_exactly_the_matching_subscribers_once() {
    let link =
        LinkConfig::default().with_latency(5 * MS).with_jitter(3 * MS).with_loss(0.05).with_reorder(0.05, 20 * MS);
    let (mut sim, n) = sim_with(20, MessagingConfig::default(), link);
    // A random connected graph: a random tree, then 15 more edges (cycles).
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % m as u64) as usize
    };
    let mut edges = BTreeSet::new();
    for i in 1..20 {
        edges.insert((next(i), i));
    }
    while edges.len() < 19 + 15 {
        let (a, b) = (next(20), next(20));
        if a != b && !edges.contains(&(b.min(a), a.max(b))) {
            edges.insert((a.min(b), a.max(b)));
        }
    }
    for &(a, b) in &edges {
        connect(&mut sim, n[a], n[b]);
    }
    let patterns = ["t.a", "t.*", "t.b.>", "x.>", ">", "t.b.c", "y"];
    let mut subs: BTreeMap<(NodeIdx, SubId), &str> = BTreeMap::new();
    for (i, &node) in n.iter().enumerate() {
        for k in 0..(i % 3) {
            let p = patterns[(i * 3 + k) % patterns.len()];
            subs.insert((node, subscribe(&mut sim, node, p)), p);
        }
    }
    sim.run_for(Duration::from_secs(3));
    drain(&mut sim, &n);
    let subjects = ["t.a", "t.b.c", "x.y", "t.b", "q", "y", "t.b.c.d"];
    let mut sent = Vec::new();
    for round in 0..10u32 {
        for (k, s) in subjects.iter().enumerate() {
            let from = n[(round as usize * 7 + k) % 20];
            let body = format!("{round}/{k}").into_bytes();
            let r = publish(&mut sim, from, s, &body);
            sent.push((sim.messenger_peer(from), from, r.seq, *s, body));
        }
        sim.run_for(20 * MS);
    }
    sim.run_for(Duration::from_secs(3));
    let got = drain(&mut sim, &n);
    let mut received: HashMap<(PeerId, u64), Vec<(NodeIdx, SubId)>> = HashMap::new();
    for &node in &n {
        for (sub, origin, subject, seq, body) in pubs(&got[&node]) {
            let (_, _, _, s, b) = sent.iter().find(|x| x.0 == origin && x.2 == seq).expect("a publication never sent");
            assert_eq!((subject.as_str(), &body), (*s, b));
            received.entry((origin, seq)).or_default().push((node, sub));
        }
    }
    let mut total = 0;
    for (origin, from, seq, subject, _) in &sent {
        let mut want: Vec<_> =
            subs.iter().filter(|((node, _), p)| node != from && matches(p, subject)).map(|(k, _)| *k).collect();
        let mut have = received.remove(&(*origin, *seq)).unwrap_or_default();
        want.sort();
        have.sort();
        assert_eq!(have, want, "publication {seq} on {subject} from {from:?}");
        total += want.len();
    }
    assert!(total > 300, "the test covers many deliveries: {total}");
    // Cycles made copies arrive twice: the seen-cache dropped them.
    let dups: u64 = n.iter().map(|&x| sim.node(x).inner.pubsub_stats().duplicates).sum();
    assert!(dups > 0, "the mesh has cycles, so some copies were duplicates");
}

/// One broker, ten peers on it; every peer subscribes.
fn star(mc: MessagingConfig) -> (Sim<SimMessenger>, NodeIdx, Vec<NodeIdx>, Vec<SubId>) {
    let (mut sim, n) = sim_with(11, mc, LinkConfig::default().with_latency(5 * MS));
    let b = n[0];
    let peers = n[1..].to_vec();
    for &p in &peers {
        connect(&mut sim, p, b);
    }
    let subs = peers.iter().map(|&p| subscribe(&mut sim, p, "chat.>")).collect();
    sim.run_for(Duration::from_secs(1));
    (sim, b, peers, subs)
}

#[test]
fn a_broker_relays_a_publication_to_the_other_nine_once_and_never_back() {
    let (mut sim, b, peers, subs) = star(MessagingConfig::default());
    let mut all = peers.clone();
    all.push(b);
    let evs = drain(&mut sim, &all);
    let bp = sim.messenger_peer(b);
    for (i, &p) in peers.iter().enumerate() {
        // Acknowledged by the broker, its only neighbour.
        assert_eq!(actives(&evs[&p]), [(subs[i], bp)], "peer {i}");
    }
    for k in 0..20u8 {
        let r = publish(&mut sim, peers[0], "chat.room", &[k]);
        assert_eq!((r.queued, r.failed), (1, 0), "only the broker has interest");
    }
    sim.run_for(Duration::from_secs(1));
    let evs = drain(&mut sim, &all);
    assert!(pubs(&evs[&peers[0]]).is_empty(), "no echo to the publisher");
    assert!(pubs(&evs[&b]).is_empty(), "the broker has no subscription");
    for (i, &p) in peers.iter().enumerate().skip(1) {
        let got: Vec<_> = pubs(&evs[&p]).into_iter().map(|(s, o, _, _, body)| (s, o, body)).collect();
        let want: Vec<_> = (0..20u8).map(|k| (subs[i], sim.messenger_peer(peers[0]), vec![k])).collect();
        assert_eq!(got, want, "peer {i}: each once, in order");
    }
    let st = sim.node(b).inner.pubsub_stats();
    assert_eq!(st.forwarded, 20 * 9, "nine copies each, none back to the publisher");
    for &p in &peers {
        assert_eq!(sim.node(p).inner.pubsub_stats().duplicates, 0);
    }
}

#[test]
fn a_subscriber_gets_every_publication_sent_after_its_acknowledgement() {
    // Publisher P and subscriber S on broker B; P's link no slower than S's, so P holds
    // the interest when S learns that B holds it.
    let (mut sim, n) = sim_with(3, MessagingConfig::default(), LinkConfig::default().with_latency(10 * MS));
    let (p, b, s) = (n[0], n[1], n[2]);
    sim.set_links(p, b, LinkConfig::default().with_latency(4 * MS));
    connect(&mut sim, p, b);
    connect(&mut sim, s, b);
    drain(&mut sim, &n);
    let mut sub = None;
    let mut active_at = None;
    let mut sent_after = Vec::new();
    let mut checked = 0;
    for k in 0..400u32 {
        if k == 100 {
            sub = Some(subscribe(&mut sim, s, "feed.*"));
        }
        let r = publish(&mut sim, p, "feed.x", &k.to_le_bytes());
        if active_at.is_some() {
            sent_after.push(r.seq);
            checked += 1;
        }
        sim.run_for(MS);
        for e in sim.take_events(s) {
            match e.event {
                MsgEvent::SubscribeActive { sub: x, .. } if Some(x) == sub => active_at = Some(e.at),
                MsgEvent::Publication { seq, .. } => sent_after.retain(|q| *q != seq),
                _ => {}
            }
        }
    }
    sim.run_for(Duration::from_secs(1));
    for e in sim.take_events(s) {
        if let MsgEvent::Publication { seq, .. } = e.event {
            sent_after.retain(|q| *q != seq);
        }
    }
    assert!(active_at.is_some(), "the subscription was acknowledged");
    assert!(checked > 250, "acknowledged within a few round trips: {checked} publications checked");
    assert!(sent_after.is_empty(), "publications sent after SubscribeActive and lost: {sent_after:?}");
}

#[test]
fn unsubscribe_stops_delivery_and_propagates() {
    let (mut sim, n) = sim_with(3, MessagingConfig::default(), LinkConfig::default().with_latency(5 * MS));
    connect(&mut sim, n[0], n[1]);
    connect(&mut sim, n[1], n[2]);
    let sub = subscribe(&mut sim, n[2], "a.b");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(publish(&mut sim, n[0], "a.b", b"1").queued, 1);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(pubs(&drain(&mut sim, &n)[&n[2]]).len(), 1);
    sim.with_node(n[2], |m, now| m.inner.unsubscribe(now, sub)).unwrap();
    assert_eq!(sim.with_node(n[2], |m, now| m.inner.unsubscribe(now, sub)), Err(MessagingError::UnknownSub));
    sim.run_for(Duration::from_secs(1));
    let r = publish(&mut sim, n[0], "a.b", b"2");
    assert_eq!(r.queued, 0, "the publisher's neighbour forgot the interest");
    sim.run_for(Duration::from_secs(1));
    assert!(pubs(&drain(&mut sim, &n)[&n[2]]).is_empty());
    assert_eq!(sim.node(n[1]).inner.pubsub_stats().forwarded, 1, "the relay sent only the first");
}

#[test]
fn a_slow_consumer_drops_with_a_count_and_the_publisher_is_told() {
    let interval = Duration::from_secs(1);
    let mc = MessagingConfig::default().with(|c| {
        c.sub_queue = 4;
        c.slow_notice_interval = interval;
    });
    let (mut sim, n) = sim_with(3, mc, LinkConfig::default().with_latency(5 * MS));
    let (p, b, s) = (n[0], n[1], n[2]);
    connect(&mut sim, p, b);
    connect(&mut sim, b, s);
    let sub = subscribe(&mut sim, s, "news");
    sim.run_for(Duration::from_secs(1));
    drain(&mut sim, &n);
    for k in 0..10u8 {
        publish(&mut sim, p, "news", &[k]);
    }
    sim.run_for(Duration::from_millis(200));
    let evs = drain(&mut sim, &n);
    assert_eq!(pubs(&evs[&s]).len(), 4, "the queue bound");
    assert_eq!(sim.node(s).inner.sub_dropped(sub), Some(6));
    assert_eq!(sim.node(s).inner.pubsub_stats().dropped_slow, 6);
    let notices: Vec<_> = evs[&p]
        .iter()
        .filter_map(|e| match e {
            MsgEvent::SlowConsumer { subscriber, subject, dropped, .. } => {
                Some((*subscriber, subject.clone(), *dropped))
            }
            _ => None,
        })
        .collect();
    // Rate-limited: one notice for the first drop of the interval.
    assert_eq!(notices, [(sim.messenger_peer(s), "news".to_owned(), 1)]);
    // After the interval, the next drop reports the five not yet told, plus itself.
    sim.run_for(interval);
    publish(&mut sim, p, "news", b"late");
    sim.run_for(Duration::from_millis(200));
    let evs = drain(&mut sim, &n);
    let dropped: Vec<_> = evs[&p]
        .iter()
        .filter_map(|e| match e {
            MsgEvent::SlowConsumer { dropped, .. } => Some(*dropped),
            _ => None,
        })
        .collect();
    assert_eq!(dropped, [6]);
    // Consuming frees the queue: delivery resumes.
    sim.with_node(s, |m, _| m.inner.consumed(sub, 4)).unwrap();
    publish(&mut sim, p, "news", b"again");
    sim.run_for(Duration::from_millis(200));
    assert_eq!(pubs(&drain(&mut sim, &n)[&s]).len(), 1);
}

#[test]
fn caps_at_their_edges() {
    // Subscriptions per node, and the pattern grammar's length limit.
    let mc = MessagingConfig::default().with(|c| {
        c.max_subs = 3;
        c.max_interest_per_origin = 3;
    });
    let (mut sim, n) = sim_with(1, mc, LinkConfig::default());
    for i in 0..3 {
        subscribe(&mut sim, n[0], &format!("s.{i}"));
    }
    let r = sim.with_node(n[0], |m, now| m.inner.subscribe(now, "s.x", Priority::Low));
    assert_eq!(r, Err(MessagingError::SubLimit { limit: 3 }));
    let long = "a".repeat(257);
    let r = sim.with_node(n[0], |m, now| m.inner.subscribe(now, &long, Priority::Low));
    assert!(matches!(r, Err(MessagingError::Subject(_))));
    let r = sim.with_node(n[0], |m, now| m.inner.publish(now, "a.*", b""));
    assert!(matches!(r, Err(MessagingError::Subject(_))), "a publish subject must be literal");
}

#[test]
fn a_neighbour_keeps_at_most_its_per_origin_limit_and_says_so() {
    let (mut sim, n) = sim_with(0, MessagingConfig::default(), LinkConfig::default().with_latency(5 * MS));
    let cfg = Config::default().with(|c| c.dead_peer_timeout = Duration::from_secs(600));
    let a = sim.add_messenger(cfg.clone(), MessagingConfig::default()).unwrap();
    let small = MessagingConfig::default().with(|c| {
        c.max_subs = 2;
        c.max_interest_per_origin = 2;
    });
    let b = sim.add_messenger(cfg, small).unwrap();
    let _ = n;
    connect(&mut sim, a, b);
    for p in ["x.1", "x.2", "x.3"] {
        subscribe(&mut sim, a, p);
    }
    sim.run_for(Duration::from_secs(1));
    let evs = drain(&mut sim, &[a, b]);
    let limited: Vec<_> = evs[&a]
        .iter()
        .filter_map(|e| match e {
            MsgEvent::InterestLimited { peer, accepted } => Some((*peer, *accepted)),
            _ => None,
        })
        .collect();
    assert_eq!(limited, [(sim.messenger_peer(b), 2)], "the third subscription's set is refused past 2");
    assert_eq!(sim.node(b).inner.pubsub_stats().interest_refused, 1);
    // Exactly two of the three patterns reach a: one publication each from b.
    let queued: usize = ["x.1", "x.2", "x.3"].iter().map(|s| publish(&mut sim, b, s, b"").queued).sum();
    assert_eq!(queued, 2);
}

#[test]
fn interest_and_publications_stop_at_max_hops() {
    let mc = MessagingConfig::default().with(|c| c.max_hops = 2);
    let (mut sim, n) = sim_with(4, mc, LinkConfig::default().with_latency(5 * MS));
    for i in 0..3 {
        connect(&mut sim, n[i], n[i + 1]);
    }
    subscribe(&mut sim, n[3], "far");
    sim.run_for(Duration::from_secs(1));
    // n[3]'s set crossed two links (to n[1]); n[0] dropped it.
    assert_eq!(sim.node(n[0]).inner.pubsub_stats().hops_exceeded, 1);
    assert_eq!(publish(&mut sim, n[0], "far", b"").queued, 0);
    assert_eq!(publish(&mut sim, n[1], "far", b"").queued, 1);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(pubs(&drain(&mut sim, &n)[&n[3]]).len(), 1);
    // A publication that arrives with its hop count at the limit is dropped and counted.
    let raw = {
        use meshlink_core::messaging::pubsub::packet::{PubSubPacket, PublicationPacket};
        let origin = sim.messenger_peer(n[2]).0;
        let p = PubSubPacket::Publication(PublicationPacket { hops: 2, origin, seq: 99, subject: "far", body: b"" });
        let mut buf = [0u8; 128];
        let len = p.encode(&mut buf).unwrap();
        buf[..len].to_vec()
    };
    let to = sim.messenger_peer(n[3]);
    sim.with_node(n[2], |m, now| m.inner.send_raw_messaging(now, &to, 0x18, &raw)).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert!(pubs(&drain(&mut sim, &n)[&n[3]]).is_empty());
    assert_eq!(sim.node(n[3]).inner.pubsub_stats().hops_exceeded, 1);
}

#[test]
fn an_unsubscribe_is_not_kept_alive_around_a_cycle() {
    // A ring of five: per-neighbour refcounted interest would keep counting its own echo.
    let (mut sim, n) = sim_with(5, MessagingConfig::default(), LinkConfig::default().with_latency(5 * MS));
    for i in 0..5 {
        connect(&mut sim, n[i], n[(i + 1) % 5]);
    }
    let sub = subscribe(&mut sim, n[0], "ring.>");
    sim.run_for(Duration::from_secs(1));
    for &x in &n[1..] {
        assert!(publish(&mut sim, x, "ring.a", b"").queued >= 1, "every node routes towards the subscriber");
    }
    sim.run_for(Duration::from_secs(1));
    assert_eq!(pubs(&drain(&mut sim, &n)[&n[0]]).len(), 4, "each once");
    sim.with_node(n[0], |m, now| m.inner.unsubscribe(now, sub)).unwrap();
    sim.run_for(Duration::from_secs(1));
    for &x in &n[1..] {
        assert_eq!(publish(&mut sim, x, "ring.a", b"").queued, 0, "interest gone everywhere");
    }
}

#[test]
fn a_late_neighbour_learns_the_interest_and_a_closed_path_falls_back_to_the_other() {
    // A square a-b-c-d-a: the subscriber c is reachable through b and through d.
    let (mut sim, n) = sim_with(4, MessagingConfig::default(), LinkConfig::default().with_latency(5 * MS));
    let (a, b, c, d) = (n[0], n[1], n[2], n[3]);
    sim.set_links(a, d, LinkConfig::default().with_latency(20 * MS));
    connect(&mut sim, a, b);
    connect(&mut sim, b, c);
    connect(&mut sim, c, d);
    subscribe(&mut sim, c, "sq");
    sim.run_for(Duration::from_secs(1));
    // a-d comes up after the subscription: the full sync on the new session teaches it.
    connect(&mut sim, a, d);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(publish(&mut sim, a, "sq", b"1").queued, 1, "one next hop towards c: b, the faster way");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(pubs(&drain(&mut sim, &n)[&c]).len(), 1);
    // Close a-b: a's route to c falls back to d, which had delivered the same version.
    let bp = sim.messenger_peer(b);
    sim.with_node(a, |m, now| m.inner.node_mut().disconnect(now, &bp)).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert!(!sim.messengers_connected(a, b));
    let r = publish(&mut sim, a, "sq", b"2");
    assert_eq!(r.queued, 1, "d is the next hop now");
    sim.run_for(Duration::from_secs(1));
    let got = pubs(&drain(&mut sim, &n)[&c]);
    assert_eq!(got.iter().map(|x| x.4.clone()).collect::<Vec<_>>(), [b"2".to_vec()]);
}
