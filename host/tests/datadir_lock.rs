//! One `meshlink up` per data dir (issue 13, item 7): a second one on the same dir fails
//! at once with a clear error, and leaves the first one's `control.url` (and node) alone.
//! Before: the second ran with the same identity, connected to the first, and deleted
//! the first one's `control.url` when it exited.

use std::time::Duration;

mod common;

use common::{meshlink, tempdir, Lines};

#[test]
fn a_second_node_on_the_same_data_dir_fails_and_leaves_the_first_alone() {
    let dir = tempdir("lock");
    let d = dir.to_str().unwrap();
    let lo = "127.0.0.1:0";
    let args = ["up", "--data-dir", d, "--name", "first", "--tcp", lo, "--ws", "off", "--udp", "off", "--control", lo];
    let mut first = Lines::spawn(meshlink(&args));
    first.wait_for("peer id");
    let control = first.wait_for("control").split_whitespace().nth(1).unwrap().to_string();
    let url_file = dir.join("control.url");
    assert_eq!(std::fs::read_to_string(&url_file).unwrap().trim(), control);

    let second = meshlink(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second node must not run");
    assert!(stderr.contains("in use by another meshlink node"), "clear error: {stderr}");
    assert!(stderr.contains(&first.child.id().to_string()), "names the first one's pid: {stderr}");

    // The first is untouched: its control.url is there and it still answers.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(std::fs::read_to_string(&url_file).unwrap().trim(), control, "control.url kept");
    assert!(first.child.try_wait().unwrap().is_none(), "the first node still runs");
    let status = meshlink(&["status", "--data-dir", d]).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    // Once the first has gone, the dir is free again (the kernel dropped the lock).
    let _ = first.child.kill();
    let _ = first.child.wait();
    let mut third = Lines::spawn(meshlink(&args));
    third.wait_for("peer id");
    let _ = third.child.kill();
    let _ = third.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
