//! `meshlink serve PATTERN (--echo | --exec CMD)`: answers a running node's requests for
//! a subject pattern through the control API (`POST /v1/serve`, `POST /v1/respond`).
//!
//! At most `--concurrency` requests are answered at a time; while all are busy the
//! stream is not read, so the node's per-service queue fills and further requests are
//! refused `busy` by the node: nothing piles up here.
//!
//! SIGPIPE stays ignored here (see `cli::main`): a command that exits without reading
//! its standard input makes the write of the body fail with EPIPE, which must cost that
//! request only, never the whole service. A closed standard output (`serve ... | head -1`)
//! ends the command quietly instead, once the answers under way are sent.

use std::error::Error;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use meshlink_host::control::api::{RequestEvent, RespondError, RespondRequest, RespondedJson, ServeRequest};
use meshlink_host::control::client::Client;
use meshlink_host::table::printable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// Most bytes of a command's output taken as an answer (the node's `max_message` is
/// the real limit; this only bounds what a runaway command makes us hold).
const MAX_OUTPUT: u64 = 64 << 20;
/// Handler error codes of `--exec` (256 on are the application's).
const EXIT_FAILED: u16 = 0x100;
const EXEC_TIMEOUT: u16 = 0x101;
const EXEC_ERROR: u16 = 0x102;

pub async fn run(
    c: Client,
    pattern: String,
    version: Option<String>,
    exec: Option<String>,
    concurrency: usize,
    count: Option<u64>,
) -> Result<()> {
    let mut stream = c.serve(&ServeRequest { pattern: pattern.clone(), version }).await?;
    let c = Arc::new(c);
    let exec = exec.map(Arc::new);
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut taken = 0u64;
    while count.is_none_or(|n| taken < n) {
        let permit = slots.clone().acquire_owned().await?;
        let ev = match stream.next().await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Err("the node stopped: its serve stream ended".into()),
            Err(e) => return Err(format!("the node stopped: its serve stream broke off ({e})").into()),
        };
        let shown = match ev.event.as_str() {
            "serving" => say(format_args!("serving {}", printable(&pattern))),
            "request" => {
                let r: RequestEvent = serde_json::from_str(&ev.data)?;
                taken += 1;
                let shown =
                    say(format_args!("request {} from {}: {} ({} bytes)", r.id, r.peer, printable(&r.subject), r.len));
                // Taken from the stream: answered even when nobody reads our output.
                tasks.spawn(answer(c.clone(), r, exec.clone(), permit));
                shown
            }
            _ => true,
        };
        if !shown {
            break; // standard output is closed: stop taking requests
        }
        while let Some(r) = tasks.try_join_next() {
            report(r);
        }
    }
    // Unregistered now: later requests get `no_responders` while the last answers go out.
    drop(stream);
    while let Some(r) = tasks.join_next().await {
        report(r);
    }
    Ok(())
}

/// One line on standard output; `false` once it is closed. (`println!` would panic on a
/// closed pipe, SIGPIPE being ignored.)
fn say(line: std::fmt::Arguments<'_>) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

fn report(r: Result<Result<(), String>, tokio::task::JoinError>) {
    // Best effort: a closed standard error must not end the service either.
    let mut err = std::io::stderr().lock();
    let _ = match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => writeln!(err, "meshlink: {}", printable(&e)),
        Err(e) => writeln!(err, "meshlink: answer task failed: {e}"),
    };
}

async fn answer(
    c: Arc<Client>,
    r: RequestEvent,
    exec: Option<Arc<String>>,
    _permit: OwnedSemaphorePermit,
) -> Result<(), String> {
    let mut resp = RespondRequest { peer: r.peer.clone(), id: r.id, ..RespondRequest::default() };
    match exec {
        None => resp.data_b64 = Some(r.data_b64.clone()),
        Some(cmd) => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            let body = b64.decode(&r.data_b64).map_err(|e| format!("request {}: bad base64: {e}", r.id))?;
            // The requester stops waiting after its timeout: so does the command.
            let limit = Duration::from_millis(u64::from(r.timeout_ms.max(1)));
            match run_command(&cmd, body, limit).await {
                Ok(out) => resp.data_b64 = Some(b64.encode(out)),
                Err((code, message)) => resp.error = Some(RespondError { code, message: ascii_line(&message) }),
            }
        }
    }
    let _: RespondedJson =
        c.post("/v1/respond", &resp).await.map_err(|e| format!("answering request {}: {e}", r.id))?;
    Ok(())
}

/// `sh -c CMD` with `body` on standard input: its standard output, or a handler error.
async fn run_command(cmd: &str, body: Vec<u8>, limit: Duration) -> Result<Vec<u8>, (u16, String)> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| (EXEC_ERROR, format!("cannot run the command: {e}")))?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        // Input and output at once: a command that answers before reading all its input
        // (or never reads it) must not deadlock on a full pipe.
        let feed = async {
            if let Some(mut s) = stdin.take() {
                let _ = s.write_all(&body).await; // a command that ignores stdin closes it early
            }
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.take(MAX_OUTPUT + 1).read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.take(4096).read_to_end(&mut err).await;
            }
        };
        tokio::join!(feed, read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) =
        tokio::time::timeout(limit, work).await.map_err(|_| (EXEC_TIMEOUT, "the command timed out".to_string()))?;
    let status = status.map_err(|e| (EXEC_ERROR, format!("waiting for the command: {e}")))?;
    if out.len() as u64 > MAX_OUTPUT {
        return Err((EXEC_ERROR, format!("the command wrote more than {MAX_OUTPUT} bytes")));
    }
    if !status.success() {
        let first = String::from_utf8_lossy(&err);
        let first = first.lines().next().unwrap_or("").trim();
        return Err((EXIT_FAILED, format!("the command failed ({status}): {first}")));
    }
    Ok(out)
}

/// A handler error message: printable ASCII, at most 128 bytes.
fn ascii_line(s: &str) -> String {
    s.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).take(128).collect()
}
