//! Preview text and the attachment flag, computed from the part tree and the raw bytes.

use mail_parser::decoders::{charsets::map::charset_decoder, html::html_to_text};

use crate::{BodyPart, PREVIEW_CHARS, PartKind};

/// Encoded octets of a text/plain part looked at for the preview.
const PLAIN_PREFIX: usize = 16 * 1024;
/// Encoded octets of a text/html part looked at for the preview (style sheets are long).
const HTML_PREFIX: usize = 256 * 1024;

/// Preview of the first text/plain part, else of the first text/html part (tags
/// stripped); parts that are attachments or inside encapsulated messages are skipped.
pub(crate) fn preview(raw: &[u8], body: &BodyPart) -> String {
    let (part, is_html) = match first_text(body, "plain") {
        Some(part) => (part, false),
        None => match first_text(body, "html") {
            Some(part) => (part, true),
            None => return String::new(),
        },
    };
    let limit = if is_html { HTML_PREFIX } else { PLAIN_PREFIX };
    let range = part.body_range();
    let encoded = raw.get(range.start..range.end.min(range.start.saturating_add(limit)));
    let encoded = encoded.unwrap_or_default();
    let decoded = match part.encoding.as_str() {
        "BASE64" => crate::decode::base64(encoded),
        "QUOTED-PRINTABLE" => crate::decode::quoted_printable(encoded),
        _ => encoded.to_vec(),
    };
    let text = match part
        .charset
        .as_deref()
        .and_then(|c| charset_decoder(c.as_bytes()))
    {
        Some(decoder) => decoder(&decoded),
        None => String::from_utf8_lossy(&decoded).into_owned(),
    };
    let text = if is_html { html_to_text(&text) } else { text };
    collapse(&text, PREVIEW_CHARS)
}

fn first_text<'a>(part: &'a BodyPart, subtype: &str) -> Option<&'a BodyPart> {
    if is_attachment_disposition(part) {
        return None;
    }
    match &part.kind {
        PartKind::Multipart(children) => children.iter().find_map(|c| first_text(c, subtype)),
        PartKind::Message { .. } => None,
        PartKind::Leaf => {
            (part.media_type == "text" && part.media_subtype == subtype).then_some(part)
        }
    }
}

fn is_attachment_disposition(part: &BodyPart) -> bool {
    part.disposition
        .as_ref()
        .is_some_and(|(kind, _)| kind == "attachment")
}

/// Whether any part is an attachment: a Content-Disposition of attachment, an
/// encapsulated message, or a non-text leaf that is not displayed inline (images, audio
/// and video with an inline disposition or inside multipart/related are inline;
/// signatures and delivery reports are not attachments).
pub(crate) fn has_attachment(part: &BodyPart, parent_subtype: Option<&str>) -> bool {
    if is_attachment_disposition(part) {
        return true;
    }
    match &part.kind {
        PartKind::Multipart(children) => children
            .iter()
            .any(|c| has_attachment(c, Some(&part.media_subtype))),
        PartKind::Message { .. } => true,
        PartKind::Leaf => {
            let t = part.media_type.as_str();
            let s = part.media_subtype.as_str();
            match t {
                "text" | "multipart" => false,
                "image" | "audio" | "video" => {
                    let inline = part
                        .disposition
                        .as_ref()
                        .is_some_and(|(kind, _)| kind == "inline");
                    !(inline || parent_subtype == Some("related"))
                }
                "application" => !matches!(
                    s,
                    "pgp-signature"
                        | "pkcs7-signature"
                        | "x-pkcs7-signature"
                        | "pgp-encrypted"
                        | "pgp-keys"
                ),
                "message" => !matches!(
                    s,
                    "delivery-status"
                        | "global-delivery-status"
                        | "disposition-notification"
                        | "global-disposition-notification"
                ),
                _ => true,
            }
        }
    }
}

/// Collapses white space runs to one space, trims, and keeps at most `max` characters.
pub(crate) fn collapse(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut pending_space = false;
    for ch in text.chars() {
        if ch.is_whitespace() || ch.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            if count + 1 >= max {
                break;
            }
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        if count >= max {
            break;
        }
        out.push(ch);
        count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapsing() {
        assert_eq!(collapse("  a \r\n\t b  ", 10), "a b");
        assert_eq!(collapse("abcdef", 3), "abc");
        assert_eq!(collapse("ab cd", 3), "ab");
        assert_eq!(collapse("", 3), "");
    }
}
