//! The `meshlink` command: run a node (`up`), a local demo network (`demo`), manage the
//! node's key (`keygen`, `id`), and drive a running node through its control API
//! (`connect`, `peers`, `send`, `events`, ...). Errors are one line on stderr and a
//! non-zero exit.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // A panic is a bug, but the user still gets one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("meshlink: internal error: {msg}{at}");
    }));
    match cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshlink: error: {e}");
            ExitCode::FAILURE
        }
    }
}
