//! Lenient, bounded reading of JSON for typed views. Knows no vendor.
//!
//! A body is never turned into a whole tree. Each object is read shallowly: only the wanted
//! keys are kept, as slices of the text ([`RawValue`]), and everything else is skipped by
//! serde_json's iterative skipper, which allocates nothing and has no depth limit. Arrays are
//! counted and only their first `cap` items kept. So the memory a body costs is bounded by what
//! the typed view keeps, whatever the body's shape, and nesting cannot exhaust the stack.
//!
//! Leaves are decoded here rather than by serde, so RFC 8259 JSON that serde_json refuses still
//! yields a view: a lone surrogate escape becomes U+FFFD, a number out of range becomes `None`.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Why a text is not a JSON document of the expected shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Not JSON at all (RFC 8259).
    NotJson,
    /// JSON, but not an object.
    NotObject,
}

/// A UTF-8 byte order mark, which RFC 8259 allows a parser to ignore.
const BOM: &str = "\u{feff}";

/// The values of the wanted keys of one object, as raw JSON text. A key given twice keeps its
/// last value, as most JSON parsers do.
#[derive(Debug, Clone)]
pub struct Fields<'a, 'w> {
    found: Vec<(usize, &'a RawValue)>,
    wanted: &'w [&'w str],
}

impl<'a> Fields<'a, '_> {
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        let index = self.wanted.iter().position(|w| *w == key)?;
        self.found
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, v)| *v)
    }
}

/// Reads a whole document that must be an object, keeping `wanted`. A leading byte order mark
/// is skipped.
pub fn document<'a, 'w>(text: &'a str, wanted: &'w [&'w str]) -> Result<Fields<'a, 'w>, Shape> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    // One pass reads the object and validates it: serde_json checks every value it skips or
    // keeps raw. Only the keys, taken as bytes, escape its control-character check; a key
    // written without escapes is checked here, and a document with an escaped key (rare: its
    // decoded bytes cannot tell `\u0001` from a raw control character) gets one validating
    // pass of its own (no allocation, no depth limit, lone surrogates allowed).
    let mut escaped_key = false;
    let read = read_fields(text, wanted, Keys::Check(&mut escaped_key));
    let valid = |text| serde_json::from_str::<IgnoredAny>(text).is_ok();
    match read {
        Ok(found) if !escaped_key || valid(text) => Ok(Fields { found, wanted }),
        Ok(_) => Err(Shape::NotJson),
        Err(_) if valid(text) => Err(Shape::NotObject),
        Err(_) => Err(Shape::NotJson),
    }
}

/// The object `raw`, keeping `wanted`; `None` when it is not an object.
pub fn object<'a, 'w>(raw: &'a RawValue, wanted: &'w [&'w str]) -> Option<Fields<'a, 'w>> {
    if !raw.get().starts_with('{') {
        return None;
    }
    fields_of(raw.get(), wanted).ok()
}

fn fields_of<'a, 'w>(
    text: &'a str,
    wanted: &'w [&'w str],
) -> Result<Fields<'a, 'w>, serde_json::Error> {
    let found = read_fields(text, wanted, Keys::Trusted)?;
    Ok(Fields { found, wanted })
}

/// How keys are read: `Trusted` inside text a validating read already covered, `Check` for a
/// whole document (raw control characters refused, escaped keys reported).
enum Keys<'f> {
    Trusted,
    Check(&'f mut bool),
}

fn read_fields<'a>(
    text: &'a str,
    wanted: &[&str],
    keys: Keys<'_>,
) -> Result<Vec<(usize, &'a RawValue)>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let found = FieldsVisitor { wanted, keys }.deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

struct FieldsVisitor<'w, 'f> {
    wanted: &'w [&'w str],
    keys: Keys<'f>,
}

impl<'de> DeserializeSeed<'de> for FieldsVisitor<'_, '_> {
    type Value = Vec<(usize, &'de RawValue)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsVisitor<'_, '_> {
    type Value = Vec<(usize, &'de RawValue)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Vec::new();
        while let Some(key) = map.next_key_seed(KeyIndex {
            wanted: self.wanted,
            keys: &mut self.keys,
        })? {
            match key {
                // Replaced in place, so a key repeated a million times costs one slot.
                Some(i) => {
                    let value = map.next_value::<&'de RawValue>()?;
                    match found.iter_mut().find(|(k, _)| *k == i) {
                        Some(slot) => slot.1 = value,
                        None => found.push((i, value)),
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// A key, matched against the wanted list. Read as bytes: serde_json then accepts lone
/// surrogate escapes in keys, which can never match a wanted key anyway.
struct KeyIndex<'w, 'k, 'f> {
    wanted: &'w [&'w str],
    keys: &'k mut Keys<'f>,
}

impl<'de> DeserializeSeed<'de> for KeyIndex<'_, '_, '_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for KeyIndex<'_, '_, '_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    /// The key as written (it had no escapes).
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        if matches!(self.keys, Keys::Check(_)) && v.iter().any(|b| *b < 0x20) {
            return Err(E::custom("control character in an object key"));
        }
        Ok(self.wanted.iter().position(|w| w.as_bytes() == v))
    }
    /// The key with its escapes decoded.
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        if let Keys::Check(escaped) = self.keys {
            **escaped = true;
        }
        Ok(self.wanted.iter().position(|w| w.as_bytes() == v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.visit_bytes(v.as_bytes())
    }
}

/// The first `cap` items of an array, and how many it had.
#[derive(Debug, Clone)]
pub struct Items<'a> {
    pub items: Vec<&'a RawValue>,
    pub total: usize,
}

impl Items<'_> {
    /// More items than were kept.
    pub fn truncated(&self) -> bool {
        self.total > self.items.len()
    }
}

/// The array `raw`, keeping at most `cap` items; `None` when it is not an array.
pub fn array(raw: &RawValue, cap: usize) -> Option<Items<'_>> {
    if !raw.get().starts_with('[') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_seq(ItemsVisitor { cap }).ok()
}

struct ItemsVisitor {
    cap: usize,
}

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = Items<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        let mut total = 0;
        loop {
            if total < self.cap {
                match seq.next_element::<&'de RawValue>()? {
                    Some(item) => items.push(item),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            total += 1;
        }
        Ok(Items { items, total })
    }
}

/// The entries of the object `raw` (keys decoded, a repeated key keeping its last value), and
/// whether it had more than `cap` (repeats counted); `None` when it is not an object.
pub fn entries(raw: &RawValue, cap: usize) -> Option<(Vec<(String, &RawValue)>, bool)> {
    if !raw.get().starts_with('{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_map(EntriesVisitor { cap }).ok()
}

struct EntriesVisitor {
    cap: usize,
}

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = (Vec<(String, &'de RawValue)>, bool);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Vec<(String, &'de RawValue)> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut total = 0;
        let mut truncated = false;
        loop {
            if total >= self.cap {
                // Past the cap the entries are only counted: no key is decoded or compared.
                if map.next_key::<IgnoredAny>()?.is_none() {
                    break;
                }
                map.next_value::<IgnoredAny>()?;
                truncated = true;
                continue;
            }
            let Some(key) = map.next_key::<KeyText>()? else {
                break;
            };
            total += 1;
            let value = map.next_value()?;
            match index.get(&key.0) {
                Some(&at) => out[at].1 = value,
                None => {
                    index.insert(key.0.clone(), out.len());
                    out.push((key.0, value));
                }
            }
        }
        Ok((out, truncated))
    }
}

/// A key as text; lone surrogates (read as bytes) become U+FFFD.
struct KeyText(String);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<KeyText, E> {
                Ok(KeyText(lossy_wtf8(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Text from serde_json's bytes for a key, where a lone surrogate escape is its 3-byte WTF-8
/// form (ED A0..BF xx): each becomes one U+FFFD, as in string values.
fn lossy_wtf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push(char::REPLACEMENT_CHARACTER);
                let skip = match after {
                    [0xED, 0xA0..=0xBF, 0x80..=0xBF, ..] => 3,
                    _ => e.error_len().unwrap_or(after.len()),
                };
                rest = &after[skip..];
            }
        }
    }
    out
}

/// Follows `path` through objects (keys) and arrays (decimal indexes).
pub fn path<'a>(root: &'a RawValue, path: &[&str]) -> Option<&'a RawValue> {
    path.iter().try_fold(root, |value, segment| {
        if value.get().starts_with('[') {
            let index: usize = segment.parse().ok()?;
            array(value, index.checked_add(1)?)?
                .items
                .get(index)
                .copied()
        } else {
            object(value, std::slice::from_ref(segment))?.get(segment)
        }
    })
}

/// A JSON string's text. Escapes are decoded here: a lone surrogate becomes U+FFFD instead of
/// failing the whole body, as serde_json would.
pub fn string(raw: Option<&RawValue>) -> Option<String> {
    let inner = raw?.get().strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut pending_high: Option<u16> = None;
    let mut rest = inner;
    // Runs without escapes are copied whole: chat text is mostly such runs, and a large body's
    // text must not cost a push per character.
    while let Some(at) = rest.find('\\') {
        if at > 0 {
            flush_high(&mut out, &mut pending_high);
            out.push_str(&rest[..at]);
        }
        // serde_json validated the escapes: an ASCII letter or mark follows every backslash.
        let escape = rest.as_bytes().get(at + 1).copied().filter(u8::is_ascii)?;
        if escape != b'u' {
            flush_high(&mut out, &mut pending_high);
            out.push(match escape {
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                // '"', '\\', '/': serde_json already refused any other escape.
                other => char::from(other),
            });
            rest = &rest[at + 2..];
            continue;
        }
        let unit = u16::from_str_radix(rest.get(at + 2..at + 6)?, 16).ok()?;
        rest = &rest[at + 6..];
        match unit {
            0xD800..=0xDBFF => {
                flush_high(&mut out, &mut pending_high);
                pending_high = Some(unit);
            }
            0xDC00..=0xDFFF => match pending_high.take() {
                Some(high) => {
                    let code =
                        0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                    out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                None => out.push(char::REPLACEMENT_CHARACTER),
            },
            other => {
                flush_high(&mut out, &mut pending_high);
                out.push(char::from_u32(u32::from(other)).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
        }
    }
    if !rest.is_empty() {
        flush_high(&mut out, &mut pending_high);
        out.push_str(rest);
    }
    flush_high(&mut out, &mut pending_high);
    Some(out)
}

fn flush_high(out: &mut String, pending: &mut Option<u16>) {
    if pending.take().is_some() {
        out.push(char::REPLACEMENT_CHARACTER);
    }
}

/// Integers, integral floats within range and numeric strings; anything else (including numbers
/// beyond what a 64-bit integer holds) is `None`.
pub fn int(raw: Option<&RawValue>) -> Option<i64> {
    let text = raw?.get();
    if text.starts_with('"') {
        return string(raw)?.trim().parse().ok();
    }
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18)
            .map(|f| f as i64)
    })
}

/// Booleans, and the drift senders are known for: 0/1 and "true"/"false".
pub fn bool(raw: Option<&RawValue>) -> Option<bool> {
    match raw?.get() {
        "true" | "1" | "\"true\"" => Some(true),
        "false" | "0" | "\"false\"" => Some(false),
        _ => None,
    }
}

/// The text of a JSON value for a string-valued field: strings as they are, anything else as
/// its JSON text.
pub fn text(raw: &RawValue) -> String {
    string(Some(raw)).unwrap_or_else(|| raw.get().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANTED: &[&str] = &["a", "b", "deep"];

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("valid JSON")
    }

    #[test]
    fn keeps_only_wanted_keys_and_the_last_duplicate() {
        let many = format!("{{{}\"a\":3}}", "\"a\":1,".repeat(10_000));
        let f = document(&many, WANTED).expect("object");
        assert_eq!(f.found.len(), 1);
        assert_eq!(int(f.get("a")), Some(3));
        let f = document(r#"{"a":1,"x":{"y":[1,2]},"a":2,"b":"s"}"#, WANTED).expect("object");
        assert_eq!(f.get("a").map(RawValue::get), Some("2"));
        assert_eq!(f.get("b").map(RawValue::get), Some(r#""s""#));
        assert!(f.get("x").is_none());
    }

    #[test]
    fn classifies_what_is_not_an_object() {
        assert_eq!(document("[1,2]", WANTED).err(), Some(Shape::NotObject));
        assert_eq!(document("[1,2", WANTED).err(), Some(Shape::NotJson));
        assert_eq!(document("{\"a\":", WANTED).err(), Some(Shape::NotJson));
        assert_eq!(
            document("{\"a\":\"\u{1}\"}", WANTED).err(),
            Some(Shape::NotJson)
        );
        assert_eq!(document("{} x", WANTED).err(), Some(Shape::NotJson));
    }

    #[test]
    fn skips_a_byte_order_mark() {
        let f = document("\u{feff}{\"a\":1}", WANTED).expect("object");
        assert_eq!(int(f.get("a")), Some(1));
    }

    #[test]
    fn nesting_far_beyond_serde_jsons_limit_is_skipped() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let body = format!(r#"{{"x":{deep},"deep":{deep},"a":7}}"#);
        let f = document(&body, WANTED).expect("object");
        assert_eq!(int(f.get("a")), Some(7));
        let d = f.get("deep").expect("kept raw");
        assert!(path(d, &["0", "0", "0"]).is_some());
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let f = document(r#"{"a":"x\ud83dy","b":"\ude00","\ud800":1}"#, WANTED).expect("object");
        assert_eq!(string(f.get("a")).as_deref(), Some("x\u{fffd}y"));
        assert_eq!(string(f.get("b")).as_deref(), Some("\u{fffd}"));
        let pair = raw(r#""\ud83d\ude00 \u00e9\n\/""#);
        assert_eq!(string(Some(&pair)).as_deref(), Some("\u{1f600} \u{e9}\n/"));
        let high_then_high = raw(r#""\ud83d\ud83d\ude00""#);
        assert_eq!(
            string(Some(&high_then_high)).as_deref(),
            Some("\u{fffd}\u{1f600}")
        );
    }

    proptest::proptest! {
        /// Any text, each character written as itself (escaped as JSON requires) or as one or
        /// two `\\u` escapes of four hex digits, reads back as that text.
        #[test]
        fn strings_read_back_however_they_were_escaped(
            text in "\\PC*",
            spelling in proptest::collection::vec(proptest::bool::ANY, 0..64),
        ) {
            let mut json = String::from("\"");
            for (i, c) in text.chars().enumerate() {
                if spelling.get(i).copied().unwrap_or(false) {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        json.push_str(&format!("\\u{unit:04x}"));
                    }
                } else {
                    let quoted = serde_json::to_string(&c.to_string()).expect("serialises");
                    json.push_str(&quoted[1..quoted.len() - 1]);
                }
            }
            json.push('"');
            let value = raw(&json);
            proptest::prop_assert_eq!(string(Some(&value)), Some(text));
        }
    }

    #[test]
    fn numbers_out_of_range_are_none() {
        let f = document(
            r#"{"a":1e400,"b":-1e400,"deep":123456789012345678901234567890}"#,
            WANTED,
        )
        .expect("object");
        assert_eq!(int(f.get("a")), None);
        assert_eq!(int(f.get("b")), None);
        assert_eq!(int(f.get("deep")), None);
        assert_eq!(int(Some(&raw("1.7e12"))), Some(1_700_000_000_000));
        assert_eq!(int(Some(&raw("\" 42 \""))), Some(42));
        assert_eq!(int(Some(&raw("1.5"))), None);
        assert_eq!(int(Some(&raw("true"))), None);
    }

    #[test]
    fn arrays_are_counted_beyond_the_cap() {
        let a = raw("[{},{},{},{}]");
        let items = array(&a, 2).expect("array");
        assert_eq!((items.items.len(), items.total), (2, 4));
        assert!(items.truncated());
        assert!(array(&raw("{}"), 2).is_none());
        let object = raw(r#"{"k":1,"l":"v","k":2,"m":3}"#);
        let (_, truncated) = entries(&object, 2).expect("object");
        assert!(truncated);
        let (kept, truncated) = entries(&object, 10).expect("object");
        assert!(!truncated);
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0].1.get(), "2");
    }

    #[test]
    fn control_characters_in_keys_are_not_json() {
        // Raw control characters: in a top-level key, beside an escape in the same key, and in
        // keys inside kept and skipped values.
        for text in [
            "{\"category\":\"c\",\"k\u{1}\":1}",
            "{\"category\":\"c\",\"k\\n\u{1}\":1}",
            "{\"a\":{\"k\u{1f}\":1}}",
            "{\"skipped\":{\"k\u{1f}\":1}}",
            "{\"a\":1,\"a\u{0}\":2}",
        ] {
            assert_eq!(
                document(text, WANTED).err(),
                Some(Shape::NotJson),
                "{text:?}"
            );
        }
        // Escaped, they are JSON like any other key.
        let f = document(r#"{"a":1,"k\u0001":2,"\u0061b":3}"#, WANTED).expect("object");
        assert_eq!(int(f.get("a")), Some(1));
        // And what is JSON but not an object stays told apart from what is not JSON.
        assert_eq!(document("[1]", WANTED).err(), Some(Shape::NotObject));
        assert_eq!(document("{} x", WANTED).err(), Some(Shape::NotJson));
        assert_eq!(document("{\"a\":1,}", WANTED).err(), Some(Shape::NotJson));
    }

    #[test]
    fn lone_surrogate_keys_become_one_replacement_character() {
        let object = raw(r#"{"\ud800":"a","x\udfffy":"b"}"#);
        let (kept, _) = entries(&object, 10).expect("object");
        let keys: Vec<&str> = kept.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["\u{fffd}", "x\u{fffd}y"]);
    }

    #[test]
    fn booleans_accept_known_drift() {
        for (text, want) in [
            ("true", Some(true)),
            ("0", Some(false)),
            ("\"false\"", Some(false)),
            ("2", None),
            ("null", None),
        ] {
            assert_eq!(bool(Some(&raw(text))), want, "{text}");
        }
    }
}
