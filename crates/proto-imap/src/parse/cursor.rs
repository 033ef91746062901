//! The lexical layer of the command parser: a cursor over one framed command
//! that reads the basic productions of RFC 9051 §9 (atoms, strings, literals,
//! numbers, sequence sets, dates, flags). Every read is bounds-checked and
//! returns an error message naming what was expected and what was found.

use crate::encode::{is_astring_char, is_atom_char};
use crate::types::{Date, DateTime, Flag, SeqNum, SequenceSet};

/// An error message without the command context (the caller adds it).
pub(crate) type Res<T> = Result<T, String>;

/// The largest `number64` (RFC 9051: unsigned 63-bit) and `mod-sequence-value`.
pub(crate) const MAX_NUMBER64: u64 = i64::MAX as u64;

/// A position in one command.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// `list-char`: atom characters, list wildcards and `]` (RFC 9051 §9).
fn is_list_char(b: u8) -> bool {
    is_atom_char(b) || b == b'%' || b == b'*' || b == b']'
}

const MONTHS: [&[u8; 3]; 12] = [
    b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC",
];

/// Days in a month of the proleptic Gregorian calendar.
pub(crate) fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// What is left.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or_default()
    }

    /// The next octet.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The octet after the next one.
    pub(crate) fn peek2(&self) -> Option<u8> {
        self.bytes.get(self.pos + 1).copied()
    }

    /// Skips `n` octets (at most to the end).
    pub(crate) fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.bytes.len());
    }

    /// The position, to come back to with [`restore`](Self::restore).
    pub(crate) fn save(&self) -> usize {
        self.pos
    }

    /// Goes back to a position from [`save`](Self::save).
    pub(crate) fn restore(&mut self, pos: usize) {
        self.pos = pos.min(self.bytes.len());
    }

    /// A description of what is at the cursor, for error messages: the next
    /// token quoted, or "the end of the command".
    pub(crate) fn got(&self) -> String {
        let rest = self.rest();
        if rest.is_empty() || rest == b"\r\n" || rest == b"\n" {
            return "the end of the command".to_owned();
        }
        if rest.first() == Some(&b'\r') || rest.first() == Some(&b'\n') {
            return "a line break".to_owned();
        }
        // The next token; a leading delimiter is shown with what follows it.
        let delimiter = |b: &u8| matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n');
        let first = usize::from(rest.first().is_some_and(delimiter));
        let len = first
            + rest
                .iter()
                .skip(first)
                .take(40 - first)
                .take_while(|b| !delimiter(b))
                .count();
        let token = rest.get(..len).unwrap_or_default();
        let more = if len == 40 { "..." } else { "" };
        format!("\"{}{more}\"", token.escape_ascii())
    }

    /// An error "expected `what`, got ...".
    pub(crate) fn expected<T>(&self, what: &str) -> Res<T> {
        Err(format!("expected {what}, got {}", self.got()))
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.skip(1);
            true
        } else {
            false
        }
    }

    /// Requires `b` next (`what` names it in the error).
    pub(crate) fn expect(&mut self, b: u8, what: &str) -> Res<()> {
        if self.eat(b) {
            Ok(())
        } else {
            self.expected(what)
        }
    }

    /// Requires exactly one space.
    pub(crate) fn sp(&mut self) -> Res<()> {
        self.expect(b' ', "a space")
    }

    /// Requires a space followed by something (`what` names it).
    pub(crate) fn sp_then(&mut self, what: &str) -> Res<()> {
        if self.eat(b' ') {
            Ok(())
        } else {
            self.expected(&format!("a space and {what}"))
        }
    }

    /// Requires `(`.
    pub(crate) fn open(&mut self) -> Res<()> {
        self.expect(b'(', "\"(\"")
    }

    /// True at the CRLF (or LF) that ends the command.
    pub(crate) fn at_eol(&self) -> bool {
        matches!(self.rest(), b"\r\n" | b"\n")
    }

    /// Requires the end of the command: CRLF (or LF) and nothing after it.
    pub(crate) fn eol(&mut self) -> Res<()> {
        if self.at_eol() {
            self.pos = self.bytes.len();
            Ok(())
        } else {
            self.expected("the end of the command")
        }
    }

    /// Reads octets while `pred` holds (possibly none).
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = self.rest();
        let n = rest.iter().take_while(|&&b| pred(b)).count();
        self.skip(n);
        rest.get(..n).unwrap_or_default()
    }

    /// Reads a keyword-like word: letters, digits, `.`, `-` (`BODY.PEEK`,
    /// `SPECIAL-USE`), upper-cased; empty if none.
    pub(crate) fn word(&mut self) -> String {
        let w = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        String::from_utf8_lossy(w).to_ascii_uppercase()
    }

    /// Reads a word and requires it to be `kw` (case-insensitive).
    pub(crate) fn keyword(&mut self, kw: &str) -> Res<()> {
        let save = self.pos;
        let w = self.word();
        if w == kw {
            Ok(())
        } else {
            self.pos = save;
            self.expected(&format!("\"{kw}\""))
        }
    }

    /// `atom` (1*ATOM-CHAR).
    pub(crate) fn atom(&mut self, what: &str) -> Res<&'a [u8]> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            self.expected(what)
        } else {
            Ok(a)
        }
    }

    /// An atom as upper-case text.
    pub(crate) fn atom_upper(&mut self, what: &str) -> Res<String> {
        Ok(String::from_utf8_lossy(self.atom(what)?).to_ascii_uppercase())
    }

    /// `number` (u32).
    pub(crate) fn number(&mut self, what: &str) -> Res<u32> {
        let save = self.pos;
        let n = self.number64(what)?;
        u32::try_from(n).map_err(|_| {
            self.pos = save;
            format!("{what} out of range, got {}", self.got())
        })
    }

    /// `nz-number` (1..=u32::MAX, no leading zero).
    pub(crate) fn nz_number(&mut self, what: &str) -> Res<u32> {
        if self.peek() == Some(b'0') {
            return Err(format!(
                "{what} must be a number from 1, got {}",
                self.got()
            ));
        }
        self.number(what)
    }

    /// `number64` (0..=2^63-1).
    pub(crate) fn number64(&mut self, what: &str) -> Res<u64> {
        let digits = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return self.expected(what);
        }
        let n = self
            .rest()
            .get(..digits)
            .unwrap_or_default()
            .iter()
            .try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .filter(|&n| n <= MAX_NUMBER64);
        match n {
            Some(n) => {
                self.skip(digits);
                Ok(n)
            }
            None => Err(format!("{what} out of range, got {}", self.got())),
        }
    }

    /// `nz-number64`.
    pub(crate) fn nz_number64(&mut self, what: &str) -> Res<u64> {
        if self.peek() == Some(b'0') {
            return Err(format!(
                "{what} must be a number from 1, got {}",
                self.got()
            ));
        }
        self.number64(what)
    }

    /// `quoted`: `"` text with `\"` and `\\` escapes `"`; UTF-8 allowed
    /// (IMAP4rev2), no CR, LF or NUL.
    pub(crate) fn quoted(&mut self) -> Res<Vec<u8>> {
        self.expect(b'"', "a quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.skip(1);
                    break;
                }
                Some(b'\\') => {
                    self.skip(1);
                    match self.peek() {
                        Some(b @ (b'"' | b'\\')) => {
                            out.push(b);
                            self.skip(1);
                        }
                        _ => {
                            return Err(format!(
                                "in a quoted string, \\ may only escape \" or \\, got {}",
                                self.got()
                            ));
                        }
                    }
                }
                Some(0 | b'\r' | b'\n') | None => {
                    return Err("unterminated quoted string".to_owned());
                }
                Some(b) => {
                    out.push(b);
                    self.skip(1);
                }
            }
        }
        if std::str::from_utf8(&out).is_err() {
            return Err("quoted string is not valid UTF-8 (use a literal)".to_owned());
        }
        Ok(out)
    }

    /// True if a literal (`{`) or literal8 (`~{`) starts here.
    pub(crate) fn at_literal(&self) -> bool {
        match self.peek() {
            Some(b'{') => true,
            Some(b'~') => self.peek2() == Some(b'{'),
            _ => false,
        }
    }

    /// `literal` (or `literal8` when `binary_ok`): `{n}` or `{n+}`, CRLF, n
    /// octets. Returns the octets and whether it was a literal8. A literal may
    /// not contain NUL (RFC 9051 `CHAR8`); a literal8 may.
    pub(crate) fn literal(&mut self, binary_ok: bool) -> Res<(Vec<u8>, bool)> {
        let binary = self.peek() == Some(b'~');
        if binary {
            if !binary_ok {
                return Err("literal8 (~{n}) is only allowed in APPEND".to_owned());
            }
            self.skip(1);
        }
        self.expect(b'{', "a literal")?;
        let n = self.number64("a literal size")?;
        self.eat(b'+');
        self.expect(b'}', "\"}\" closing the literal size")?;
        let crlf = self.eat(b'\n') || (self.eat(b'\r') && self.eat(b'\n'));
        if !crlf {
            return self.expected("CRLF after the literal size");
        }
        let data = usize::try_from(n)
            .ok()
            .and_then(|n| self.rest().get(..n))
            .ok_or_else(|| "literal is shorter than announced".to_owned())?;
        if !binary && memchr::memchr(0, data).is_some() {
            return Err(
                "literal contains a NUL octet (binary data needs literal8 ~{n})".to_owned(),
            );
        }
        let data = data.to_vec();
        self.skip(data.len());
        Ok((data, binary))
    }

    /// `string`: quoted or literal.
    pub(crate) fn string(&mut self, what: &str) -> Res<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal(false)?.0),
            _ => self.expected(what),
        }
    }

    /// `nstring`: NIL or a string.
    pub(crate) fn nstring(&mut self, what: &str) -> Res<Option<Vec<u8>>> {
        if self.is_nil() {
            self.skip(3);
            return Ok(None);
        }
        self.string(what).map(Some)
    }

    /// True if `NIL` (as a whole atom) is next.
    pub(crate) fn is_nil(&self) -> bool {
        let rest = self.rest();
        rest.get(..3)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"NIL"))
            && !rest.get(3).is_some_and(|&b| is_astring_char(b))
    }

    /// `astring`: 1*ASTRING-CHAR or a string.
    pub(crate) fn astring(&mut self, what: &str) -> Res<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal(false)?.0),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    self.expected(what)
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    /// An astring that must be text (header field names, IDs).
    pub(crate) fn astring_text(&mut self, what: &str) -> Res<String> {
        let save = self.pos;
        let s = self.astring(what)?;
        String::from_utf8(s).map_err(|_| {
            self.pos = save;
            format!("{what} must be UTF-8 text, got {}", self.got())
        })
    }

    /// `mailbox`: `INBOX` (any case, however written, becomes `INBOX`, RFC 9051
    /// §5.1) or an astring, as sent.
    pub(crate) fn mailbox(&mut self) -> Res<Vec<u8>> {
        let name = self.astring("a mailbox name")?;
        if name.eq_ignore_ascii_case(b"INBOX") {
            Ok(b"INBOX".to_vec())
        } else {
            Ok(name)
        }
    }

    /// `list-mailbox`: 1*list-char or a string (a LIST pattern).
    pub(crate) fn list_mailbox(&mut self) -> Res<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal(false)?.0),
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    self.expected("a mailbox pattern")
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    /// `seq-number`: nz-number or `*`.
    fn seq_number(&mut self) -> Res<SeqNum> {
        if self.eat(b'*') {
            return Ok(SeqNum::Star);
        }
        if self.peek() == Some(b'0') {
            return Err(format!(
                "message numbers and UIDs start at 1, got {}",
                self.got()
            ));
        }
        match self.peek() {
            Some(b'1'..=b'9') => self.nz_number("a message number").map(SeqNum::Value),
            _ => self.expected("a sequence set"),
        }
    }

    /// `sequence-set` or `$` (RFC 5182).
    pub(crate) fn sequence_set(&mut self) -> Res<SequenceSet> {
        if self.eat(b'$') {
            if matches!(self.peek(), Some(b',' | b':')) {
                return Err("\"$\" must stand alone, not in a sequence set".to_owned());
            }
            return Ok(SequenceSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            let a = self.seq_number()?;
            let b = if self.eat(b':') {
                self.seq_number()?
            } else {
                a
            };
            ranges.push((a, b));
            if !self.eat(b',') {
                break;
            }
            if self.peek() == Some(b'$') {
                return Err("\"$\" must stand alone, not in a sequence set".to_owned());
            }
        }
        if self.peek().is_some_and(is_atom_char) {
            return Err(format!(
                "unexpected characters after the sequence set, got {}",
                self.got()
            ));
        }
        Ok(SequenceSet::Ranges(ranges))
    }

    /// `date-month` (case-insensitive).
    fn month(&mut self) -> Res<u8> {
        let m = self
            .rest()
            .get(..3)
            .and_then(|m| MONTHS.iter().position(|x| x.eq_ignore_ascii_case(m)));
        match m {
            Some(i) => {
                self.skip(3);
                Ok(i as u8 + 1)
            }
            None => self.expected("a month (Jan..Dec)"),
        }
    }

    /// Exactly `n` digits as a number.
    fn digits(&mut self, n: usize, what: &str) -> Res<u16> {
        match self.rest().get(..n) {
            Some(d) if d.iter().all(u8::is_ascii_digit) => {
                self.skip(n);
                Ok(d.iter().fold(0u16, |v, &c| v * 10 + u16::from(c - b'0')))
            }
            _ => self.expected(what),
        }
    }

    /// `date-text` with a 1- or 2-digit day (or a leading space when `fixed`).
    fn date_text(&mut self, fixed: bool) -> Res<Date> {
        let day = if fixed && self.eat(b' ') {
            self.digits(1, "a day")?
        } else if self.peek2().is_some_and(|b| b.is_ascii_digit()) {
            self.digits(2, "a day")?
        } else {
            self.digits(1, "a date (d-Mon-yyyy)")?
        };
        self.expect(b'-', "\"-\" in the date")?;
        let month = self.month()?;
        self.expect(b'-', "\"-\" in the date")?;
        let year = self.digits(4, "a four-digit year")?;
        let day = u8::try_from(day).unwrap_or(0);
        if day == 0 || day > days_in_month(year, month) {
            return Err(format!(
                "invalid date: day {day} of month {month} of {year}"
            ));
        }
        Ok(Date { year, month, day })
    }

    /// `date` for SEARCH: `d-Mon-yyyy`, optionally quoted.
    pub(crate) fn date(&mut self) -> Res<Date> {
        if self.eat(b'"') {
            let d = self.date_text(false)?;
            self.expect(b'"', "'\"' closing the date")?;
            Ok(d)
        } else if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.date_text(false)
        } else {
            self.expected("a date (d-Mon-yyyy)")
        }
    }

    /// `date-time` for APPEND: `"dd-Mon-yyyy hh:mm:ss +zzzz"` (the day may be
    /// space-padded, or, tolerated, a single digit).
    pub(crate) fn date_time(&mut self) -> Res<DateTime> {
        self.expect(b'"', "a date-time")?;
        let date = self.date_text(true)?;
        self.sp()?;
        let hour = self.digits(2, "hh:mm:ss")?;
        self.expect(b':', "\":\" in the time")?;
        let minute = self.digits(2, "hh:mm:ss")?;
        self.expect(b':', "\":\" in the time")?;
        let second = self.digits(2, "hh:mm:ss")?;
        if hour > 23 || minute > 59 || second > 60 {
            return Err(format!("invalid time {hour:02}:{minute:02}:{second:02}"));
        }
        self.sp()?;
        let sign: i16 = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return self.expected("a zone (+hhmm or -hhmm)"),
        };
        self.skip(1);
        let zone = self.digits(4, "a zone (+hhmm or -hhmm)")?;
        if zone % 100 > 59 {
            return Err(format!("invalid zone minutes in {zone:04}"));
        }
        let zone_minutes = sign * i16::try_from(zone / 100 * 60 + zone % 100).unwrap_or(0);
        self.expect(b'"', "'\"' closing the date-time")?;
        Ok(DateTime {
            date,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
            zone_minutes,
        })
    }

    /// `flag`: a system flag, `\extension`, or a keyword atom.
    pub(crate) fn flag(&mut self) -> Res<Flag> {
        if self.eat(b'\\') {
            let a = self.atom("a flag name after \"\\\"")?;
            let name = String::from_utf8_lossy(a);
            return Ok(match name.to_ascii_uppercase().as_str() {
                "SEEN" => Flag::Seen,
                "ANSWERED" => Flag::Answered,
                "FLAGGED" => Flag::Flagged,
                "DELETED" => Flag::Deleted,
                "DRAFT" => Flag::Draft,
                "RECENT" => Flag::Recent,
                _ => Flag::Extension(format!("\\{name}")),
            });
        }
        let a = self.atom("a flag")?;
        Ok(Flag::Keyword(String::from_utf8_lossy(a).into_owned()))
    }

    /// `flag-list`: `(` [flag *(SP flag)] `)`.
    pub(crate) fn flag_list(&mut self) -> Res<Vec<Flag>> {
        self.expect(b'(', "a flag list")?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.expect(b' ', "a space or \")\" in the flag list")?;
        }
    }

    /// A parenthesised, space-separated, non-empty list of `item`.
    pub(crate) fn list_of<T>(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Self) -> Res<T>,
    ) -> Res<Vec<T>> {
        self.expect(b'(', &format!("\"(\" starting {what}"))?;
        let mut out = Vec::new();
        loop {
            out.push(item(self)?);
            if self.eat(b')') {
                return Ok(out);
            }
            self.expect(b' ', &format!("a space or \")\" in {what}"))?;
        }
    }

    /// Like [`list_of`](Self::list_of) but `()` is allowed.
    pub(crate) fn list_of_maybe_empty<T>(
        &mut self,
        what: &str,
        item: impl FnMut(&mut Self) -> Res<T>,
    ) -> Res<Vec<T>> {
        if self.rest().starts_with(b"()") {
            self.skip(2);
            return Ok(Vec::new());
        }
        self.list_of(what, item)
    }
}
