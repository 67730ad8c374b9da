//! RPC through the messaging layer, in virtual time (PROTOCOL.md §15.5; issue 14
//! acceptance 4): built-ins, a user function round trip, unknown function, bad arguments.

use std::collections::BTreeMap;
use std::time::Duration;

use meshlink_core::messaging::rpc::{OwnedValue, RpcError, ValueError, BAD_ARGUMENTS, UNKNOWN_FUNCTION};
use meshlink_core::messaging::{MessagingConfig, RefuseCode, RequestOptions};
use meshlink_core::{Config, TransportKind};
use meshlink_sim::messenger::{MsgEvent, SimMessenger, SimOutcome};
use meshlink_sim::{LinkConfig, NodeIdx, Sim};

fn sim(n: usize) -> (Sim<SimMessenger>, Vec<NodeIdx>) {
    let cfg = Config::default().with(|c| c.dead_peer_timeout = Duration::from_secs(600));
    let mut sim = Sim::<SimMessenger>::with_seed(26);
    sim.set_default_link(LinkConfig::default().with_latency(Duration::from_millis(10)));
    let nodes: Vec<_> = (0..n).map(|_| sim.add_messenger(cfg.clone(), MessagingConfig::default()).unwrap()).collect();
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

fn enc(v: &OwnedValue) -> Vec<u8> {
    v.to_vec().unwrap()
}

fn call(sim: &mut Sim<SimMessenger>, a: NodeIdx, b: NodeIdx, name: &str, args: &[u8]) -> Result<u64, RpcError> {
    let peer = sim.messenger_peer(b);
    sim.with_node(a, |m, now| m.inner.call(now, &peer, name, args, RequestOptions::new()))
}

/// Runs until `a` has the outcome of `id`; returns it.
fn outcome(sim: &mut Sim<SimMessenger>, a: NodeIdx, id: u64) -> SimOutcome {
    let has = |s: &Sim<SimMessenger>| {
        s.events(a).iter().any(|e| matches!(e.event, MsgEvent::Outcome { id: i, .. } if i == id))
    };
    assert!(sim.run_until_cond(Duration::from_secs(5), has), "an outcome within 5 s");
    sim.take_events(a)
        .into_iter()
        .find_map(|e| match e.event {
            MsgEvent::Outcome { id: i, outcome, .. } if i == id => Some(outcome),
            _ => None,
        })
        .unwrap()
}

/// Runs until `b` is called; returns (caller, id, name, args).
fn next_call(sim: &mut Sim<SimMessenger>, b: NodeIdx) -> (meshlink_core::PeerId, u64, String, Vec<u8>) {
    let has = |s: &Sim<SimMessenger>| s.events(b).iter().any(|e| matches!(e.event, MsgEvent::Call { .. }));
    assert!(sim.run_until_cond(Duration::from_secs(5), has), "the call arrives");
    sim.take_events(b)
        .into_iter()
        .find_map(|e| match e.event {
            MsgEvent::Call { peer, id, name, args } => Some((peer, id, name, args)),
            _ => None,
        })
        .unwrap()
}

fn nothing() -> Vec<u8> {
    enc(&OwnedValue::List(vec![]))
}

#[test]
fn get_funcs_lists_the_registered_functions() {
    let (mut sim, n) = sim(2);
    connect(&mut sim, n[0], n[1]);
    sim.with_node(n[1], |m, _| {
        m.inner.register_fn("math.add", "1.2").unwrap();
        m.inner.register_fn("echo", "").unwrap();
    });
    let id = call(&mut sim, n[0], n[1], "get_funcs", &nothing()).unwrap();
    let SimOutcome::Response(body) = outcome(&mut sim, n[0], id) else { panic!("no response") };
    let entry = |name: &str, version: &str| {
        OwnedValue::Map(BTreeMap::from([
            ("name".to_string(), OwnedValue::Str(name.into())),
            ("version".to_string(), OwnedValue::Str(version.into())),
        ]))
    };
    assert_eq!(OwnedValue::decode(&body).unwrap(), OwnedValue::List(vec![entry("math.add", "1.2"), entry("echo", "")]));
}

#[test]
fn get_peers_lists_the_connected_peers() {
    let (mut sim, n) = sim(3);
    connect(&mut sim, n[0], n[1]);
    connect(&mut sim, n[1], n[2]);
    let id = call(&mut sim, n[0], n[1], "get_peers", &nothing()).unwrap();
    let SimOutcome::Response(body) = outcome(&mut sim, n[0], id) else { panic!("no response") };
    let OwnedValue::List(peers) = OwnedValue::decode(&body).unwrap() else { panic!("not a list") };
    let mut got: Vec<String> =
        peers.into_iter().map(|p| if let OwnedValue::Str(s) = p { s } else { panic!("{p:?}") }).collect();
    got.sort();
    let mut want = vec![sim.messenger_peer(n[0]).to_string(), sim.messenger_peer(n[2]).to_string()];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_user_function_round_trips_and_its_error_is_typed() {
    let (mut sim, n) = sim(2);
    connect(&mut sim, n[0], n[1]);
    sim.with_node(n[1], |m, _| m.inner.register_fn("math.add", "1").unwrap());
    let args = enc(&OwnedValue::List(vec![OwnedValue::Int(40), OwnedValue::Int(2)]));
    let id = call(&mut sim, n[0], n[1], "math.add", &args).unwrap();
    // The callee gets the call with its arguments; the test is the function.
    let (peer, cid, name, got) = next_call(&mut sim, n[1]);
    assert_eq!(name, "math.add");
    let OwnedValue::List(xs) = OwnedValue::decode(&got).unwrap() else { panic!() };
    let sum: i64 = xs.iter().map(|x| if let OwnedValue::Int(i) = x { *i } else { 0 }).sum();
    let result = enc(&OwnedValue::Int(sum));
    sim.with_node(n[1], |m, now| m.inner.reply(now, &peer, cid, &result)).unwrap();
    assert_eq!(outcome(&mut sim, n[0], id), SimOutcome::Response(result));

    // A second call answered with the function's error.
    let id = call(&mut sim, n[0], n[1], "math.add", &args).unwrap();
    let (_, cid, _, _) = next_call(&mut sim, n[1]);
    sim.with_node(n[1], |m, now| m.inner.reply_error(now, &peer, cid, 0x100, "overflow")).unwrap();
    assert_eq!(outcome(&mut sim, n[0], id), SimOutcome::Failed { code: 0x100, message: "overflow".into() });
    // A wrong major version is refused by the layer.
    let peer_b = sim.messenger_peer(n[1]);
    let id = sim
        .with_node(n[0], |m, now| m.inner.call(now, &peer_b, "math.add", &args, RequestOptions::new().version("2.0")))
        .unwrap();
    assert_eq!(outcome(&mut sim, n[0], id), SimOutcome::Refused(RefuseCode::VersionMismatch));
}

#[test]
fn unknown_function_and_bad_arguments_are_typed_refusals() {
    let (mut sim, n) = sim(2);
    connect(&mut sim, n[0], n[1]);
    sim.with_node(n[1], |m, _| m.inner.register_fn("f", "").unwrap());
    let id = call(&mut sim, n[0], n[1], "nope", &nothing()).unwrap();
    assert_eq!(outcome(&mut sim, n[0], id), SimOutcome::Refused(RefuseCode::Other(UNKNOWN_FUNCTION)));

    // Our own side refuses to send invalid arguments...
    assert_eq!(call(&mut sim, n[0], n[1], "f", &[0x06, 0x02, 0x00]), Err(RpcError::Value(ValueError::Truncated)));
    assert_eq!(call(&mut sim, n[0], n[1], "f", &enc(&OwnedValue::Int(1))), Err(RpcError::NotAList));
    // ...so a hostile peer sends them raw: too deep, not a list, truncated.
    let peer_b = sim.messenger_peer(n[1]);
    let mut deep = vec![];
    for _ in 0..17 {
        deep.extend_from_slice(&[0x06, 0x01]);
    }
    deep.push(0x00);
    for bad in [deep, vec![0x02, 0x02], vec![0x06, 0x02, 0x00]] {
        let id =
            sim.with_node(n[0], |m, now| m.inner.request(now, &peer_b, "$RPC.f", &bad, RequestOptions::new())).unwrap();
        assert_eq!(outcome(&mut sim, n[0], id), SimOutcome::Refused(RefuseCode::Other(BAD_ARGUMENTS)));
    }
    // Nothing reached the function.
    assert!(!sim.take_events(n[1]).iter().any(|e| matches!(e.event, MsgEvent::Call { .. })));
}

#[test]
fn the_function_table_is_bounded_and_names_are_checked() {
    let mut sim = Sim::<SimMessenger>::with_seed(27);
    let mc = MessagingConfig::default().with(|c| c.max_handlers = 2);
    let a = sim.add_messenger(Config::default(), mc).unwrap();
    sim.with_node(a, |m, _| {
        let f = m.inner.register_fn("a", "").unwrap();
        // Registering a name again gives its id back, and takes no slot.
        assert_eq!(m.inner.register_fn("a", ""), Ok(f));
        m.inner.register_fn("b.c", "2.1").unwrap();
        assert_eq!(
            m.inner.register_fn("d", ""),
            Err(RpcError::Messaging(meshlink_core::messaging::MessagingError::HandlerLimit { limit: 2 }))
        );
        assert_eq!(m.inner.register_fn("get_funcs", ""), Err(RpcError::ReservedName));
        assert!(m.inner.register_fn("x.*", "").is_err(), "a wildcard is no function name");
        assert!(m.inner.register_fn("$x", "").is_err(), "a name never starts with $");
        assert!(m.inner.register_fn("a..b", "").is_err());
        m.inner.unregister_fn(f).unwrap();
        m.inner.register_fn("d", "").unwrap();
        assert_eq!(m.inner.functions().collect::<Vec<_>>(), vec![("d", ""), ("b.c", "2.1")]);
    });
}
