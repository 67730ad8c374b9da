//! Human-readable tables of peers and their quality, in the spirit of `wg show`.

use std::borrow::Cow;
use std::fmt::Write;

use meshlink_core::Quality;

use crate::types::PeerSummary;

/// Microseconds as milliseconds with two decimals, `-` when unknown.
pub fn ms(us: Option<u64>) -> String {
    us.map_or_else(|| "-".into(), |us| format!("{:.2}ms", us as f64 / 1000.0))
}

/// Bytes with a binary unit: `512B`, `12.3KiB`, `4.0MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1}{}", UNITS[u])
}

/// One row per (node, peer): who, how, and the quality figures.
pub fn quality_table(rows: &[(String, PeerSummary)]) -> String {
    let header = [
        "NODE",
        "PEER",
        "ID",
        "VIA",
        "ADDRESS",
        "RTT",
        "MIN",
        "JITTER",
        "LOSS",
        "SCORE",
        "MSGS IN/OUT",
        "BYTES IN/OUT",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for (node, p) in rows {
        let q: &Quality = &p.quality;
        cells.push(vec![
            node.clone(),
            if p.name.is_empty() { "-".into() } else { p.name.clone() },
            p.peer.short().to_string(),
            p.transport.to_string(),
            p.addr.to_string(),
            ms(q.rtt_us),
            ms(q.rtt_min_us),
            ms(Some(q.jitter_us)),
            format!("{:.1}%", q.loss * 100.0),
            format!("{:.2}", q.score),
            format!("{}/{}", q.counters.msgs_in, q.counters.msgs_out),
            format!("{}/{}", bytes(q.counters.bytes_in), bytes(q.counters.bytes_out)),
        ]);
    }
    render(&cells)
}

/// Text a peer chose (its name, a message) made safe for a terminal: control characters
/// (escape sequences, newlines, C1 controls) and the bidirectional overrides become
/// visible `\u{..}` escapes, so a peer cannot recolour the screen or forge lines.
pub fn printable(s: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Rows (the first is the header) as columns padded to their widest cell, two spaces
/// apart, like `wg show`. Used by the demo and by the client commands.
pub fn render(cells: &[Vec<String>]) -> String {
    let columns = cells.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| cells.iter().filter_map(|r| r.get(c)).map(|s| printable(s).chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in cells {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{:<w$}  ", printable(cell));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(3 << 20), "3.0MiB");
        assert_eq!(ms(Some(1234)), "1.23ms");
        assert_eq!(ms(None), "-");
    }

    #[test]
    fn peer_text_cannot_reach_the_terminal_raw() {
        assert_eq!(printable("bravo ✓"), "bravo ✓");
        assert_eq!(printable("x\u{1b}[31mRED\n  threat: 0.00"), "x\\u{1b}[31mRED\\u{a}  threat: 0.00");
        assert_eq!(printable("\u{9b}2J\u{7f}\r\u{202e}"), "\\u{9b}2J\\u{7f}\\u{d}\\u{202e}");
        let t = render(&[vec!["NAME".into(), "X".into()], vec!["a\u{1b}b".into(), "1".into()]]);
        assert!(!t.contains('\u{1b}') && t.contains("a\\u{1b}b"), "{t}");
    }
}
