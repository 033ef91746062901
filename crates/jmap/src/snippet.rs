//! SearchSnippet/get (RFC 8621 §5).
//!
//! The terms highlighted are those of the filter's `text` and `subject`
//! conditions (in the subject) and `text` and `body` conditions (in the
//! body), outside any `NOT`, matched as Email/query matches them
//! (case-insensitive substrings, white space collapsed). `subject` is the
//! whole subject; `preview` starts shortly before the first match in the
//! text of the body parts and is cut to 255 octets, markup included. Both
//! are HTML-escaped with each match in `<mark></mark>`, and `null` when
//! nothing matches. The message bytes are read only when there are body
//! terms.

use pochta_jmap_proto::{Args, CallContext, Id, MethodError};
use pochta_store::StoreError;
use serde_json::{Map, Value, json};

use crate::email::get::body_text;
use crate::email::query::{parse_filter, snippet_terms};
use crate::{Ctx, ids, store_error};

/// The most octets of a preview (RFC 8621 §5: "MUST NOT be bigger than 255
/// octets in size").
const PREVIEW_OCTETS: usize = 255;

/// Octets of context kept before the first match of a preview.
const LEAD: usize = 50;

/// Text with white space collapsed (`display`), its folded form, and for
/// each octet offset of the folded form the display offset it came from.
struct Folded {
    display: String,
    folded: String,
    map: Vec<usize>,
}

/// Folds like [`crate::email::query::fold`], remembering where each piece
/// came from so that matches found in the folded text can be marked in
/// the original.
fn fold_mapped(s: &str) -> Folded {
    let mut display = String::with_capacity(s.len());
    let mut folded = String::with_capacity(s.len());
    let mut map = Vec::with_capacity(s.len() + 1);
    let mut space = false;
    for ch in s.chars() {
        if ch.is_whitespace() {
            space = true;
            continue;
        }
        if space && !display.is_empty() {
            map.push(display.len());
            display.push(' ');
            folded.push(' ');
        }
        space = false;
        let at = display.len();
        display.push(ch);
        let before = folded.len();
        if ch.is_ascii() {
            folded.push(ch.to_ascii_lowercase());
        } else {
            folded.extend(ch.to_lowercase());
        }
        map.extend(std::iter::repeat_n(at, folded.len() - before));
    }
    map.push(display.len());
    Folded {
        display,
        folded,
        map,
    }
}

/// The display ranges where any of `terms` occurs, merged, in order.
fn match_ranges(text: &Folded, terms: &[String]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    for term in terms {
        for (start, found) in text.folded.match_indices(term.as_str()) {
            let from = text.map.get(start).copied();
            let to = text.map.get(start + found.len()).copied();
            if let (Some(from), Some(to)) = (from, to)
                && to > from
            {
                ranges.push((from, to));
            }
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (from, to) in ranges {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

fn escape_into(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The display text from `from`, escaped, the ranges marked, stopping
/// before `budget` octets would be exceeded (never inside a mark).
fn highlight(display: &str, ranges: &[(usize, usize)], from: usize, budget: usize) -> String {
    let mut out = String::new();
    let mut pos = from;
    let mut escaped = String::new();
    let mut ranges = ranges.iter().filter(|r| r.0 >= from).peekable();
    loop {
        let next = ranges.peek().copied();
        let plain_end = next.map_or(display.len(), |r| r.0.max(pos));
        for ch in display.get(pos..plain_end).unwrap_or_default().chars() {
            escaped.clear();
            escape_into(&mut escaped, ch.encode_utf8(&mut [0; 4]));
            if out.len() + escaped.len() > budget {
                return out;
            }
            out.push_str(&escaped);
        }
        let Some(&(start, end)) = next else {
            return out;
        };
        escaped.clear();
        escape_into(&mut escaped, display.get(start..end).unwrap_or_default());
        if out.len() + escaped.len() + "<mark></mark>".len() > budget {
            return out;
        }
        out.push_str("<mark>");
        out.push_str(&escaped);
        out.push_str("</mark>");
        pos = end;
        ranges.next();
    }
}

/// The highlighted subject, or `None` if no term is in it.
fn subject_snippet(subject: &str, terms: &[String]) -> Option<String> {
    let text = fold_mapped(subject);
    let ranges = match_ranges(&text, terms);
    if ranges.is_empty() {
        return None;
    }
    Some(highlight(&text.display, &ranges, 0, usize::MAX))
}

/// The highlighted preview around the first match in `body`, or `None`.
fn preview_snippet(body: &str, terms: &[String]) -> Option<String> {
    let text = fold_mapped(body);
    let ranges = match_ranges(&text, terms);
    let &(first, _) = ranges.first()?;
    // Start a little before the first match, at the beginning of a word.
    let mut start = first.saturating_sub(LEAD);
    while !text.display.is_char_boundary(start) {
        start -= 1;
    }
    if start > 0 {
        let lead = text.display.get(start..first).unwrap_or_default();
        start = match lead.find(' ') {
            Some(space) => start + space + 1,
            None => first,
        };
    }
    Some(highlight(&text.display, &ranges, start, PREVIEW_OCTETS))
}

/// SearchSnippet/get (RFC 8621 §5.1).
pub async fn get(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let account_id = args.require::<String>("accountId")?;
    let raw_filter = args.take_raw("filter");
    let email_ids = args.require::<Vec<String>>("emailIds")?;
    args.finish()?;
    let account_id = Id::new(account_id.as_str())
        .map_err(|e| MethodError::invalid_arguments(format!("accountId: {e}")))?;
    ctx.check_account(&account_id)?;
    let max = call.limits().max_objects_in_get;
    if u64::try_from(email_ids.len()).unwrap_or(u64::MAX) > max {
        return Err(MethodError::request_too_large(format!(
            "{} emailIds; maxObjectsInGet is {max}",
            email_ids.len()
        )));
    }
    let filter = match &raw_filter {
        None => None,
        Some(v @ Value::Object(_)) => Some(parse_filter(v, call)?),
        Some(_) => {
            return Err(MethodError::invalid_arguments(
                "filter: expected an object or null",
            ));
        }
    };
    let (subject_terms, body_terms) = filter.as_ref().map(snippet_terms).unwrap_or_default();

    let mut wanted = Vec::new();
    let mut not_found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in email_ids {
        if !seen.insert(s.clone()) {
            continue;
        }
        match call
            .resolve_str(&s)
            .and_then(|id| ids::parse_email(id.as_str()).map(|n| (id, n)))
        {
            Some(found) => wanted.push(found),
            None => not_found.push(s),
        }
    }
    let account = ctx.account.id;
    let numbers: Vec<u64> = wanted.iter().map(|(_, n)| *n).collect();
    let mut records: std::collections::HashMap<u64, pochta_store::MessageRecord> = ctx
        .store()
        .records(account, &numbers)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|r| (r.summary.id, r))
        .collect();
    let mut list = Vec::with_capacity(wanted.len());
    for (id, n) in wanted {
        let Some(record) = records.remove(&n) else {
            not_found.push(id.to_string());
            continue;
        };
        let subject = match (&record.meta.subject, subject_terms.is_empty()) {
            (Some(subject), false) => subject_snippet(subject, &subject_terms),
            _ => None,
        };
        let preview = if body_terms.is_empty() {
            None
        } else {
            match ctx.store().read_blob(account, record.summary.blob_id).await {
                Ok(raw) => preview_snippet(&body_text(&raw, &record.meta), &body_terms),
                Err(StoreError::NotFound(_)) => {
                    not_found.push(id.to_string());
                    continue;
                }
                Err(e) => return Err(store_error(e)),
            }
        };
        list.push(json!({
            "emailId": id,
            "subject": subject,
            "preview": preview,
        }));
    }
    Ok(json!({
        "accountId": account_id,
        "filter": raw_filter,
        "list": list,
        "notFound": if not_found.is_empty() { Value::Null } else { json!(not_found) },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn subjects() {
        assert_eq!(
            subject_snippet("The Foosball <cup> & more", &terms(&["foo", "cup"])).as_deref(),
            Some("The <mark>Foo</mark>sball &lt;<mark>cup</mark>&gt; &amp; more")
        );
        assert_eq!(subject_snippet("Nothing here", &terms(&["foo"])), None);
        // Overlapping terms merge into one mark.
        assert_eq!(
            subject_snippet("abcdef", &terms(&["abc", "cde"])).as_deref(),
            Some("<mark>abcde</mark>f")
        );
        // Case folding keeps the original spelling, also for non-ASCII.
        assert_eq!(
            subject_snippet("GRÜNE Äpfel", &terms(&["äpfel"])).as_deref(),
            Some("GRÜNE <mark>Äpfel</mark>")
        );
    }

    #[test]
    fn previews() {
        let body = format!(
            "{} the  needle\nis here {}",
            "word ".repeat(40),
            "tail ".repeat(100)
        );
        let p = preview_snippet(&body, &terms(&["needle"])).unwrap_or_default();
        assert!(p.starts_with("word word"), "{p}");
        assert!(p.contains("the <mark>needle</mark> is here"), "{p}");
        assert!(p.len() <= PREVIEW_OCTETS, "{}", p.len());
        assert!(p.len() > 200);
        assert_eq!(preview_snippet("nothing", &terms(&["needle"])), None);
        // A mark that does not fit is left out rather than cut.
        let long = format!("{}needle", "x".repeat(250));
        let p = preview_snippet(&long, &terms(&["needle"])).unwrap_or_default();
        assert_eq!(p, "<mark>needle</mark>");
    }
}
