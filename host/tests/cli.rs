//! The built `meshlink` binary: demo, keygen/id, errors, and two `up` nodes connecting.

mod common;

use std::time::{Duration, Instant};

use common::{meshlink, tempdir, Lines};

#[test]
fn demo_runs_a_network_and_prints_a_quality_table() {
    let began = Instant::now();
    let out = meshlink(&["demo", "--seconds", "2"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(began.elapsed() < Duration::from_secs(15), "demo took {:?}", began.elapsed());
    let header = stdout.lines().find(|l| l.starts_with("NODE")).expect("a quality table header");
    for col in ["PEER", "VIA", "RTT", "JITTER", "LOSS", "SCORE"] {
        assert!(header.contains(col), "header lacks {col}: {header}");
    }
    // Rows of the last table: every transport present, every RTT measured.
    let last_table: Vec<&str> =
        stdout.lines().skip_while(|l| !l.starts_with("quality at 2 s")).skip(2).take_while(|l| !l.is_empty()).collect();
    assert_eq!(last_table.len(), 10, "5 links seen from both ends:\n{stdout}");
    for t in [" tcp ", " ws ", " udp "] {
        assert!(last_table.iter().any(|r| r.contains(t)), "no {t} row:\n{stdout}");
    }
    for row in &last_table {
        let rtt = row.split_whitespace().nth(5).unwrap();
        assert!(rtt.ends_with("ms") && rtt != "0.00ms", "row without an RTT: {row}");
    }
    assert!(stdout.contains("10/10 greetings"), "{stdout}");
    assert_eq!(stdout.matches("] handshake ").count(), 5, "{stdout}");
}

#[test]
fn keygen_then_id_prints_the_same_peer_id_and_errors_are_one_line() {
    let dir = tempdir("keygen");
    let d = dir.to_str().unwrap();
    let out = meshlink(&["id", "--data-dir", d]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("meshlink keygen") && !err.contains("backtrace"), "{err}");

    let out = meshlink(&["keygen", "--data-dir", d]).output().unwrap();
    assert!(out.status.success());
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 52);
    // The environment variable is an alternative to the flag.
    let out = meshlink(&["id"]).env("MESHLINK_DATA_DIR", d).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), id);
    let out = meshlink(&["keygen", "--data-dir", d]).output().unwrap();
    assert!(!out.status.success(), "an identity is not overwritten without --force");
    let out = meshlink(&["up", "--data-dir", d, "--tcp", "nonsense"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.trim().lines().count() == 1 && err.contains("--tcp"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn up_prints_a_paste_ready_command_that_connects_a_second_node() {
    let (d1, d2) = (tempdir("up1"), tempdir("up2"));
    let lo = "127.0.0.1:0";
    let mut first = Lines::spawn(meshlink(&[
        "up",
        "--data-dir",
        d1.to_str().unwrap(),
        "--name",
        "first",
        "--tcp",
        lo,
        "--ws",
        lo,
        "--udp",
        lo,
    ]));
    let id = first.wait_for("peer id").split_whitespace().last().unwrap().to_string();
    let paste = first.wait_for("meshlink up --data-dir").trim().to_string();
    assert!(paste.contains(&format!("--expect {id}")), "{paste}");
    // Run the printed command as printed, with our own data directory.
    let mut args: Vec<String> = paste.split_whitespace().skip(1).map(String::from).collect();
    let i = args.iter().position(|a| a == "--data-dir").unwrap();
    args[i + 1] = d2.to_str().unwrap().to_string();
    args.extend(["--name".into(), "second".into()]);
    let mut second = Lines::spawn(meshlink(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let line = second.wait_for("connected");
    assert!(line.contains(&id) && line.contains("(first)") && line.contains("via tcp"), "{line}");
    let line = first.wait_for("connected");
    assert!(line.contains("(second)"), "{line}");
    assert!(second.terminate().success());
    let line = first.wait_for("disconnected");
    assert!(line.contains("closed by peer (Shutdown)"), "graceful shutdown tells the peer: {line}");
    assert!(first.terminate().success());
    // The key survives restarts: `id` reads the same identity.
    let out = meshlink(&["id", "--data-dir", d1.to_str().unwrap()]).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), id);
    let _ = std::fs::remove_dir_all(&d1);
    let _ = std::fs::remove_dir_all(&d2);
}
