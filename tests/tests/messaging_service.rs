//! Services (§15.4; issue 14 acceptance 3) in virtual time: providers known from
//! interest, strategies, and failover within the deadline.

use std::collections::HashMap;
use std::time::Duration;

use meshlink_core::messaging::{CallId, MessagingConfig, MessagingError, ServiceOptions, Strategy};
use meshlink_core::{Config, Instant, PeerId, TransportKind};
use meshlink_sim::messenger::{MsgEvent, SimMessenger};
use meshlink_sim::{LinkConfig, NodeIdx, Sim};

/// A requester (node 0) connected to `providers` provider nodes offering "echo".
fn setup(providers: usize, latency_ms: &[u64]) -> (Sim<SimMessenger>, Vec<NodeIdx>) {
    let cfg = Config::default().with(|c| c.dead_peer_timeout = Duration::from_secs(600));
    let mc = MessagingConfig::default();
    let mut sim = Sim::<SimMessenger>::with_seed(25);
    sim.set_default_link(LinkConfig::default().with_latency(Duration::from_millis(5)));
    let n: Vec<_> = (0..=providers).map(|_| sim.add_messenger(cfg.clone(), mc.clone()).unwrap()).collect();
    for (k, &p) in n[1..].iter().enumerate() {
        if let Some(&ms) = latency_ms.get(k) {
            sim.set_links(n[0], p, LinkConfig::default().with_latency(Duration::from_millis(ms)));
        }
        sim.connect_messengers(n[0], p, TransportKind::Datagram).unwrap();
        assert!(sim.run_until_cond(Duration::from_secs(10), |s| s.messengers_connected(n[0], p)
            && s.messengers_connected(p, n[0])));
        sim.with_node(p, |m, now| {
            m.echo = true;
            m.inner.register_service(now, "echo", "echoes the body", "1.0").unwrap();
        });
    }
    // Interest settles.
    sim.run_for(Duration::from_secs(1));
    for &i in &n {
        sim.take_events(i);
    }
    (sim, n)
}

fn call(
    sim: &mut Sim<SimMessenger>,
    a: NodeIdx,
    s: Strategy<'_>,
    opts: ServiceOptions<'_>,
) -> Result<CallId, MessagingError> {
    sim.with_node(a, |m, now| m.inner.request_service(now, "echo", b"hi", s, opts))
}

/// Every finished call: (when, attempts, answered by, outcome).
fn done(sim: &mut Sim<SimMessenger>, a: NodeIdx) -> HashMap<CallId, (Instant, u8, Option<PeerId>, String)> {
    sim.take_events(a)
        .into_iter()
        .filter_map(|e| match e.event {
            MsgEvent::Service { call, attempts, answered_by, outcome } => {
                Some((call, (e.at, attempts, answered_by, outcome)))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn round_robin_spreads_300_requests_evenly_over_3_providers() {
    let (mut sim, n) = setup(3, &[]);
    let mut by: HashMap<PeerId, usize> = HashMap::new();
    for _ in 0..30 {
        let ids: Vec<_> =
            (0..10).map(|_| call(&mut sim, n[0], Strategy::RoundRobin, ServiceOptions::new()).unwrap()).collect();
        sim.run_for(Duration::from_millis(100));
        let d = done(&mut sim, n[0]);
        for id in ids {
            let (_, attempts, p, o) = &d[&id];
            assert_eq!((o.as_str(), *attempts), ("Response", 1));
            *by.entry(p.unwrap()).or_default() += 1;
        }
    }
    assert_eq!(by.len(), 3);
    assert!(by.values().all(|&c| (99..=101).contains(&c)), "{by:?}");
}

#[test]
fn lowest_latency_picks_the_provider_with_the_lowest_rtt() {
    let (mut sim, n) = setup(3, &[40, 5, 20]);
    // Pings measure the RTTs (every 5 s by default).
    sim.run_for(Duration::from_secs(12));
    sim.take_events(n[0]);
    let fast = sim.messenger_peer(n[2]);
    for _ in 0..20 {
        let id = call(&mut sim, n[0], Strategy::LowestLatency, ServiceOptions::new()).unwrap();
        sim.run_for(Duration::from_millis(200));
        let d = done(&mut sim, n[0]);
        assert_eq!(d[&id].2, Some(fast));
    }
}

#[test]
fn a_provider_dying_mid_run_loses_no_request() {
    let (mut sim, n) = setup(3, &[]);
    let deadline = Duration::from_secs(3);
    let mut sent: HashMap<CallId, Instant> = HashMap::new();
    let mut ended = HashMap::new();
    for round in 0..40 {
        if round == 10 {
            sim.crash(n[2]);
        }
        for _ in 0..5 {
            let now = sim.now();
            let id = call(&mut sim, n[0], Strategy::RoundRobin, ServiceOptions::new().deadline(deadline).retries(2))
                .unwrap();
            sent.insert(id, now);
        }
        sim.run_for(Duration::from_millis(100));
        ended.extend(done(&mut sim, n[0]));
    }
    sim.run_for(Duration::from_secs(5));
    ended.extend(done(&mut sim, n[0]));
    assert_eq!(ended.len(), sent.len(), "every call ends exactly once");
    let mut failovers = 0;
    for (id, t0) in &sent {
        let (at, attempts, _, o) = &ended[id];
        assert!(*at <= t0.saturating_add(deadline), "call ended after its deadline");
        assert_eq!(o, "Response", "three providers, two alive: every call is answered");
        if *attempts > 1 {
            failovers += 1;
        }
    }
    assert!(failovers > 0, "some calls went to the dead provider first");
    assert_eq!(sim.node(n[0]).inner.service_calls(), 0);
}

#[test]
fn no_provider_is_a_typed_error_and_unregistered_providers_fail_over() {
    let (mut sim, n) = setup(2, &[]);
    let e = sim.with_node(n[0], |m, now| {
        m.inner.request_service(now, "nope", b"", Strategy::RoundRobin, ServiceOptions::new())
    });
    assert_eq!(e, Err(MessagingError::NoProviders));
    // Provider 1 drops its handler only (its interest stays): NoResponders, failover.
    sim.with_node(n[1], |m, _| {
        let h = m.inner.services().count();
        assert_eq!(h, 1);
    });
    let e = sim.with_node(n[0], |m, now| {
        m.inner.request_service(now, "echo", b"", Strategy::RoundRobin, ServiceOptions::new().retries(8))
    });
    assert_eq!(e, Err(MessagingError::RetryLimit { max: 7 }));
}
