//! RFC 5256 §2.1 base subject extraction.

/// The RFC 5256 §2.1 "base subject" of an already RFC 2047-decoded subject, used for SORT
/// SUBJECT, THREAD=ORDEREDSUBJECT and JMAP threading.
///
/// White space is collapsed to single spaces, trailing "(fwd)" and leading
/// "Re:" / "Fw:" / "Fwd:" (optionally with `[blob]`s before them or before the colon) and
/// `[blob]` prefixes are removed, and a `[fwd: ...]` wrapper is unwrapped, repeatedly.
/// Only the English prefixes of the RFC are recognised. Case is kept (compare the result
/// case-insensitively, or lowercase it, when sorting).
pub fn base_subject(subject: &str) -> String {
    // (1) Collapse all white space runs to a single space.
    let mut text = String::with_capacity(subject.len());
    let mut in_space = false;
    for ch in subject.chars() {
        if ch.is_whitespace() {
            if !in_space {
                text.push(' ');
            }
            in_space = true;
        } else {
            text.push(ch);
            in_space = false;
        }
    }

    let mut s: &str = &text;
    loop {
        // (2) Remove trailers: "(fwd)" and white space, repeatedly.
        loop {
            let trimmed = s.trim_end_matches(' ');
            match trimmed
                .len()
                .checked_sub(5)
                .and_then(|at| trimmed.get(at..))
            {
                Some(tail) if tail.eq_ignore_ascii_case("(fwd)") => {
                    s = trimmed.get(..trimmed.len() - 5).unwrap_or_default();
                }
                _ => {
                    s = trimmed;
                    break;
                }
            }
        }
        // (3)-(5) Remove leaders and blobs until none is left.
        loop {
            if let Some(rest) = strip_leader(s) {
                s = rest;
                continue;
            }
            if let Some(rest) = strip_blob(s)
                && !rest.trim_matches(' ').is_empty()
            {
                s = rest;
                continue;
            }
            break;
        }
        // (6) "[fwd: ...]" wrapper.
        match s.get(..5) {
            Some(head) if head.eq_ignore_ascii_case("[fwd:") && s.ends_with(']') => {
                s = s.get(5..s.len() - 1).unwrap_or_default();
            }
            _ => break,
        }
    }
    s.to_string()
}

/// subj-leader = (*subj-blob subj-refwd) / WSP
fn strip_leader(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix(' ') {
        return Some(rest.trim_start_matches(' '));
    }
    let mut rest = s;
    while let Some(after) = strip_blob(rest) {
        rest = after;
    }
    // subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
    let mut rest = if let Some(after) = strip_prefix_ci(rest, "re") {
        after
    } else {
        let after = strip_prefix_ci(rest, "fw")?;
        strip_prefix_ci(after, "d").unwrap_or(after)
    };
    rest = rest.trim_start_matches(' ');
    if let Some(after) = strip_blob(rest) {
        rest = after;
    }
    rest.strip_prefix(':')
}

/// subj-blob = "[" *BLOBCHAR "]" *WSP
fn strip_blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let close = inner.find([']', '['])?;
    if inner.get(close..)?.starts_with('[') {
        return None;
    }
    Some(inner.get(close + 1..)?.trim_start_matches(' '))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::base_subject;

    #[test]
    fn rfc5256_examples() {
        let cases = [
            ("Re: Fwd: [list] Re: subject", "subject"),
            ("subject", "subject"),
            ("  Re:   hello   world  ", "hello world"),
            ("RE: FWD: FW: x", "x"),
            ("Re[2]: x", "x"),
            ("Re [list]: x", "x"),
            ("[list] subject", "subject"),
            ("[list]", "[list]"),
            ("Re: [list]", "[list]"),
            ("subject (fwd)", "subject"),
            ("subject (FWD) (fwd)  ", "subject"),
            ("[Fwd: Re: subject]", "subject"),
            ("[fwd: [fwd: a]]", "a"),
            ("Re:", ""),
            ("", ""),
            ("Reply: x", "Reply: x"),
            ("Fwd:x", "x"),
            ("Re: Привет", "Привет"),
            ("[ab", "[ab"),
            ("[a[b]] x", "[a[b]] x"),
            ("Refund: money", "Refund: money"),
            ("\tRe:\r\n foo\tbar", "foo bar"),
        ];
        for (input, expected) in cases {
            assert_eq!(base_subject(input), expected, "input {input:?}");
        }
    }
}
