//! Search keys (RFC 9051 §6.4.4 and RFC 3501 §6.4.4, with RFC 7162 MODSEQ,
//! RFC 8474 EMAILID/THREADID, RFC 5032 OLDER/YOUNGER, RFC 5182 `$`).

use super::cursor::{Cursor, Res};
use crate::types::{SearchKey, SearchReturn};

/// How deeply parentheses, NOT and OR may nest.
pub const MAX_DEPTH: usize = 64;

/// `search-return-opts` after `RETURN`: `(` [opt *(SP opt)] `)`.
pub(crate) fn search_returns(c: &mut Cursor<'_>) -> Res<Vec<SearchReturn>> {
    c.list_of_maybe_empty("the RETURN options", |c| {
        let save = c.rest();
        match c.word().as_str() {
            "MIN" => Ok(SearchReturn::Min),
            "MAX" => Ok(SearchReturn::Max),
            "ALL" => Ok(SearchReturn::All),
            "COUNT" => Ok(SearchReturn::Count),
            "SAVE" => Ok(SearchReturn::Save),
            _ => {
                let back = Cursor::new(save);
                back.expected("a RETURN option (MIN, MAX, ALL, COUNT or SAVE)")
            }
        }
    })
}

/// `search-key *(SP search-key)` up to the end of the command: the keys as an
/// `And`.
pub(crate) fn search_keys(c: &mut Cursor<'_>) -> Res<SearchKey> {
    let mut keys = vec![search_key(c, 0)?];
    while !c.at_eol() {
        c.sp_then("another search key")?;
        keys.push(search_key(c, 0)?);
    }
    Ok(SearchKey::And(keys))
}

/// `charset`: atom or quoted, upper-cased.
pub(crate) fn charset(c: &mut Cursor<'_>) -> Res<String> {
    let raw = if c.peek() == Some(b'"') {
        c.quoted()?
    } else {
        c.atom("a charset name")?.to_vec()
    };
    Ok(String::from_utf8_lossy(&raw).to_ascii_uppercase())
}

/// A string argument of a search key (`astring`).
fn text(c: &mut Cursor<'_>, key: &str) -> Res<Vec<u8>> {
    c.sp_then(&format!("the {key} string"))?;
    c.astring(&format!("the {key} string"))
}

fn date(c: &mut Cursor<'_>, key: &str) -> Res<crate::types::Date> {
    c.sp_then(&format!("the {key} date"))?;
    c.date()
}

fn number64(c: &mut Cursor<'_>, key: &str) -> Res<u64> {
    c.sp_then(&format!("the {key} number"))?;
    c.number64(&format!("the {key} number"))
}

/// `flag-keyword` for KEYWORD/UNKEYWORD.
fn keyword(c: &mut Cursor<'_>, key: &str) -> Res<String> {
    c.sp_then(&format!("the {key} keyword"))?;
    if c.peek() == Some(b'\\') {
        return Err(format!(
            "{key} takes a keyword, not a system flag; got {}",
            c.got()
        ));
    }
    Ok(String::from_utf8_lossy(c.atom("a keyword")?).into_owned())
}

/// `objectid` (RFC 8474): 1*255(ALPHA / DIGIT / "_" / "-").
fn object_id(c: &mut Cursor<'_>, key: &str) -> Res<String> {
    c.sp_then(&format!("the {key} object id"))?;
    let id = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if id.is_empty() || id.len() > 255 {
        return c.expected("an object id (1 to 255 letters, digits, \"_\" or \"-\")");
    }
    Ok(String::from_utf8_lossy(id).into_owned())
}

/// One `search-key`; `depth` counts enclosing parentheses, NOT and OR.
pub(crate) fn search_key(c: &mut Cursor<'_>, depth: usize) -> Res<SearchKey> {
    if depth >= MAX_DEPTH {
        return Err(format!("search criteria nested deeper than {MAX_DEPTH}"));
    }
    match c.peek() {
        Some(b'(') => {
            c.open()?;
            let mut keys = vec![search_key(c, depth + 1)?];
            while !c.eat(b')') {
                c.expect(b' ', "a space or \")\" in the search criteria")?;
                keys.push(search_key(c, depth + 1)?);
            }
            return Ok(SearchKey::And(keys));
        }
        Some(b'0'..=b'9' | b'*' | b'$') => return Ok(SearchKey::SequenceSet(c.sequence_set()?)),
        _ => {}
    }
    let start = c.rest();
    let word = c.word();
    Ok(match word.as_str() {
        "ALL" => SearchKey::All,
        "ANSWERED" => SearchKey::Answered,
        "DELETED" => SearchKey::Deleted,
        "DRAFT" => SearchKey::Draft,
        "FLAGGED" => SearchKey::Flagged,
        "NEW" => SearchKey::New,
        "OLD" => SearchKey::Old,
        "RECENT" => SearchKey::Recent,
        "SEEN" => SearchKey::Seen,
        "UNANSWERED" => SearchKey::Unanswered,
        "UNDELETED" => SearchKey::Undeleted,
        "UNDRAFT" => SearchKey::Undraft,
        "UNFLAGGED" => SearchKey::Unflagged,
        "UNSEEN" => SearchKey::Unseen,
        "BCC" => SearchKey::Bcc(text(c, "BCC")?),
        "BODY" => SearchKey::Body(text(c, "BODY")?),
        "CC" => SearchKey::Cc(text(c, "CC")?),
        "FROM" => SearchKey::From(text(c, "FROM")?),
        "SUBJECT" => SearchKey::Subject(text(c, "SUBJECT")?),
        "TEXT" => SearchKey::Text(text(c, "TEXT")?),
        "TO" => SearchKey::To(text(c, "TO")?),
        "HEADER" => {
            c.sp_then("a header field name")?;
            let name = c.astring_text("a header field name")?;
            let value = text(c, "HEADER")?;
            SearchKey::Header(name, value)
        }
        "BEFORE" => SearchKey::Before(date(c, "BEFORE")?),
        "ON" => SearchKey::On(date(c, "ON")?),
        "SINCE" => SearchKey::Since(date(c, "SINCE")?),
        "SENTBEFORE" => SearchKey::SentBefore(date(c, "SENTBEFORE")?),
        "SENTON" => SearchKey::SentOn(date(c, "SENTON")?),
        "SENTSINCE" => SearchKey::SentSince(date(c, "SENTSINCE")?),
        "KEYWORD" => SearchKey::Keyword(keyword(c, "KEYWORD")?),
        "UNKEYWORD" => SearchKey::Unkeyword(keyword(c, "UNKEYWORD")?),
        "LARGER" => SearchKey::Larger(number64(c, "LARGER")?),
        "SMALLER" => SearchKey::Smaller(number64(c, "SMALLER")?),
        "UID" => {
            c.sp_then("a UID set")?;
            SearchKey::Uid(c.sequence_set()?)
        }
        "NOT" => {
            c.sp_then("the search key to negate")?;
            SearchKey::Not(Box::new(search_key(c, depth + 1)?))
        }
        "OR" => {
            c.sp_then("the first search key of OR")?;
            let a = search_key(c, depth + 1)?;
            c.sp_then("the second search key of OR")?;
            let b = search_key(c, depth + 1)?;
            SearchKey::Or(Box::new(a), Box::new(b))
        }
        "MODSEQ" => SearchKey::ModSeq(modseq(c)?),
        "EMAILID" => SearchKey::EmailId(object_id(c, "EMAILID")?),
        "THREADID" => SearchKey::ThreadId(object_id(c, "THREADID")?),
        "OLDER" => {
            c.sp_then("the OLDER interval")?;
            SearchKey::Older(u64::from(c.nz_number("the OLDER interval in seconds")?))
        }
        "YOUNGER" => {
            c.sp_then("the YOUNGER interval")?;
            SearchKey::Younger(u64::from(c.nz_number("the YOUNGER interval in seconds")?))
        }
        _ => {
            let back = Cursor::new(start);
            return back.expected("a search key");
        }
    })
}

/// `MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer`
/// (RFC 7162 §3.1.5); the entry is checked and ignored.
fn modseq(c: &mut Cursor<'_>) -> Res<u64> {
    c.sp_then("the MODSEQ value")?;
    if c.peek() == Some(b'"') {
        let entry = c.quoted()?;
        if !entry.starts_with(b"/flags/") || entry.len() <= b"/flags/".len() {
            return Err(format!(
                "MODSEQ entry name must be \"/flags/<flag>\", got \"{}\"",
                entry.escape_ascii()
            ));
        }
        c.sp_then("the MODSEQ entry type")?;
        let start = c.save();
        match c.word().as_str() {
            "PRIV" | "SHARED" | "ALL" => {}
            _ => {
                c.restore(start);
                return c.expected("a MODSEQ entry type (priv, shared or all)");
            }
        }
        c.sp_then("the MODSEQ value")?;
    }
    c.number64("a mod-sequence value")
}
