//! The message body the load generator sends and the sink reads back.
//!
//! The first line carries what the sink needs to time an arrival without
//! keeping any per-message state: `B <seq> <reference µs> <record>`. The
//! reference is the intended send time (latency) or the due time (delay
//! precision), on the bench's own clock; `record` says whether this message
//! belongs to the measured window. The rest is padding to the body size.

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub reference_us: i64,
    pub record: bool,
}

pub fn encode(stamp: Stamp, size: usize) -> Bytes {
    let mut out = format!(
        "B {} {} {}\n",
        stamp.seq, stamp.reference_us, stamp.record as u8
    )
    .into_bytes();
    if out.len() < size {
        out.resize(size, b'x');
    }
    Bytes::from(out)
}

pub fn decode(body: &[u8]) -> Option<Stamp> {
    let line = body.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if parts.next()? != "B" {
        return None;
    }
    let seq = parts.next()?.parse().ok()?;
    let reference_us = parts.next()?.parse().ok()?;
    let record = match parts.next()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    Some(Stamp {
        seq,
        reference_us,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        let s = Stamp {
            seq: 42,
            reference_us: -7,
            record: true,
        };
        let b = encode(s, 1024);
        assert_eq!(b.len(), 1024);
        assert_eq!(decode(&b), Some(s));
    }

    #[test]
    fn short_size_keeps_the_whole_stamp() {
        let s = Stamp {
            seq: 123_456_789,
            reference_us: 1,
            record: false,
        };
        assert_eq!(decode(&encode(s, 4)), Some(s));
    }

    #[test]
    fn foreign_bodies_are_ignored() {
        assert_eq!(decode(b"hello"), None);
        assert_eq!(decode(b"B 1 x 1\n"), None);
        assert_eq!(decode(b""), None);
    }
}
