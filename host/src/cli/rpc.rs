//! `meshlink call` and `meshlink funcs`: RPC (spec §15.5) through the control API's
//! `POST /v1/call` and `GET /v1/funcs/{peer}`. Arguments are JSON, one per word
//! (`42`, `'"text"'`, `'{"a": [1.5]}'`); a word that is not JSON is refused here.

use std::error::Error;

use meshlink_host::control::api::{CallRequest, CallResultJson, FuncsJson};
use meshlink_host::control::client::{Client, ClientError};
use meshlink_host::table::printable;

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// A failure as one line naming its outcome (`unknown_function: ...`).
fn line(e: ClientError) -> Box<dyn Error> {
    match e {
        ClientError::Api { code, message, .. } => format!("{code}: {message}").into(),
        e => e.into(),
    }
}

/// Parses each argument word as JSON.
pub(super) fn parse_args(words: &[String]) -> Result<Vec<serde_json::Value>> {
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            serde_json::from_str(w)
                .map_err(|e| format!("invalid_arguments: argument {} is not JSON: {e}", i + 1).into())
        })
        .collect()
}

/// Calls `function` on `peer` (a resolved id) and prints the result as one line of JSON.
pub(super) async fn call(
    c: &Client,
    peer: String,
    function: String,
    args: Vec<serde_json::Value>,
    timeout_ms: Option<u32>,
    version: Option<String>,
) -> Result<()> {
    let req = CallRequest { peer, function, args, timeout_ms, version };
    let r: CallResultJson = c.post("/v1/call", &req).await.map_err(line)?;
    println!("{}", serde_json::to_string(&r.result)?);
    Ok(())
}

/// Prints `peer`'s functions, one `name version` per line (or the API's JSON).
pub(super) async fn funcs(c: &Client, peer: &str, json: bool) -> Result<()> {
    let r: FuncsJson = c.get(&format!("/v1/funcs/{peer}")).await.map_err(line)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    for f in &r.functions {
        let v = if f.version.is_empty() { "-" } else { f.version.as_str() };
        println!("{} {}", printable(&f.name), printable(v));
    }
    Ok(())
}
