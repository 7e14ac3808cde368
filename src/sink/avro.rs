//! Avro binary encoding written straight from typed views, and the Confluent wire format:
//! magic byte 0, 4-byte big-endian schema id, datum. Providers write their records with these
//! primitives in their schema's field order, with a length pass first ([`Counter`]) so a
//! record's exact size is known before it is built.

use apache_avro::Schema;

/// Confluent wire format's first byte.
pub const MAGIC_BYTE: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Parses a schema's text; `path` names it in the error.
pub fn parse_schema(path: &str, json: &str) -> Result<Schema, String> {
    Schema::parse_str(json).map_err(|e| format!("schema {path} is invalid: {e}"))
}

/// The framed length of a datum `write` produces: header plus datum.
pub fn framed_len(write: impl FnOnce(&mut Counter)) -> usize {
    let mut counter = Counter(0);
    write(&mut counter);
    HEADER_LEN + counter.0
}

/// A framed value: the Confluent header for `schema_id`, then the datum `write` produces, in a
/// buffer of exactly `len` bytes (from [`framed_len`]).
pub fn framed(schema_id: u32, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    write_header(&mut out, schema_id);
    write(&mut out);
    out
}

/// Appends the Confluent wire-format header.
pub fn write_header(out: &mut Vec<u8>, schema_id: u32) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a Confluent-framed value into schema id and datum.
pub fn split_frame(value: &[u8]) -> Option<(u32, &[u8])> {
    match value {
        [MAGIC_BYTE, a, b, c, d, datum @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => None,
    }
}

/// Where Avro bytes go: a buffer, or a counter for the length pass.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

pub struct Counter(pub usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Avro `long`: zig-zag, then base-128 varint.
pub fn long(out: &mut impl Sink, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut buf = [0u8; 10];
    let mut i = 0;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            buf[i] = byte;
            i += 1;
            break;
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
    out.put(&buf[..i]);
}

pub fn len(out: &mut impl Sink, n: usize) {
    long(out, i64::try_from(n).unwrap_or(i64::MAX));
}

pub fn string(out: &mut impl Sink, s: &str) {
    len(out, s.len());
    out.put(s.as_bytes());
}

pub fn boolean(out: &mut impl Sink, b: bool) {
    out.put(&[u8::from(b)]);
}

/// A `["null", T]` union: branch 0 for null, 1 then the value.
pub fn optional<S: Sink, T: ?Sized>(out: &mut S, v: Option<&T>, write: impl FnOnce(&mut S, &T)) {
    match v {
        None => long(out, 0),
        Some(v) => {
            long(out, 1);
            write(out, v);
        }
    }
}

pub fn opt_str(out: &mut impl Sink, v: Option<&str>) {
    optional(out, v, string);
}

pub fn opt_bool(out: &mut impl Sink, v: Option<bool>) {
    optional(out, v.as_ref(), |o, b| boolean(o, *b));
}

pub fn opt_long(out: &mut impl Sink, v: Option<i64>) {
    optional(out, v.as_ref(), |o, n| long(o, *n));
}

/// An array as one block: count, items, then the empty block that ends it.
pub fn array<S: Sink, T>(out: &mut S, items: &[T], mut write: impl FnMut(&mut S, &T)) {
    if !items.is_empty() {
        len(out, items.len());
        for item in items {
            write(out, item);
        }
    }
    long(out, 0);
}

/// For tests: reads a Confluent-framed value back with apache-avro's generic reader against
/// `schema`, and checks that nothing is left over: the schema id and the datum.
#[cfg(test)]
pub fn read_framed(schema: &apache_avro::Schema, value: &[u8]) -> (u32, apache_avro::types::Value) {
    let (id, mut datum) = split_frame(value).expect("framed");
    let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .expect("reader")
        .read_value(&mut datum)
        .expect("decodes");
    assert!(datum.is_empty(), "trailing bytes");
    (id, value)
}

/// For tests: [`read_framed`] for a record; the schema id and the record's fields.
#[cfg(test)]
pub fn read_record(
    schema: &apache_avro::Schema,
    value: &[u8],
) -> (u32, Vec<(String, apache_avro::types::Value)>) {
    match read_framed(schema, value) {
        (id, apache_avro::types::Value::Record(fields)) => (id, fields),
        (_, other) => panic!("not a record: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_back() {
        assert_eq!(split_frame(&[0, 0, 0, 1, 0, 9]), Some((256, &[9u8][..])));
        assert_eq!(split_frame(&[1, 0, 0, 0, 1]), None);
        assert_eq!(split_frame(&[0, 0]), None);
    }

    #[test]
    fn longs_are_zigzag_varints() {
        for (n, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (64, vec![0x80, 0x01]),
            (
                i64::MIN,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            long(&mut out, n);
            assert_eq!(out, bytes, "{n}");
        }
        let value = framed(7, framed_len(|o| string(o, "ab")), |o| string(o, "ab"));
        assert_eq!(value, vec![0, 0, 0, 0, 7, 4, b'a', b'b']);
    }
}
