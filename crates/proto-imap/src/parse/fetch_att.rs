//! FETCH data items (RFC 9051 §6.4.5) with BINARY (RFC 3516), CONDSTORE
//! (RFC 7162), OBJECTID (RFC 8474), PREVIEW (RFC 8970) and SAVEDATE (RFC 8514),
//! and the FETCH modifiers CHANGEDSINCE and VANISHED (RFC 7162).

use super::cursor::{Cursor, Res};
use crate::types::{FetchAttr, FetchModifiers, Section, SectionText};

/// The attribute list of FETCH: a macro, one attribute, or a parenthesised list.
pub(crate) fn fetch_attrs(c: &mut Cursor<'_>) -> Res<Vec<FetchAttr>> {
    if c.peek() == Some(b'(') {
        return c.list_of("the fetch attribute list", fetch_att);
    }
    let save = c.save();
    let word = c.word();
    let fast = [
        FetchAttr::Flags,
        FetchAttr::InternalDate,
        FetchAttr::Rfc822Size,
    ];
    match word.as_str() {
        // RFC 9051 §6.4.5: the macros.
        "ALL" => Ok([&fast[..], &[FetchAttr::Envelope]].concat()),
        "FAST" => Ok(fast.to_vec()),
        "FULL" => Ok([&fast[..], &[FetchAttr::Envelope, FetchAttr::Body]].concat()),
        _ => {
            c.restore(save);
            Ok(vec![fetch_att(c)?])
        }
    }
}

/// One `fetch-att`.
pub(crate) fn fetch_att(c: &mut Cursor<'_>) -> Res<FetchAttr> {
    let start = c.rest();
    let word = c.word();
    Ok(match word.as_str() {
        "ENVELOPE" => FetchAttr::Envelope,
        "FLAGS" => FetchAttr::Flags,
        "INTERNALDATE" => FetchAttr::InternalDate,
        "RFC822" => FetchAttr::Rfc822,
        "RFC822.HEADER" => FetchAttr::Rfc822Header,
        "RFC822.SIZE" => FetchAttr::Rfc822Size,
        "RFC822.TEXT" => FetchAttr::Rfc822Text,
        "BODYSTRUCTURE" => FetchAttr::BodyStructure,
        "UID" => FetchAttr::Uid,
        "MODSEQ" => FetchAttr::ModSeq,
        "EMAILID" => FetchAttr::EmailId,
        "THREADID" => FetchAttr::ThreadId,
        "SAVEDATE" => FetchAttr::SaveDate,
        "BODY" if c.peek() == Some(b'[') => FetchAttr::BodySection {
            peek: false,
            section: section(c)?,
            partial: partial(c)?,
        },
        "BODY" => FetchAttr::Body,
        "BODY.PEEK" => FetchAttr::BodySection {
            peek: true,
            section: section(c)?,
            partial: partial(c)?,
        },
        "BINARY" | "BINARY.PEEK" => FetchAttr::Binary {
            peek: word == "BINARY.PEEK",
            part: section_binary(c)?,
            partial: partial(c)?,
        },
        "BINARY.SIZE" => FetchAttr::BinarySize {
            part: section_binary(c)?,
        },
        "PREVIEW" => {
            // RFC 8970: `PREVIEW (LAZY)`; a `(` not followed by LAZY belongs to
            // what comes next (the fetch modifiers).
            let rest = c.rest();
            let lazy = rest
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case(b" (LAZY)"));
            if lazy {
                c.skip(7);
            }
            FetchAttr::Preview { lazy }
        }
        _ => {
            let back = Cursor::new(start);
            return back.expected("a fetch attribute");
        }
    })
}

/// `section`: `[` [section-spec] `]`.
fn section(c: &mut Cursor<'_>) -> Res<Section> {
    c.expect(b'[', "\"[\" starting the section")?;
    let mut part = Vec::new();
    if c.eat(b']') {
        return Ok(Section { part, text: None });
    }
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        part = section_part(c)?;
        if c.eat(b']') {
            return Ok(Section { part, text: None });
        }
        // section_part stopped at "." followed by a non-digit.
        c.expect(b'.', "\".\" or \"]\" after the part number")?;
    }
    let start = c.rest();
    let word = c.word();
    let text = match word.as_str() {
        "HEADER" => SectionText::Header,
        "TEXT" => SectionText::Text,
        "MIME" if !part.is_empty() => SectionText::Mime,
        "MIME" => return Err("MIME needs a part number (e.g. BODY[1.MIME])".to_owned()),
        "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
            c.sp_then("the list of header field names")?;
            let names = c.list_of("the header field names", header_field_name)?;
            if word == "HEADER.FIELDS" {
                SectionText::HeaderFields(names)
            } else {
                SectionText::HeaderFieldsNot(names)
            }
        }
        _ => {
            let back = Cursor::new(start);
            return back
                .expected("a section (HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME)");
        }
    };
    c.expect(b']', "\"]\" closing the section")?;
    Ok(Section {
        part,
        text: Some(text),
    })
}

/// `section-part`: nz-number *("." nz-number); stops before a "." that is not
/// followed by a digit.
fn section_part(c: &mut Cursor<'_>) -> Res<Vec<u32>> {
    let mut part = vec![c.nz_number("a part number")?];
    while c.peek() == Some(b'.') && c.peek2().is_some_and(|b| b.is_ascii_digit()) {
        c.skip(1);
        part.push(c.nz_number("a part number")?);
    }
    Ok(part)
}

/// `section-binary`: `[` [section-part] `]`.
fn section_binary(c: &mut Cursor<'_>) -> Res<Vec<u32>> {
    c.expect(b'[', "\"[\" starting the binary section")?;
    if c.eat(b']') {
        return Ok(Vec::new());
    }
    let part = section_part(c)?;
    c.expect(b']', "\"]\" closing the binary section")?;
    Ok(part)
}

/// `partial`: `<` number64 `.` nz-number64 `>`, if present.
fn partial(c: &mut Cursor<'_>) -> Res<Option<(u64, u64)>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let offset = c.number64("the partial offset")?;
    c.expect(
        b'.',
        "\".\" and a length in the partial range (<offset.length>)",
    )?;
    let length = c.nz_number64("the partial length")?;
    c.expect(b'>', "\">\" closing the partial range")?;
    Ok(Some((offset, length)))
}

/// `fetch-modifiers` after `SP (`: CHANGEDSINCE n, VANISHED (RFC 7162).
pub(crate) fn fetch_modifiers(c: &mut Cursor<'_>) -> Res<FetchModifiers> {
    let mut m = FetchModifiers::default();
    let mut vanished = false;
    let items = c.list_of("the fetch modifiers", |c| {
        let start = c.rest();
        match c.word().as_str() {
            "CHANGEDSINCE" => {
                c.sp_then("the CHANGEDSINCE mod-sequence")?;
                Ok(Some(c.number64("a mod-sequence value")?))
            }
            "VANISHED" => Ok(None),
            _ => Cursor::new(start).expected("a fetch modifier (CHANGEDSINCE or VANISHED)"),
        }
    })?;
    for item in items {
        match item {
            Some(n) => {
                if m.changed_since.is_some() {
                    return Err("CHANGEDSINCE given twice".to_owned());
                }
                m.changed_since = Some(n);
            }
            None => {
                if vanished {
                    return Err("VANISHED given twice".to_owned());
                }
                vanished = true;
            }
        }
    }
    m.vanished = vanished;
    Ok(m)
}

/// A `header-fld-name` of HEADER.FIELDS[.NOT]. The grammar allows any
/// astring, but only RFC 5322 field names (one or more printable US-ASCII
/// characters but `:`, §3.6.8) can match a header, and only they can be
/// echoed in the response's section as an atom or a quoted string. Anything
/// else (a space, 8-bit, a control) would have to go back as a literal inside
/// `BODY[...]`, which clients' parsers take apart; it is refused instead.
fn header_field_name(c: &mut Cursor<'_>) -> Res<String> {
    let name = c.astring_text("a header field name")?;
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        Ok(name)
    } else {
        Err(format!(
            "\"{}\" is not a header field name (printable US-ASCII without \":\")",
            name.escape_default()
        ))
    }
}
