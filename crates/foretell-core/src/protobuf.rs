//! The little of the protobuf wire format that Prometheus' remote write and remote read
//! messages need (`prometheus/prompb`): varints, length-delimited fields and skipping what a
//! message carries beyond that. The messages are small and fixed, so they are encoded and
//! read by hand rather than through generated code and a build step.

pub const WIRE_VARINT: u8 = 0;
pub const WIRE_FIXED64: u8 = 1;
pub const WIRE_LENGTH_DELIMITED: u8 = 2;
pub const WIRE_FIXED32: u8 = 5;

pub fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, u64::from(field << 3 | u32::from(wire_type)));
}

pub fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, WIRE_LENGTH_DELIMITED);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A varint field (`int64`, `uint64`, an enum): negative numbers take ten bytes, as protobuf's
/// `int64` encodes them.
pub fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_key(out, field, WIRE_VARINT);
    put_varint(out, value);
}

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint at `*at`, advancing past it; `None` when it runs past the end or is longer
/// than ten bytes.
pub fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// One field of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width field (skipped by every message read here).
    Fixed,
}

/// A message's encoding is broken: a field runs past the end, or a wire type that does not
/// exist (or the deprecated groups) appears.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf at byte {at}: {problem}")]
pub struct ProtobufError {
    pub at: usize,
    pub problem: &'static str,
}

/// The fields of one message, in the order they were written.
pub struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    pub fn of(bytes: &'a [u8]) -> Self {
        Fields { bytes, at: 0 }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Field<'a>), ProtobufError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let start = self.at;
        let fail = |problem| Some(Err(ProtobufError { at: start, problem }));
        let Some(key) = read_varint(self.bytes, &mut self.at) else {
            return fail("a field key runs past the end");
        };
        let Ok(number) = u32::try_from(key >> 3) else {
            return fail("a field number beyond 2^29");
        };
        let field = match (key & 7) as u8 {
            WIRE_VARINT => match read_varint(self.bytes, &mut self.at) {
                Some(value) => Field::Varint(value),
                None => return fail("a varint runs past the end"),
            },
            WIRE_LENGTH_DELIMITED => {
                let Some(length) = read_varint(self.bytes, &mut self.at) else {
                    return fail("a length runs past the end");
                };
                let end = usize::try_from(length)
                    .ok()
                    .and_then(|length| self.at.checked_add(length))
                    .filter(|&end| end <= self.bytes.len());
                let Some(end) = end else {
                    return fail("a length-delimited field runs past the end");
                };
                let bytes = &self.bytes[self.at..end];
                self.at = end;
                Field::Bytes(bytes)
            }
            wire @ (WIRE_FIXED64 | WIRE_FIXED32) => {
                let width = if wire == WIRE_FIXED64 { 8 } else { 4 };
                if self.at + width > self.bytes.len() {
                    return fail("a fixed-width field runs past the end");
                }
                self.at += width;
                Field::Fixed
            }
            _ => return fail("an unknown wire type"),
        };
        if number == 0 {
            return fail("field number 0");
        }
        Some(Ok((number, field)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_what_was_written_and_unknown_ones_are_skipped() {
        let mut message = Vec::new();
        put_varint_field(&mut message, 1, 300);
        put_bytes(&mut message, 2, b"abc");
        put_key(&mut message, 3, WIRE_FIXED64);
        message.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        put_key(&mut message, 4, WIRE_FIXED32);
        message.extend_from_slice(&[0; 4]);
        put_varint_field(&mut message, 5, -2i64 as u64);
        let fields: Vec<_> = Fields::of(&message)
            .collect::<Result<_, _>>()
            .expect("reads");
        assert_eq!(
            fields,
            vec![
                (1, Field::Varint(300)),
                (2, Field::Bytes(b"abc")),
                (3, Field::Fixed),
                (4, Field::Fixed),
                (5, Field::Varint(-2i64 as u64)),
            ]
        );
    }

    #[test]
    fn every_truncation_and_bad_wire_type_is_an_error() {
        let mut message = Vec::new();
        put_bytes(&mut message, 2, b"abcdef");
        let first_field_ends = message.len();
        put_varint_field(&mut message, 1, u64::MAX);
        for cut in (1..message.len()).filter(|&cut| cut != first_field_ends) {
            let result: Result<Vec<_>, _> = Fields::of(&message[..cut]).collect();
            assert!(result.is_err(), "cut at {cut}");
        }
        let whole_fields: Vec<_> = Fields::of(&message[..first_field_ends]).collect();
        assert_eq!(whole_fields, vec![Ok((2, Field::Bytes(b"abcdef")))]);
        for bad in [[0x0b_u8], [0x0c], [0x0e], [0x00]] {
            let result: Result<Vec<_>, _> = Fields::of(&bad).collect();
            assert!(result.is_err(), "{bad:?}");
        }
        let overlong = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert!(Fields::of(&overlong).next().expect("one").is_err());
    }
}
