//! Unit tests of the messenger and send-to-many over two or three in-memory nodes
//! (stream sessions, a perfect pipe); the multi-node and timing cases are in the
//! simulator (`tests/tests/messaging_request.rs`).

use std::vec::Vec;

use super::*;
use crate::{Config, ConnId, HeapNode, Instant, Keypair, PeerId, TransportKind};

fn cfg() -> Config {
    Config::default().with(|c| {
        c.max_message = 2048;
        c.send_queue = 16_384;
        c.max_frame = 4096;
    })
}

fn messenger(id: u8, mc: MessagingConfig) -> HeapMessenger {
    let node = HeapNode::with_capacity(cfg(), Keypair::from_secret([id; 32]), [id; 32], 4).unwrap();
    HeapMessenger::with_capacity(node, mc).unwrap()
}

/// Messengers joined by stream pipes; `links` are (i, conn at i, j, conn at j).
struct Net {
    m: Vec<HeapMessenger>,
    links: Vec<(usize, ConnId, usize, ConnId)>,
    now: Instant,
}

impl Net {
    fn new(n: usize) -> Self {
        let m = (0..n).map(|i| messenger(i as u8 + 1, MessagingConfig::default())).collect();
        Net { m, links: Vec::new(), now: Instant::from_millis(1) }
    }
    fn peer(&self, i: usize) -> PeerId {
        self.m[i].node().peer_id()
    }
    fn link(&mut self, i: usize, j: usize) {
        let addr = "127.0.0.1:9".parse().unwrap();
        let expected = Some(self.peer(j));
        let ci = self.m[i].node_mut().connect(self.now, TransportKind::Stream, addr, expected).unwrap();
        let cj = self.m[j].node_mut().accept(self.now, addr).unwrap();
        self.links.push((i, ci, j, cj));
        self.pump();
    }
    /// Moves bytes until quiet; returns every event as (node, Debug text).
    fn pump(&mut self) -> Vec<(usize, std::string::String)> {
        let mut out = Vec::new();
        let mut buf = std::vec![0u8; 8192];
        for _ in 0..32 {
            let mut moved = false;
            for a in 0..self.m.len() {
                if self.m[a].poll_timeout().is_some_and(|t| t <= self.now) {
                    self.m[a].handle_timeout(self.now);
                }
                while let Some(t) = self.m[a].poll_transmit(self.now, &mut buf) {
                    moved = true;
                    // The other end of the link this transmit's connection belongs to.
                    let to = self.links.iter().find_map(|&(i, ci, j, cj)| match t.conn {
                        Some(c) if i == a && c == ci => Some((j, cj)),
                        Some(c) if j == a && c == cj => Some((i, ci)),
                        _ => None,
                    });
                    let Some((b, cb)) = to else { continue };
                    let mut at = 0;
                    while at < t.len {
                        at += self.m[b].handle_stream(cb, self.now, &buf[at..t.len]).unwrap_or(t.len);
                        while let Some(e) = self.m[b].poll_event() {
                            out.push((b, std::format!("{e:?}")));
                        }
                    }
                }
                while let Some(e) = self.m[a].poll_event() {
                    moved = true;
                    out.push((a, std::format!("{e:?}")));
                }
            }
            if !moved {
                break;
            }
        }
        out
    }
}

#[test]
fn a_request_is_answered_and_only_its_peer_can_answer_it() {
    let mut net = Net::new(3);
    net.link(0, 1);
    net.link(0, 2);
    net.m[1].register("echo.*", "1").unwrap();
    let (b, c) = (net.peer(1), net.peer(2));
    let now = net.now;
    let id = net.m[0].request(now, &b, "echo.x", b"ping", RequestOptions::new().version("1.9")).unwrap();
    assert_eq!((net.m[0].pending(), net.m[0].pending_to(&b), net.m[0].pending_to(&c)), (1, 1, 0));
    // b gets the request; c (which never got it) answers that id first: not accepted.
    let mut got = None;
    for (who, e) in net.pump() {
        if who == 1 && e.starts_with("Request") {
            got = Some(e);
        }
    }
    assert!(got.unwrap().contains("subject: \"echo.x\""));
    let a = net.peer(0);
    net.m[2].respond(now, &a, id, b"forged").unwrap();
    let evs = net.pump();
    assert!(!evs.iter().any(|(w, e)| *w == 0 && e.starts_with("Outcome")), "{evs:?}");
    assert_eq!(net.m[0].stats().late_responses, 1);
    net.m[1].respond(now, &a, id, b"pong").unwrap();
    let evs = net.pump();
    let outcome: Vec<_> = evs.iter().filter(|(w, e)| *w == 0 && e.starts_with("Outcome")).collect();
    assert_eq!(outcome.len(), 1);
    assert!(outcome[0].1.contains("Response([112, 111, 110, 103])"), "{outcome:?}");
    assert_eq!(net.m[0].pending(), 0);
}

#[test]
fn expired_and_malformed_requests_are_refused_not_delivered() {
    let mut net = Net::new(2);
    net.link(0, 1);
    net.m[1].register(">", "").unwrap();
    let b = net.peer(1);
    let now = net.now;
    let mut body = [0u8; 64];
    let expired = request::Packet::Request(request::RequestPacket {
        id: 77,
        parent: None,
        timeout_ms: 0,
        version: "",
        subject: "a",
        body: b"",
    });
    let n = expired.encode(&mut body).unwrap();
    net.m[0].send_raw_messaging(now, &b, crate::wire::kind::REQUEST, &body[..n]).unwrap();
    // A request with a wildcard subject: the id decodes, the rest does not validate.
    let mut bad = std::vec![0x4e, 0, 1, 0, 3];
    bad.extend_from_slice(b"a.*");
    bad.push(0);
    net.m[0].send_raw_messaging(now, &b, crate::wire::kind::REQUEST, &bad).unwrap();
    // Garbage under every kind: dropped and counted, the session carries on.
    for k in crate::wire::kind::MESSAGING {
        net.m[0].send_raw_messaging(now, &b, *k, &[0xff; 3]).unwrap();
    }
    let evs = net.pump();
    assert!(!evs.iter().any(|(w, e)| *w == 1 && e.starts_with("Request")), "{evs:?}");
    let st = net.m[1].stats();
    assert_eq!((st.refusals_sent, st.malformed), (2, 5));
    // Both refusals came back to a node with no such pending requests: counted late.
    assert_eq!(net.m[0].stats().late_responses, 2);
    assert_eq!(net.m[0].node().stats().connected, 1);
    assert!(net.m[0].send_raw_messaging(now, &b, 0x40, b"").is_err(), "only messaging kinds");
}

#[test]
fn storage_and_config_are_checked_at_their_edges() {
    let node = || HeapNode::with_capacity(cfg(), Keypair::from_secret([9; 32]), [9; 32], 4).unwrap();
    let mc = MessagingConfig::default();
    let base = || MessengerStorage::new().requests(std::vec![RequestSlot::EMPTY; 4]).scratch(std::vec![0u8; 1024]);
    let e = Messenger::new(node(), mc.clone(), base().conns(std::vec![ConnEntry::EMPTY; 3])).unwrap_err();
    assert!(matches!(e, MessagingError::InvalidConfig(c) if c.field == "conns"), "{e:?}");
    let st = MessengerStorage::new()
        .requests(std::vec![RequestSlot::EMPTY; 4])
        .conns(std::vec![ConnEntry::EMPTY; 4])
        .scratch(std::vec![0u8; request::REQUEST_OVERHEAD_MAX - 1]);
    assert!(
        matches!(Messenger::new(node(), mc.clone(), st), Err(MessagingError::InvalidConfig(c)) if c.field == "scratch")
    );
    let st = MessengerStorage::new().conns(std::vec![ConnEntry::EMPTY; 4]).scratch(std::vec![0u8; 1024]);
    assert!(
        matches!(Messenger::new(node(), mc.clone(), st), Err(MessagingError::InvalidConfig(c)) if c.field == "requests")
    );
    // Limits are lowered to the tables.
    let st = base().conns(std::vec![ConnEntry::EMPTY; 4]).handlers(std::vec![HandlerSlot::EMPTY; 2]);
    let mut m = Messenger::new(node(), mc.clone(), st).unwrap();
    assert_eq!((m.config().max_pending, m.config().max_pending_per_peer, m.config().max_handlers), (4, 4, 2));
    let h = m.register("a.>", "").unwrap();
    m.register("b", "2.1").unwrap();
    assert_eq!(m.register("c", ""), Err(MessagingError::HandlerLimit { limit: 2 }));
    assert_eq!(m.register("d.*", "x"), Err(MessagingError::InvalidVersion));
    assert_eq!(m.register("d..e", ""), Err(MessagingError::Subject(SubjectError::EmptyToken { at: 1 })));
    m.unregister(h).unwrap();
    assert_eq!(m.unregister(h), Err(MessagingError::UnknownHandler));
    m.register("c", "").unwrap();
    let peer = PeerId([3; 32]);
    let now = Instant::ZERO;
    assert_eq!(
        m.request(now, &peer, "a.*", b"", RequestOptions::new()),
        Err(MessagingError::Subject(SubjectError::Wildcard))
    );
    assert_eq!(
        m.request(now, &peer, "a", b"", RequestOptions::new()),
        Err(MessagingError::Node(crate::Error::UnknownPeer))
    );
    assert_eq!(m.pending(), 0, "a refused request keeps nothing");
    assert_eq!(m.cancel(now, 1 << 16), Err(MessagingError::UnknownRequest));
    assert_eq!(m.respond_error(now, &peer, 1, 0xff, ""), Err(MessagingError::InvalidErrorCode { code: 0xff }));
    let long = "x".repeat(request::MESSAGE_MAX + 1);
    assert_eq!(
        m.respond_error(now, &peer, 1, 0x100, &long),
        Err(MessagingError::MessageTooLong { max: request::MESSAGE_MAX })
    );
    for bad in [
        mc.clone().with(|c| c.max_pending = 0),
        mc.clone().with(|c| c.max_pending_per_peer = c.max_pending + 1),
        mc.clone().with(|c| c.default_timeout = core::time::Duration::ZERO),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn a_too_large_body_is_refused_locally_and_keeps_nothing() {
    let mut net = Net::new(2);
    net.link(0, 1);
    let b = net.peer(1);
    let now = net.now;
    let big = std::vec![0u8; 2048];
    let e = net.m[0].request(now, &b, "a", &big, RequestOptions::new()).unwrap_err();
    assert!(matches!(e, MessagingError::TooLarge { .. }), "{e:?}");
    assert_eq!(net.m[0].pending(), 0);
}

#[test]
fn send_all_checks_its_result_slice_and_kind() {
    let mut net = Net::new(3);
    net.link(0, 1);
    net.link(0, 2);
    let now = net.now;
    let n = net.m[0].node_mut();
    let mut one = [SendReport::EMPTY; 1];
    assert_eq!(
        n.send_all(now, 0x40, crate::Priority::Low, b"x", &mut one),
        Err(MessagingError::ResultsTooSmall { needed: 2 })
    );
    let mut two = [SendReport::EMPTY; 2];
    assert_eq!(
        n.send_all(now, crate::wire::kind::REQUEST, crate::Priority::Low, b"x", &mut two),
        Err(MessagingError::Node(crate::Error::InvalidKind { kind: crate::wire::kind::REQUEST }))
    );
    let sum = n.send_all(now, 0x40, crate::Priority::Low, b"x", &mut two).unwrap();
    assert_eq!((sum.queued, sum.failed, sum.reported), (2, 0, 2));
}

#[test]
fn an_application_may_refuse_busy_but_not_with_the_layers_own_codes() {
    let mut net = Net::new(2);
    net.link(0, 1);
    net.m[1].register("work", "").unwrap();
    let (a, b) = (net.peer(0), net.peer(1));
    let now = net.now;
    let id = net.m[0].request(now, &b, "work", b"job", RequestOptions::new()).unwrap();
    net.pump();
    for code in [RefuseCode::NoResponders, RefuseCode::VersionMismatch, RefuseCode::Malformed, RefuseCode::Other(9)] {
        let r = net.m[1].refuse(now, &a, id, code);
        assert_eq!(r, Err(MessagingError::InvalidErrorCode { code: code.to_u16() }), "{code:?}");
    }
    assert_eq!(net.m[0].pending(), 1, "nothing was sent");
    net.m[1].refuse(now, &a, id, RefuseCode::Busy).unwrap();
    let evs = net.pump();
    let outcome: Vec<_> = evs.iter().filter(|(w, e)| *w == 0 && e.starts_with("Outcome")).collect();
    assert_eq!(outcome.len(), 1, "{evs:?}");
    assert!(outcome[0].1.contains("Busy"), "{outcome:?}");
    assert_eq!(net.m[0].pending(), 0);
}
