//! Lenient, bounded reading of JSON for typed views. Knows no vendor.
//!
//! A body is never turned into a whole tree. Only the wanted keys are kept: [`tree`] follows a
//! nested spec of them in one pass, and [`document`] and [`object`] read one object shallowly;
//! values are kept as slices of the text ([`RawValue`]), and everything else is skipped by
//! serde_json's iterative skipper, which allocates nothing and has no depth limit. Arrays are
//! counted and only their first `cap` items kept. So the memory a body costs is bounded by what
//! the typed view keeps, whatever the body's shape, and nesting cannot exhaust the stack.
//!
//! Leaves are decoded here rather than by serde, so RFC 8259 JSON that serde_json refuses still
//! yields a view: a lone surrogate escape becomes U+FFFD, a number out of range becomes `None`.

use std::fmt;

use serde::Deserialize;
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
                if map.next_key_seed(SkipKey(None))?.is_none() {
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

/// What a [`tree`] read keeps of the value under a wanted key.
#[derive(Debug, Clone, Copy)]
pub enum Want {
    /// The value's JSON text, whatever it is.
    Raw,
    /// An object, read further by its own wanted keys.
    Object(&'static Spec),
    /// An array, its items each read as the inner want.
    Array(&'static Want),
    /// An object's entries, keys decoded and values raw (metadata maps).
    Entries,
    /// An object read as `Object`, or an array of them.
    OneOrMany(&'static Spec),
}

/// The wanted keys of an object, and how each value is read.
pub type Spec = [(&'static str, Want)];

/// What a [`tree`] read kept of one value.
#[derive(Debug, Clone)]
pub enum Node<'a> {
    Raw(&'a RawValue),
    Object(Object<'a>),
    /// An array's items, at most the cap.
    Array(Vec<Node<'a>>),
    /// An object's entries in order of first appearance, a repeated key keeping its last value.
    Entries(Vec<(String, &'a RawValue)>),
    /// An array or entries longer than the cap, or beyond the document's item budget: left out.
    Truncated,
    /// A value of another kind than wanted.
    Other,
}

impl<'a> Node<'a> {
    pub fn raw(&self) -> Option<&'a RawValue> {
        match self {
            Node::Raw(raw) => Some(raw),
            _ => None,
        }
    }

    pub fn object(&self) -> Option<&Object<'a>> {
        match self {
            Node::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Follows `path` (keys, decimal indexes) to a raw value; inside a raw value, as [`path`].
    pub fn path(&self, path: &[&str]) -> Option<&'a RawValue> {
        let Some((first, rest)) = path.split_first() else {
            return self.raw();
        };
        match self {
            Node::Raw(raw) => self::path(raw, path),
            Node::Object(o) => o.get(first)?.path(rest),
            Node::Array(items) => items.get(first.parse::<usize>().ok()?)?.path(rest),
            _ => None,
        }
    }
}

/// The wanted keys of one object, as a [`tree`] read them. A key given twice keeps its last
/// value.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    found: Vec<(usize, Node<'a>)>,
    spec: &'static Spec,
}

impl<'a> Object<'a> {
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        // Among the keys found (a few) rather than the keys wanted (dozens).
        self.found
            .iter()
            .find(|(i, _)| same_key(self.spec[*i].0, key.as_bytes()))
            .map(|(_, n)| n)
    }

    /// The raw value of `key`, when it was wanted raw.
    pub fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.get(key)?.raw()
    }
}

/// Reads a whole document that must be an object in one pass, following `spec` into nested
/// objects and arrays: every byte is scanned once, and only what `spec` names is kept. Arrays
/// and entries keep at most `cap` items each (more: [`Node::Truncated`]), and all of them
/// together at most `budget` items, counted in document order, so a document of any shape
/// costs memory in proportion to what it keeps. Leaves stay raw, to be read by [`string`],
/// [`int`], [`bool`] and [`text`] as leniently as everywhere else.
///
/// A value under a nested key is read by kind as it comes; the few texts serde_json refuses to
/// read that way (a lone surrogate or a number beyond f64 where an object, an array or entries
/// were wanted) are read again with each such value first taken raw, which never fails on JSON.
pub fn tree<'a>(
    text: &'a str,
    spec: &'static Spec,
    cap: usize,
    budget: usize,
) -> Result<Object<'a>, Shape> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let read = |raw_first: bool| {
        let mut ctx = Ctx {
            cap,
            budget,
            raw_first,
            escaped_key: false,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let object = de.deserialize_map(ObjectVisitor {
            spec,
            ctx: &mut ctx,
        })?;
        de.end()?;
        Ok::<_, serde_json::Error>((object, ctx.escaped_key))
    };
    // As in `document`: an escaped key is checked by a validating pass of its own.
    let valid = |text| serde_json::from_str::<IgnoredAny>(text).is_ok();
    match read(false).or_else(|_| read(true)) {
        Ok((object, escaped_key)) if !escaped_key || valid(text) => Ok(object),
        Ok(_) => Err(Shape::NotJson),
        Err(_) if valid(text) => Err(Shape::NotObject),
        Err(_) => Err(Shape::NotJson),
    }
}

/// One [`tree`] read's state: the caps, and what is left of the item budget.
struct Ctx {
    cap: usize,
    budget: usize,
    /// Take each nested value raw before reading it (the second try).
    raw_first: bool,
    escaped_key: bool,
}

/// Whether `wanted` is `key`. Every key of a body is compared with every wanted key of its
/// object, so the length and the end bytes are compared before the whole.
#[inline]
fn same_key(wanted: &str, key: &[u8]) -> bool {
    let wanted = wanted.as_bytes();
    wanted.len() == key.len()
        && wanted.first() == key.first()
        && wanted.last() == key.last()
        && wanted == key
}

fn position(spec: &Spec, key: &[u8]) -> Option<usize> {
    spec.iter().position(|(k, _)| same_key(k, key))
}

/// A key's index in `spec`, control characters refused (serde_json does not check keys read as
/// bytes) and escapes noted.
struct SpecKey<'s> {
    spec: &'static Spec,
    escaped: &'s mut bool,
}

impl<'de> DeserializeSeed<'de> for SpecKey<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for SpecKey<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        if v.iter().any(|b| *b < 0x20) {
            return Err(E::custom("control character in an object key"));
        }
        Ok(position(self.spec, v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        *self.escaped = true;
        Ok(position(self.spec, v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.visit_bytes(v.as_bytes())
    }
}

struct ObjectVisitor<'c> {
    spec: &'static Spec,
    ctx: &'c mut Ctx,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = Object<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found: Vec<(usize, Node<'de>)> = Vec::new();
        while let Some(key) = map.next_key_seed(SpecKey {
            spec: self.spec,
            escaped: &mut self.ctx.escaped_key,
        })? {
            let Some(i) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            // Replaced in place, so a key repeated a million times costs one slot; the items
            // the earlier value held go back to the budget before the new one is read, so only
            // the last value counts, as when each value is read on its own.
            let slot = match found.iter().position(|(k, _)| *k == i) {
                Some(at) => {
                    let earlier = std::mem::replace(&mut found[at].1, Node::Other);
                    self.ctx.budget += items(&earlier);
                    at
                }
                None => {
                    found.push((i, Node::Other));
                    found.len() - 1
                }
            };
            found[slot].1 = map.next_value_seed(ValueSeed {
                want: self.spec[i].1,
                ctx: self.ctx,
            })?;
        }
        Ok(Object {
            found,
            spec: self.spec,
        })
    }
}

/// Items a node took from the budget, all the way down.
fn items(node: &Node<'_>) -> usize {
    match node {
        Node::Object(o) => o.found.iter().map(|(_, n)| items(n)).sum(),
        Node::Array(v) => v.len() + v.iter().map(items).sum::<usize>(),
        Node::Entries(v) => v.len(),
        _ => 0,
    }
}

struct ValueSeed<'c> {
    want: Want,
    ctx: &'c mut Ctx,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Node<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if matches!(self.want, Want::Raw) {
            return <&'de RawValue>::deserialize(d).map(Node::Raw);
        }
        if !self.ctx.raw_first {
            return d.deserialize_any(self);
        }
        let raw = <&'de RawValue>::deserialize(d)?;
        if !raw.get().starts_with(['{', '[']) {
            return Ok(Node::Other);
        }
        // The text is JSON (it was just taken raw): what serde_json cannot read by kind is not
        // the kind wanted, as for `object`, `array` and `entries`.
        let budget = self.ctx.budget;
        let ctx = self.ctx;
        let mut inner = serde_json::Deserializer::from_str(raw.get());
        Ok(inner
            .deserialize_any(ValueSeed {
                want: self.want,
                ctx: &mut *ctx,
            })
            .unwrap_or_else(|_| {
                ctx.budget = budget;
                Node::Other
            }))
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Node<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match self.want {
            Want::Object(spec) | Want::OneOrMany(spec) => ObjectVisitor {
                spec,
                ctx: self.ctx,
            }
            .visit_map(map)
            .map(Node::Object),
            Want::Entries => read_entries(map, self.ctx),
            Want::Raw | Want::Array(_) => {
                while map
                    .next_key_seed(SkipKey(Some(&mut self.ctx.escaped_key)))?
                    .is_some()
                {
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(Node::Other)
            }
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let item = match self.want {
            Want::Array(item) => *item,
            Want::OneOrMany(spec) => Want::Object(spec),
            Want::Raw | Want::Object(_) | Want::Entries => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(Node::Other);
            }
        };
        let ctx = self.ctx;
        let mut kept = Vec::new();
        let mut left_out = false;
        loop {
            if left_out || kept.len() >= ctx.cap || ctx.budget == 0 {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                left_out = true;
                continue;
            }
            ctx.budget -= 1;
            match seq.next_element_seed(ValueSeed {
                want: item,
                ctx: &mut *ctx,
            })? {
                Some(node) => kept.push(node),
                None => {
                    ctx.budget += 1;
                    break;
                }
            }
        }
        if left_out {
            ctx.budget += kept.len() + kept.iter().map(items).sum::<usize>();
            return Ok(Node::Truncated);
        }
        Ok(Node::Array(kept))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Node::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Node::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Node::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Node::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Node::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Node::Other)
    }
}

/// An object's entries within the cap (keys counted with repeats, as [`entries`] does) and
/// the budget, else [`Node::Truncated`].
fn read_entries<'de, A: MapAccess<'de>>(mut map: A, ctx: &mut Ctx) -> Result<Node<'de>, A::Error> {
    let mut out: Vec<(String, &'de RawValue)> = Vec::new();
    // Beyond a few entries, repeated keys are found through an index rather than a scan.
    let mut index: Option<std::collections::HashMap<String, usize>> = None;
    let mut left_out = false;
    // Keys read, repeats counted: the cap bounds the keys decoded as well as those kept.
    let mut read = 0;
    loop {
        if left_out || read >= ctx.cap {
            // Past the cap the entries are only skipped: no key is decoded or compared.
            if map
                .next_key_seed(SkipKey(Some(&mut ctx.escaped_key)))?
                .is_none()
            {
                break;
            }
            map.next_value::<IgnoredAny>()?;
            left_out = true;
            continue;
        }
        let Some(key) = map.next_key_seed(CheckedKeyText(&mut ctx.escaped_key))? else {
            break;
        };
        read += 1;
        let value = map.next_value::<&'de RawValue>()?;
        let at = match &index {
            Some(index) => index.get(&key).copied(),
            None => out.iter().position(|(k, _)| *k == key),
        };
        match at {
            Some(at) => out[at].1 = value,
            // A new entry beyond the budget (a repeated one costs nothing).
            None if ctx.budget == 0 => left_out = true,
            None => {
                ctx.budget -= 1;
                if let Some(index) = &mut index {
                    index.insert(key.clone(), out.len());
                } else if out.len() >= 16 {
                    let mut built: std::collections::HashMap<String, usize> = out
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect();
                    built.insert(key.clone(), out.len());
                    index = Some(built);
                }
                out.push((key, value));
            }
        }
    }
    if left_out {
        ctx.budget += out.len();
        return Ok(Node::Truncated);
    }
    Ok(Node::Entries(out))
}

/// A key skipped unread, as bytes (serde_json refuses a lone surrogate in a key read any other
/// way). With a flag, as in [`SpecKey`]: control characters refused and escapes noted.
struct SkipKey<'e>(Option<&'e mut bool>);

impl<'de> DeserializeSeed<'de> for SkipKey<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for SkipKey<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<(), E> {
        if self.0.is_some() && v.iter().any(|b| *b < 0x20) {
            return Err(E::custom("control character in an object key"));
        }
        Ok(())
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        if let Some(escaped) = self.0 {
            *escaped = true;
        }
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.visit_bytes(v.as_bytes())
    }
}

/// A key as text (lone surrogates as U+FFFD), control characters refused, escapes noted.
struct CheckedKeyText<'e>(&'e mut bool);

impl<'de> DeserializeSeed<'de> for CheckedKeyText<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for CheckedKeyText<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<String, E> {
        if v.iter().any(|b| *b < 0x20) {
            return Err(E::custom("control character in an object key"));
        }
        Ok(lossy_wtf8(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<String, E> {
        *self.0 = true;
        Ok(lossy_wtf8(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        *self.0 = true;
        Ok(v.to_owned())
    }
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

/// Whether `raw` is a string whose text, as written between its quotes, is longer than `max`
/// bytes. Escapes count as written, which is never shorter than what they decode to, so a
/// string found too long need not be decoded at all.
pub fn string_longer_than(raw: &RawValue, max: usize) -> bool {
    raw.get().starts_with('"') && raw.get().len() > max.saturating_add(2)
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

    mod tree {
        use super::super::*;
        use Want::*;
        use proptest::prelude::*;

        const INNER: &Spec = &[("a", Raw), ("m", Entries), ("l", Array(&Raw))];
        const SPEC: &Spec = &[
            ("a", Raw),
            ("o", Object(INNER)),
            ("l", Array(&Object(INNER))),
            ("m", Entries),
            ("x", OneOrMany(INNER)),
        ];

        /// The same reading done the multi-pass way: each value taken raw, then read again by
        /// the functions above. The one-pass read must keep exactly this.
        fn reference<'a>(raw: &'a RawValue, want: Want, cap: usize) -> Node<'a> {
            let objects = |spec: &'static Spec| {
                let keys: Vec<&str> = spec.iter().map(|(k, _)| *k).collect();
                object(raw, &keys).map(|f| {
                    Node::Object(super::super::Object {
                        found: f
                            .found
                            .iter()
                            .map(|(i, v)| (*i, reference(v, spec[*i].1, cap)))
                            .collect(),
                        spec,
                    })
                })
            };
            let list = |item: Want| {
                array(raw, cap).map(|items| {
                    if items.truncated() {
                        return Node::Truncated;
                    }
                    Node::Array(
                        items
                            .items
                            .iter()
                            .map(|v| reference(v, item, cap))
                            .collect(),
                    )
                })
            };
            match want {
                Raw => Some(Node::Raw(raw)),
                Object(spec) => objects(spec),
                Array(item) => list(*item),
                Entries => entries(raw, cap).map(|(kept, truncated)| {
                    if truncated {
                        Node::Truncated
                    } else {
                        Node::Entries(kept)
                    }
                }),
                OneOrMany(spec) => objects(spec).or_else(|| list(Object(spec))),
            }
            .unwrap_or(Node::Other)
        }

        fn reference_document(text: &str, cap: usize) -> Result<String, Shape> {
            let keys: Vec<&str> = SPEC.iter().map(|(k, _)| *k).collect();
            let f = document(text, &keys)?;
            let top = super::super::Object {
                found: f
                    .found
                    .iter()
                    .map(|(i, v)| (*i, reference(v, SPEC[*i].1, cap)))
                    .collect(),
                spec: SPEC,
            };
            Ok(format!("{top:?}"))
        }

        /// JSON text built to reach the corners: wanted and unwanted keys, repeats, escapes
        /// (lone surrogates too), numbers beyond f64, and every kind of value under every key.
        fn json_text() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("0".to_owned()),
                Just("-12.5e3".to_owned()),
                Just("1e400".to_owned()),
                Just(r#""\ud800""#.to_owned()),
                Just(r#""caf\u00e9 \"x\"""#.to_owned()),
                "[a-z ]{0,8}".prop_map(|s| format!("\"{s}\"")),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                let key = prop_oneof![
                    Just("a"),
                    Just("o"),
                    Just("l"),
                    Just("m"),
                    Just("x"),
                    Just("\\u0061"),
                    Just("zz"),
                    Just("\\ud800"),
                ];
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6)
                        .prop_map(|items| format!("[{}]", items.join(","))),
                    proptest::collection::vec((key, inner), 0..6).prop_map(|entries| {
                        let body: Vec<String> = entries
                            .iter()
                            .map(|(k, v)| format!("\"{k}\":{v}"))
                            .collect();
                        format!("{{{}}}", body.join(","))
                    }),
                ]
            })
        }

        proptest! {
            #[test]
            fn one_pass_keeps_what_the_multi_pass_reading_keeps(
                text in json_text(),
                cap in 0usize..5,
            ) {
                let unbounded = tree(&text, SPEC, cap, usize::MAX);
                let one_pass = unbounded.as_ref().map(|o| format!("{o:?}")).map_err(|e| *e);
                prop_assert_eq!(&one_pass, &reference_document(&text, cap), "{}", text);
                // A budget that holds what was kept changes nothing.
                if let Ok(top) = &unbounded {
                    let kept: usize = top.found.iter().map(|(_, n)| items(n)).sum();
                    let bounded = tree(&text, SPEC, cap, kept).map(|o| format!("{o:?}"));
                    prop_assert_eq!(bounded, one_pass, "{}", text);
                }
            }
        }

        #[test]
        fn nested_values_are_read_in_the_same_pass() {
            let text = r#"{"o":{"a":1,"m":{"k":"v","k":"w"},"skip":[1]},"l":[{"a":2},3],"a":"s"}"#;
            let top = tree(text, SPEC, 10, 100).expect("object");
            let o = top.get("o").and_then(Node::object).expect("object");
            assert_eq!(o.raw("a").map(RawValue::get), Some("1"));
            let Some(Node::Entries(m)) = o.get("m") else {
                panic!("entries: {o:?}");
            };
            assert_eq!((m.len(), m[0].1.get()), (1, r#""w""#));
            let Some(Node::Array(l)) = top.get("l") else {
                panic!("array");
            };
            assert!(matches!(l[1], Node::Other));
            assert_eq!(
                top.get("l")
                    .and_then(|n| n.path(&["0", "a"]))
                    .map(RawValue::get),
                Some("2")
            );
        }

        #[test]
        fn values_serde_json_cannot_read_by_kind_are_read_raw_first() {
            // A lone surrogate and a number beyond f64 where an object was wanted.
            let text = r#"{"o":"\ud800","x":1e400,"a":7}"#;
            let top = tree(text, SPEC, 10, 100).expect("object");
            assert!(matches!(top.get("o"), Some(Node::Other)));
            assert!(matches!(top.get("x"), Some(Node::Other)));
            assert_eq!(int(top.raw("a")), Some(7));
        }

        #[test]
        fn the_budget_is_shared_in_document_order_and_refunded_when_a_list_is_left_out() {
            // Budget 5: "l" keeps 2 items (2 + their entries 2 = 4), then "m" needs 2: left out.
            let text = r#"{"l":[{"m":{"p":1}},{"m":{"q":1}}],"m":{"r":1,"s":2}}"#;
            let top = tree(text, SPEC, 10, 5).expect("object");
            assert!(matches!(top.get("l"), Some(Node::Array(_))));
            assert!(matches!(top.get("m"), Some(Node::Truncated)));
            // Budget 1: "l" takes its first item, is left out at its second and gives the first
            // back, so "m" still fits.
            let text = r#"{"l":[{"a":1},{"a":2}],"m":{"r":1}}"#;
            let top = tree(text, SPEC, 10, 1).expect("object");
            assert!(matches!(top.get("l"), Some(Node::Truncated)));
            assert!(matches!(top.get("m"), Some(Node::Entries(_))));
            // Cap 1 with budget 1: "l" is left out by its cap and gives its item back too.
            let top = tree(text, SPEC, 1, 1).expect("object");
            assert!(matches!(top.get("l"), Some(Node::Truncated)));
            assert!(matches!(top.get("m"), Some(Node::Entries(_))));
            // A repeated key gives back what its earlier value took before the new one is read.
            let text = r#"{"m":{"a":1,"b":2},"m":{"c":3},"x":[{"a":1}]}"#;
            let top = tree(text, SPEC, 10, 3).expect("object");
            assert!(matches!(top.get("x"), Some(Node::Array(_))));
            let text = r#"{"m":{"a":1,"b":2},"m":{"c":3,"d":4}}"#;
            let top = tree(text, SPEC, 10, 2).expect("object");
            assert!(matches!(top.get("m"), Some(Node::Entries(e)) if e.len() == 2));
            // A repeated entry costs nothing: the budget does not cut it.
            let top = tree(r#"{"m":{"a":1,"a":2}}"#, SPEC, 10, 1).expect("object");
            assert!(matches!(top.get("m"), Some(Node::Entries(e)) if e[0].1.get() == "2"));
        }

        #[test]
        fn nesting_far_beyond_serde_jsons_limit_is_skipped_under_any_key() {
            let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
            let object = format!(r#"{{"a":{deep},"m":{deep},"l":{deep},"o":{{"a":{deep}}}}}"#);
            let body =
                format!(r#"{{"l":{deep},"x":{deep},"m":{{"k":{deep}}},"o":{object},"zz":{deep}}}"#);
            let top = tree(&body, SPEC, 10, 100).expect("object");
            assert!(matches!(top.get("l"), Some(Node::Array(_))));
            assert!(matches!(top.get("m"), Some(Node::Entries(_))));
            assert!(
                top.get("o")
                    .and_then(|o| o.path(&["a", "0", "0"]))
                    .is_some()
            );
        }

        #[test]
        fn shapes_and_control_characters_are_told_apart() {
            assert_eq!(tree("[1]", SPEC, 1, 1).err(), Some(Shape::NotObject));
            assert_eq!(tree("{\"a\":", SPEC, 1, 1).err(), Some(Shape::NotJson));
            assert_eq!(tree("{} x", SPEC, 1, 1).err(), Some(Shape::NotJson));
            for text in [
                "{\"o\":{\"k\u{1}\":1}}",
                "{\"m\":{\"k\u{1}\":1}}",
                "{\"l\":[{\"k\u{1f}\":1}]}",
                "{\"zz\":{\"k\u{1f}\":1}}",
            ] {
                assert_eq!(
                    tree(text, SPEC, 9, 99).err(),
                    Some(Shape::NotJson),
                    "{text:?}"
                );
            }
            let top = tree("\u{feff}{\"o\":{\"\\u0061\":1}}", SPEC, 9, 99).expect("object");
            assert_eq!(
                top.get("o").and_then(|o| o.path(&["a"])).map(RawValue::get),
                Some("1")
            );
        }
    }
}
