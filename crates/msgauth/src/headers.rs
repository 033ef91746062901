//! Removing header fields from a raw message without touching anything else.
//!
//! Written here rather than with mail-parser because the message must stay
//! byte for byte as it was (a DKIM signature covers it); only whole fields go.

/// Removes every `Authentication-Results:` field whose authserv-id is ours
/// (RFC 8601 §5: a receiver must not trust, and should delete, results that
/// claim to come from it). `None` when there was nothing to remove.
pub fn strip_forged_results(raw: &[u8], authserv_id: &str) -> Option<Vec<u8>> {
    remove_fields(raw, |name, value| {
        name.eq_ignore_ascii_case(b"Authentication-Results")
            && authserv_id_of(value).eq_ignore_ascii_case(authserv_id.as_bytes())
    })
}

/// Removes every field called `name` (for instance Return-Path, which a relay
/// must not pass on, RFC 5321 §4.4). `None` when there was none.
pub fn strip_header(raw: &[u8], name: &str) -> Option<Vec<u8>> {
    remove_fields(raw, |n, _| n.eq_ignore_ascii_case(name.as_bytes()))
}

/// The authserv-id: the first token of the value, after white space and comments.
fn authserv_id_of(value: &[u8]) -> &[u8] {
    let mut v = value;
    loop {
        v = trim_start(v);
        if v.first() == Some(&b'(') {
            // Skip a (possibly nested) comment.
            let mut depth = 0usize;
            let mut end = v.len();
            for (i, &b) in v.iter().enumerate() {
                match b {
                    b'(' => depth += 1,
                    b')' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            v = &v[end..];
        } else {
            break;
        }
    }
    let end = v
        .iter()
        .position(|b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'('))
        .unwrap_or(v.len());
    &v[..end]
}

fn trim_start(v: &[u8]) -> &[u8] {
    let n = v
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    &v[n..]
}

/// Copies `raw` without the header fields `drop` selects (given the field name
/// and its raw value, folding included).
fn remove_fields(raw: &[u8], drop: impl Fn(&[u8], &[u8]) -> bool) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut pos = 0;
    let mut kept_to = 0; // raw[..kept_to] is accounted for in `out`
    while pos < raw.len() {
        // The end of this field: its line plus continuation lines.
        let line_end = |from: usize| {
            raw[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| from + i + 1)
                .unwrap_or(raw.len())
        };
        let first = line_end(pos);
        let line = &raw[pos..first];
        if line == b"\r\n" || line == b"\n" {
            break; // end of the header section
        }
        let mut end = first;
        while end < raw.len() && matches!(raw[end], b' ' | b'\t') {
            end = line_end(end);
        }
        let field = &raw[pos..end];
        if let Some(colon) = field.iter().position(|&b| b == b':') {
            let name = trim_end(&field[..colon]);
            if drop(name, &field[colon + 1..]) {
                let o = out.get_or_insert_with(|| Vec::with_capacity(raw.len()));
                o.extend_from_slice(&raw[kept_to..pos]);
                kept_to = end;
            }
        }
        pos = end;
    }
    out.map(|mut o| {
        o.extend_from_slice(&raw[kept_to..]);
        o
    })
}

fn trim_end(v: &[u8]) -> &[u8] {
    let n = v
        .iter()
        .rev()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    &v[..v.len() - n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_results_go_and_others_stay() {
        let raw = b"Authentication-Results: mx.example.com;\r\n\tspf=pass smtp.mailfrom=x\r\nSubject: hi\r\nAuthentication-Results: (comment) other.example; dkim=pass\r\nauthentication-results : MX.EXAMPLE.COM; none\r\n\r\nAuthentication-Results: mx.example.com; body stays\r\n";
        let out = strip_forged_results(raw, "mx.example.com").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Subject: hi\r\nAuthentication-Results: (comment) other.example; dkim=pass\r\n\r\nAuthentication-Results: mx.example.com; body stays\r\n"
        );
        assert!(strip_forged_results(b"Subject: x\r\n\r\nbody", "mx.example.com").is_none());
    }

    #[test]
    fn return_path_is_removed_with_lf_endings_too() {
        let raw = b"Return-Path: <a@b>\nReceived: from x\n\tby y\nReturn-Path:\n <c@d>\n\nbody\n";
        let out = strip_header(raw, "return-path").unwrap();
        assert_eq!(out, b"Received: from x\n\tby y\n\nbody\n");
    }

    #[test]
    fn a_message_without_body_or_final_newline() {
        assert_eq!(
            strip_header(b"X: 1\r\nReturn-Path: <>", "Return-Path").unwrap(),
            b"X: 1\r\n"
        );
        assert!(strip_header(b"", "Return-Path").is_none());
        assert!(strip_header(b"no colon here\r\n\r\n", "Return-Path").is_none());
    }

    #[test]
    fn authserv_id_skips_comments() {
        assert_eq!(
            authserv_id_of(b" (a (b) c) host.example; x"),
            b"host.example"
        );
        assert_eq!(authserv_id_of(b"\r\n\thost;"), b"host");
        assert_eq!(authserv_id_of(b" (unclosed"), b"");
    }
}
