//! The IMAP framer (`pochta_proto_imap::frame::Framer`) and command parser
//! (`parse_command`) on arbitrary client bytes: lines, synchronizing and
//! non-synchronizing literals, literal8, every command's grammar.
//!
//! Input: `[flags, seed, stream...]`. Flag bit 0 picks tiny limits (so line,
//! command, literal and count limits are reached), else the defaults.
//!
//! Invariants: no panic; the framer's memory stays within its limits; the
//! frames do not depend on how the stream was split into reads (the
//! framer's documented promise); every framed command either parses or is
//! refused with a message, and a parsed command's tag is a valid tag; the
//! parser never panics on the raw stream either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_fuzz::{Input, chunks};
use pochta_proto_imap::encode::is_astring_char;
use pochta_proto_imap::frame::{Frame, FrameLimits, Framer};
use pochta_proto_imap::parse::parse_command;

fn limits(flags: u8) -> FrameLimits {
    if flags & 1 != 0 {
        FrameLimits {
            max_line: 200,
            max_command: 1000,
            max_literal: 100,
            max_append_literal: 500,
            max_append_total: 800,
            max_literals: 4,
            max_discard: 2000,
        }
    } else {
        FrameLimits::default()
    }
}

fn frames(stream: &[u8], seed: u8, limits: FrameLimits) -> Vec<Frame> {
    let mut framer = Framer::new(limits);
    let bound = limits.max_command + limits.max_append_total + limits.max_line as u64 + 16;
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for read in chunks(stream, seed) {
        buf.extend_from_slice(read);
        loop {
            let (used, frame) = framer.poll(&buf);
            assert!(used <= buf.len(), "framer consumed more than it was given");
            buf.drain(..used);
            assert!(
                framer.buffered() as u64 <= bound,
                "framer holds {} octets",
                framer.buffered()
            );
            match frame {
                None => {
                    assert!(buf.is_empty(), "framer wants more but left input");
                    break;
                }
                Some(Frame::Fatal(why)) => {
                    out.push(Frame::Fatal(why));
                    return out;
                }
                Some(f) => out.push(f),
            }
        }
    }
    out
}

fn check_command(bytes: &[u8]) {
    match parse_command(bytes) {
        Ok(cmd) => {
            assert!(
                !cmd.tag.is_empty() && cmd.tag.bytes().all(|b| is_astring_char(b) && b != b'+'),
                "parsed command with a bad tag {:?}",
                cmd.tag
            );
            let _ = format!("{cmd:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else {
        return;
    };
    let limits = limits(input.flags);
    let split = frames(input.stream, input.seed, limits);
    for frame in &split {
        match frame {
            Frame::Command(bytes) => check_command(bytes),
            Frame::Refused { tag, refusal } => {
                let _ = (tag, refusal.status(), refusal.code(), refusal.text());
            }
            Frame::Continuation | Frame::Fatal(_) => {}
        }
    }
    if input.seed != 0 {
        let whole = frames(input.stream, 0, limits);
        assert_eq!(whole, split, "frames depend on how the input was split");
    }
    check_command(input.stream);
});
