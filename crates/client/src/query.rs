//! The search language of `pochta mail search`: `from:`, `to:`, `subject:`,
//! `since:YYYY-MM-DD`, `before:YYYY-MM-DD`, `is:unread`, `is:flagged`,
//! `in:FOLDER`, and free text; values with spaces in double quotes
//! (`subject:"weekly report"`). Every condition must hold.

use time::Date;

use crate::backend::Query;
use crate::error::{ClientError, Result};

/// Splits on whitespace, keeping double-quoted stretches together (the quotes
/// are removed).
fn tokens(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(ClientError::Usage(format!("unbalanced quote in {s:?}")));
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn date(key: &str, value: &str) -> Result<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(value, fmt)
        .map_err(|_| ClientError::Usage(format!("{key}:{value}: give the date as YYYY-MM-DD")))
}

fn set(slot: &mut Option<String>, key: &str, value: String) -> Result<()> {
    if value.is_empty() {
        return Err(ClientError::Usage(format!("{key}: needs a value")));
    }
    match slot {
        // Two of the same key: both must match, which a substring search
        // can only do when one contains the other; say so rather than guess.
        Some(old) => Err(ClientError::Usage(format!(
            "{key}: given twice ({old:?} and {value:?})"
        ))),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// Parses a search into a [`Query`] (folder, paging left at their defaults
/// unless `in:` names a folder).
pub fn parse(s: &str) -> Result<Query> {
    let mut q = Query {
        page: 1,
        ..Query::default()
    };
    let mut text: Vec<String> = Vec::new();
    for tok in tokens(s)? {
        let Some((key, value)) = tok.split_once(':') else {
            text.push(tok);
            continue;
        };
        let value = value.to_string();
        match key.to_ascii_lowercase().as_str() {
            "from" => set(&mut q.from, "from", value)?,
            "to" => set(&mut q.to, "to", value)?,
            "subject" => set(&mut q.subject, "subject", value)?,
            "in" | "folder" => set(&mut q.folder, "in", value)?,
            "since" | "after" => q.since = Some(date(key, &value)?),
            "before" => q.before = Some(date(key, &value)?),
            "is" => match value.to_ascii_lowercase().as_str() {
                "unread" | "unseen" | "new" => q.unread = true,
                "flagged" | "starred" => q.flagged = true,
                other => {
                    return Err(ClientError::Usage(format!(
                        "is:{other}: use is:unread or is:flagged"
                    )));
                }
            },
            // Not a key we know (a URL, "re:", a time): it is text.
            _ => text.push(tok),
        }
    }
    if let (Some(since), Some(before)) = (q.since, q.before)
        && since >= before
    {
        return Err(ClientError::Usage(format!(
            "since:{since} is not before before:{before}: nothing can match"
        )));
    }
    if !text.is_empty() {
        q.text = Some(text.join(" "));
    }
    Ok(q)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn every_key() {
        let q = parse(
            r#"from:bob to:alice@example.org subject:"weekly report" since:2026-01-02 before:2026-03-01 is:unread is:flagged hello  world"#,
        )
        .unwrap();
        assert_eq!(q.from.as_deref(), Some("bob"));
        assert_eq!(q.to.as_deref(), Some("alice@example.org"));
        assert_eq!(q.subject.as_deref(), Some("weekly report"));
        assert_eq!(q.since, Some(date!(2026 - 01 - 02)));
        assert_eq!(q.before, Some(date!(2026 - 03 - 01)));
        assert!(q.unread && q.flagged);
        assert_eq!(q.text.as_deref(), Some("hello world"));
        assert_eq!(q.folder, None);
        assert_eq!(q.page, 1);
    }

    #[test]
    fn free_text_only_and_unknown_keys() {
        let q = parse("Привет https://example.org re:plan in:Archive").unwrap();
        assert_eq!(
            q.text.as_deref(),
            Some("Привет https://example.org re:plan")
        );
        assert_eq!(q.folder.as_deref(), Some("Archive"));
        assert!(q.from.is_none() && !q.unread);
        assert_eq!(parse("").unwrap().text, None);
    }

    #[test]
    fn errors_are_usage_errors() {
        for bad in [
            "since:yesterday",
            "before:2026-13-01",
            "is:important",
            "subject:\"open",
            "from:",
            "from:a from:b",
            "since:2026-03-01 before:2026-01-01",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.is_usage(), "{bad}: {e}");
        }
    }
}
