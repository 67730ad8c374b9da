//! Subjects: the NATS subject grammar (nats-architecture-and-design ADR-6, and the token
//! rules of `nats-server` `server/sublist.go`), with count limits NATS does not have.
//!
//! - A subject is tokens separated by `.`; a token is one or more bytes of printable ASCII
//!   (`0x21..=0x7e`) other than `.`. Empty tokens (`.a`, `a.`, `a..b`) are invalid, as is
//!   whitespace (stricter than NATS, which checks only whitespace: meshlink also refuses
//!   control bytes and non-ASCII, so a subject is the same text in every binding).
//! - In a pattern, a token that is exactly `*` matches one token, and a token that is
//!   exactly `>` matches one or more trailing tokens; `>` must be the last token.
//! - A wildcard inside a token (`a*b`, `foo>`) is literal, as in NATS.
//! - A subject that is published or requested must be literal (no `*` or `>` token).
//! - Limits: at most [`MAX_SUBJECT_LEN`] bytes and [`MAX_TOKENS`] tokens (NATS: no limit
//!   of its own, the 4096-byte control line; tokens unlimited unless `max_sub_tokens`).
//!
//! Matching is one forward pass over both strings, no recursion, no allocation: O(length).
//!
//! ```
//! use meshlink_core::messaging::subject::{matches, Pattern, Subject, SubjectError};
//! let p = Pattern::new("orders.*.>").unwrap();
//! assert!(p.matches(Subject::new("orders.eu.created.v2").unwrap()));
//! assert!(!matches("orders.*.>", "orders.eu"));
//! assert_eq!(Subject::new("orders.*"), Err(SubjectError::Wildcard));
//! ```

use core::fmt;

/// The longest subject or pattern, in bytes.
pub const MAX_SUBJECT_LEN: usize = 256;
/// The most tokens in a subject or pattern.
pub const MAX_TOKENS: usize = 16;

/// Why a subject or pattern is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectError {
    /// The empty string.
    Empty,
    /// Longer than [`MAX_SUBJECT_LEN`].
    TooLong { len: usize, max: usize },
    /// More tokens than [`MAX_TOKENS`].
    TooManyTokens { max: usize },
    /// A token of zero bytes (`.a`, `a.`, `a..b`); `at` is the token's index.
    EmptyToken { at: usize },
    /// A byte outside printable ASCII `0x21..=0x7e` (whitespace, control, non-ASCII).
    InvalidByte { byte: u8, at: usize },
    /// A token after `>` (`>` must be last).
    TokenAfterFullWildcard,
    /// A wildcard token in a subject that must be literal (publish, request).
    Wildcard,
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SubjectError::Empty => f.write_str("empty subject"),
            SubjectError::TooLong { len, max } => write!(f, "subject of {len} bytes exceeds {max}"),
            SubjectError::TooManyTokens { max } => write!(f, "subject has more than {max} tokens"),
            SubjectError::EmptyToken { at } => write!(f, "empty token at position {at}"),
            SubjectError::InvalidByte { byte, at } => write!(f, "invalid byte 0x{byte:02x} at offset {at}"),
            SubjectError::TokenAfterFullWildcard => f.write_str("'>' must be the last token"),
            SubjectError::Wildcard => f.write_str("a wildcard in a subject that must be literal"),
        }
    }
}

/// Checks `s` as a pattern (wildcards allowed). Returns whether it holds a wildcard token.
pub fn validate_pattern(s: &str) -> Result<bool, SubjectError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(SubjectError::Empty);
    }
    if b.len() > MAX_SUBJECT_LEN {
        return Err(SubjectError::TooLong { len: b.len(), max: MAX_SUBJECT_LEN });
    }
    for (at, &byte) in b.iter().enumerate() {
        if !(0x21..=0x7e).contains(&byte) {
            return Err(SubjectError::InvalidByte { byte, at });
        }
    }
    let mut wild = false;
    let mut after_fwc = false;
    for (i, tok) in s.split('.').enumerate() {
        if i >= MAX_TOKENS {
            return Err(SubjectError::TooManyTokens { max: MAX_TOKENS });
        }
        if tok.is_empty() {
            return Err(SubjectError::EmptyToken { at: i });
        }
        if after_fwc {
            return Err(SubjectError::TokenAfterFullWildcard);
        }
        match tok {
            "*" => wild = true,
            ">" => {
                wild = true;
                after_fwc = true;
            }
            _ => {}
        }
    }
    Ok(wild)
}

/// Checks `s` as a literal subject (publish, request): a valid pattern with no wildcard.
pub fn validate_subject(s: &str) -> Result<(), SubjectError> {
    match validate_pattern(s)? {
        false => Ok(()),
        true => Err(SubjectError::Wildcard),
    }
}

/// Whether `pattern` matches the literal `subject`. Both are assumed valid (see
/// [`Pattern`] and [`Subject`] for checked values); invalid input gives `false` or an
/// arbitrary answer, never a panic. One pass, no recursion.
pub fn matches(pattern: &str, subject: &str) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut subj = subject.split('.');
    for p in pattern.split('.') {
        match p {
            // One or more remaining tokens.
            ">" => return subj.next().is_some(),
            "*" => {
                if subj.next().is_none() {
                    return false;
                }
            }
            lit => {
                if subj.next() != Some(lit) {
                    return false;
                }
            }
        }
    }
    subj.next().is_none()
}

/// A checked literal subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a>(&'a str);

impl<'a> Subject<'a> {
    pub fn new(s: &'a str) -> Result<Self, SubjectError> {
        validate_subject(s).map(|()| Subject(s))
    }
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// A checked pattern (a subject, or one with `*` / `>` tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern<'a> {
    text: &'a str,
    wild: bool,
}

impl<'a> Pattern<'a> {
    pub fn new(s: &'a str) -> Result<Self, SubjectError> {
        validate_pattern(s).map(|wild| Pattern { text: s, wild })
    }
    pub fn as_str(&self) -> &'a str {
        self.text
    }
    /// Whether it holds a wildcard token.
    pub fn is_wildcard(&self) -> bool {
        self.wild
    }
    pub fn matches(&self, subject: Subject<'_>) -> bool {
        if self.wild {
            matches(self.text, subject.0)
        } else {
            self.text == subject.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Research note §1.1, wildcard semantics: (pattern, subject, matches).
    const WILDCARD_TABLE: &[(&str, &str, bool)] = &[
        ("foo.*", "foo.bar", true),
        ("foo.*", "foo", false),
        ("foo.*", "foo.bar.baz", false),
        ("stats.*.*", "stats.test.22", true),
        ("stats.*.*", "stats.test", false),
        ("foo.>", "foo.bar", true),
        ("foo.>", "foo.bar.baz", true),
        ("foo.>", "foo", false),
        (">", "foo", true),
        (">", "foo.bar.baz", true),
        ("*", "foo", true),
        ("*", "foo.bar", false),
        ("foo*", "foo*", true),
        ("foo*", "foobar", false),
        // Case-sensitive (ADR-6).
        ("Foo.*", "foo.bar", false),
        // Literal patterns match only themselves.
        ("a.b", "a.b", true),
        ("a.b", "a.b.c", false),
        ("*.b.>", "a.b.c.d", true),
        ("*.b.>", "a.c.d", false),
    ];

    #[test]
    fn wildcard_table() {
        for &(p, s, want) in WILDCARD_TABLE {
            assert_eq!(matches(p, s), want, "{p} vs {s}");
            let pat = Pattern::new(p).unwrap();
            assert_eq!(pat.matches(Subject::new(s).unwrap()), want, "{p} vs {s} (checked)");
        }
    }

    /// Research note §1.1, token rules: (text, valid as a pattern, valid as a subject).
    #[test]
    fn token_rules() {
        let cases: &[(&str, Result<bool, SubjectError>)] = &[
            ("", Err(SubjectError::Empty)),
            (".foo", Err(SubjectError::EmptyToken { at: 0 })),
            ("foo.", Err(SubjectError::EmptyToken { at: 1 })),
            ("foo..bar", Err(SubjectError::EmptyToken { at: 1 })),
            ("foo bar", Err(SubjectError::InvalidByte { byte: b' ', at: 3 })),
            ("foo\tbar", Err(SubjectError::InvalidByte { byte: b'\t', at: 3 })),
            ("foo\nbar", Err(SubjectError::InvalidByte { byte: b'\n', at: 3 })),
            ("foo\rbar", Err(SubjectError::InvalidByte { byte: b'\r', at: 3 })),
            ("foo\x0cbar", Err(SubjectError::InvalidByte { byte: 0x0c, at: 3 })),
            ("fo\0o", Err(SubjectError::InvalidByte { byte: 0, at: 2 })),
            ("caf\u{e9}", Err(SubjectError::InvalidByte { byte: 0xc3, at: 3 })),
            ("foo.>.bar", Err(SubjectError::TokenAfterFullWildcard)),
            (">.bar", Err(SubjectError::TokenAfterFullWildcard)),
            // Wildcards inside a token are literal: valid, no wildcard.
            ("foo*", Ok(false)),
            ("*bar", Ok(false)),
            ("foo>", Ok(false)),
            ("foo.>>", Ok(false)),
            ("a*b.c", Ok(false)),
            ("foo.*", Ok(true)),
            ("foo.>", Ok(true)),
            (">", Ok(true)),
            ("*", Ok(true)),
            ("$SRV.PING", Ok(false)),
        ];
        for (s, want) in cases {
            assert_eq!(validate_pattern(s), *want, "{s:?}");
            let as_subject = match want {
                Ok(true) => Err(SubjectError::Wildcard),
                Ok(false) => Ok(()),
                Err(e) => Err(*e),
            };
            assert_eq!(validate_subject(s), as_subject, "{s:?} as a subject");
        }
    }

    #[test]
    fn limits_are_enforced_at_their_edge() {
        let mut s = heapless::String::<512>::new();
        for i in 0..MAX_TOKENS {
            if i > 0 {
                s.push('.').unwrap();
            }
            s.push('a').unwrap();
        }
        assert_eq!(validate_subject(&s), Ok(()));
        s.push_str(".a").unwrap();
        assert_eq!(validate_subject(&s), Err(SubjectError::TooManyTokens { max: MAX_TOKENS }));
        let long: heapless::String<512> = core::iter::repeat('x').take(MAX_SUBJECT_LEN).collect();
        assert_eq!(validate_subject(&long), Ok(()));
        let longer: heapless::String<512> = core::iter::repeat('x').take(MAX_SUBJECT_LEN + 1).collect();
        assert_eq!(
            validate_subject(&longer),
            Err(SubjectError::TooLong { len: MAX_SUBJECT_LEN + 1, max: MAX_SUBJECT_LEN })
        );
    }

    #[test]
    fn matcher_never_panics_on_invalid_input() {
        for (p, s) in [("", ""), (".", "a"), ("a..", "a.."), (">", ""), ("*", "")] {
            let _ = matches(p, s);
        }
        assert!(!matches(">", ""));
    }
}
