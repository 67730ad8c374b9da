//! `meshlink publish SUBJECT BODY|--file F` and `meshlink subscribe PATTERN`: pub/sub on a
//! running node through the control API (`POST /v1/publish`, `POST /v1/subscribe`).
//!
//! `subscribe` prints `subscribed PATTERN`, `active PEER` when a neighbour holds the
//! interest, one `SUBJECT BODY` line per publication (the body escaped as all peer text is;
//! `(N bytes, binary)` when it is not UTF-8) and `lagged N` when the node dropped
//! publications this reader did not take in time. `--json`: each event as the API's JSON.

use std::error::Error;

use meshlink_host::control::api::{ActiveEvent, PublicationEvent, SubLaggedEvent, SubscribeRequest};
use meshlink_host::control::client::Client;
use meshlink_host::table::printable;

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

pub async fn run(c: Client, pattern: String, priority: Option<String>, count: Option<u64>, json: bool) -> Result<()> {
    let mut stream = c.subscribe(&SubscribeRequest { pattern: pattern.clone(), priority }).await?;
    let mut taken = 0u64;
    while count.is_none_or(|n| taken < n) {
        let ev = match stream.next().await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Err("the node stopped: its subscription stream ended".into()),
            Err(e) => return Err(format!("the node stopped: its subscription stream broke off ({e})").into()),
        };
        if json {
            let data: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or(serde_json::Value::Null);
            println!("{}", serde_json::json!({ "event": ev.event, "data": data }));
            taken += u64::from(ev.event == "message");
            continue;
        }
        match ev.event.as_str() {
            "subscribed" => println!("subscribed {}", printable(&pattern)),
            "active" => println!("active {}", serde_json::from_str::<ActiveEvent>(&ev.data)?.peer),
            "lagged" => println!("lagged {}", serde_json::from_str::<SubLaggedEvent>(&ev.data)?.dropped),
            "message" => {
                let m: PublicationEvent = serde_json::from_str(&ev.data)?;
                taken += 1;
                match &m.data {
                    Some(text) => println!("{} {}", printable(&m.subject), printable(text)),
                    None => println!("{} ({} bytes, binary)", printable(&m.subject), m.len),
                }
            }
            _ => {}
        }
    }
    Ok(())
}
