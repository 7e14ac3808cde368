//! A source's own settings (`key_pointer`, `event_type_pointer`, `tolerance`) and the JSON
//! pointers (RFC 6901) they name.

use std::fmt;
use std::time::Duration;

use figment::value::{Dict, Value};
use serde_json::value::RawValue;

use crate::config::parse_duration;
use crate::json;

pub const KEY_POINTER: &str = "key_pointer";
pub const EVENT_TYPE_POINTER: &str = "event_type_pointer";
pub const TOLERANCE: &str = "tolerance";
/// Every option a `standard` source takes.
pub const KNOWN: &[&str] = &[KEY_POINTER, EVENT_TYPE_POINTER, TOLERANCE];

/// Where the spec's suggested payload shape keeps the event type.
pub const DEFAULT_EVENT_TYPE_POINTER: &str = "/type";
/// What every reference library allows, either way (the spec names no number).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A source's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where the record key is; no key when unset.
    pub key: Option<Pointer>,
    pub event_type: Pointer,
    /// How far `webhook-timestamp` may be from now, either way.
    pub tolerance: Duration,
}

impl Options {
    /// Reads the options, reporting each problem under `setting`; `None` when any was wrong.
    pub fn read(setting: &str, options: &Dict, errors: &mut Vec<String>) -> Option<Options> {
        let before = errors.len();
        let text = |name: &str, errors: &mut Vec<String>| -> Option<String> {
            let value = options.get(name)?;
            match value {
                Value::String(_, s) => Some(s.clone()),
                _ => {
                    errors.push(format!("{setting}.{name}: must be a string"));
                    None
                }
            }
        };
        let pointer = |name: &str, errors: &mut Vec<String>| -> Option<Pointer> {
            let value = text(name, errors)?;
            Pointer::parse(&value)
                .map_err(|why| errors.push(format!("{setting}.{name}: {why}")))
                .ok()
        };
        let key = pointer(KEY_POINTER, errors);
        let event_type = pointer(EVENT_TYPE_POINTER, errors).unwrap_or_else(|| {
            Pointer::parse(DEFAULT_EVENT_TYPE_POINTER).expect("the default pointer is valid")
        });
        let tolerance = match text(TOLERANCE, errors) {
            None => DEFAULT_TOLERANCE,
            Some(value) => {
                let name = format!("{setting}.{TOLERANCE}");
                match parse_duration(&name, &value, errors) {
                    Some(d) if d.is_zero() => {
                        errors.push(format!("{name}: must be more than 0 (got {value:?})"));
                        DEFAULT_TOLERANCE
                    }
                    Some(d) => d,
                    None => DEFAULT_TOLERANCE,
                }
            }
        };
        (errors.len() == before).then_some(Options {
            key,
            event_type,
            tolerance,
        })
    }
}

/// A JSON pointer with at least one reference token: `/data/channel_id`, `/items/0/id`,
/// `/a~1b` (the key `a/b`).
#[derive(Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    /// Unescaped; never empty.
    tokens: Vec<String>,
}

impl Pointer {
    pub fn parse(text: &str) -> Result<Pointer, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON pointer to a member; write e.g. \"/data/channel_id\""
            ));
        };
        let tokens = rest
            .split('/')
            .map(unescape)
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| {
                format!("{text:?}: '~' must be followed by 0 ('~') or 1 ('/') (RFC 6901)")
            })?;
        Ok(Pointer {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The first reference token: the top-level member the pointer starts at.
    pub fn first(&self) -> &str {
        &self.tokens[0]
    }

    /// The value the pointer names in `root`, if any.
    pub fn resolve<'a>(&self, root: &'a RawValue) -> Option<&'a RawValue> {
        self.resolve_from(step(root, self.first())?)
    }

    /// The value the pointer names, given the value of its first token (found in a pass over
    /// the top-level object shared with other lookups).
    pub fn resolve_from<'a>(&self, first: &'a RawValue) -> Option<&'a RawValue> {
        self.tokens[1..]
            .iter()
            .try_fold(first, |value, token| step(value, token))
    }
}

impl fmt::Debug for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pointer({:?})", self.text)
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next()? {
                '0' => out.push('~'),
                '1' => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// One token down: a member of an object, or an item of an array by its index (decimal, no
/// leading zero). Object keys are compared as the body writes them: a key spelled with escapes
/// in the body is not found.
fn step<'a>(value: &'a RawValue, token: &str) -> Option<&'a RawValue> {
    match value.get().as_bytes().first()? {
        b'{' => json::object(value, std::slice::from_ref(&token))?.get(token),
        b'[' => {
            let index = array_index(token)?;
            json::array(value, index.checked_add(1)?)?
                .items
                .get(index)
                .copied()
        }
        _ => None,
    }
}

fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: &[(&str, Value)]) -> Dict {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn read(pairs: &[(&str, Value)]) -> Result<Options, Vec<String>> {
        let mut errors = Vec::new();
        Options::read("sources[0]", &dict(pairs), &mut errors).ok_or(errors)
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("valid JSON")
    }

    fn at<'a>(pointer: &str, root: &'a RawValue) -> Option<&'a str> {
        Pointer::parse(pointer)
            .expect("valid pointer")
            .resolve(root)
            .map(RawValue::get)
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let options = read(&[]).expect("valid");
        assert_eq!(options.key, None);
        assert_eq!(options.event_type.to_string(), "/type");
        assert_eq!(options.tolerance, Duration::from_secs(300));
    }

    #[test]
    fn reads_every_option() {
        let options = read(&[
            (KEY_POINTER, "/data/channel_id".into()),
            (EVENT_TYPE_POINTER, "/event".into()),
            (TOLERANCE, "90s".into()),
        ])
        .expect("valid");
        assert_eq!(
            options.key.map(|p| p.to_string()).as_deref(),
            Some("/data/channel_id")
        );
        assert_eq!(options.event_type.to_string(), "/event");
        assert_eq!(options.tolerance, Duration::from_secs(90));
    }

    #[test]
    fn reports_every_bad_option_by_name() {
        let errors = read(&[
            (KEY_POINTER, "data.channel_id".into()),
            (EVENT_TYPE_POINTER, "/a~2".into()),
            (TOLERANCE, "0s".into()),
        ])
        .expect_err("invalid");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with("sources[0].key_pointer: "),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("sources[0].event_type_pointer: "));
        assert!(errors[2].starts_with("sources[0].tolerance: must be more than 0"));
        for (tolerance, expected) in [
            ("2h", "sources[0].tolerance: must be at most 1h"),
            ("soon", "sources[0].tolerance: "),
        ] {
            let errors = read(&[(TOLERANCE, tolerance.into())]).expect_err("invalid");
            assert!(errors[0].starts_with(expected), "{errors:?}");
        }
        let errors =
            read(&[(TOLERANCE, 300.into()), (KEY_POINTER, true.into())]).expect_err("invalid");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().all(|e| e.ends_with("must be a string")));
        assert!(read(&[(TOLERANCE, "1h".into())]).is_ok());
        assert!(read(&[(KEY_POINTER, "".into())]).is_err());
    }

    #[test]
    fn pointers_follow_objects_and_arrays_as_rfc_6901_says() {
        // RFC 6901 §5's example document.
        let doc = raw(
            r#"{"foo":["bar","baz"],"":0,"a/b":1,"c%d":2,"e^f":3,"g|h":4,"i\\j":5,"k\"l":6," ":7,"m~n":8}"#,
        );
        assert_eq!(at("/foo", &doc), Some(r#"["bar","baz"]"#));
        assert_eq!(at("/foo/0", &doc), Some(r#""bar""#));
        assert_eq!(at("/foo/1", &doc), Some(r#""baz""#));
        assert_eq!(at("/", &doc), Some("0"));
        assert_eq!(at("/a~1b", &doc), Some("1"));
        assert_eq!(at("/c%d", &doc), Some("2"));
        assert_eq!(at("/e^f", &doc), Some("3"));
        assert_eq!(at("/g|h", &doc), Some("4"));
        assert_eq!(at("/ ", &doc), Some("7"));
        assert_eq!(at("/m~0n", &doc), Some("8"));
        // Not there, or not a container.
        for missing in [
            "/foo/2", "/foo/01", "/foo/-", "/foo/+1", "/nope", "/foo/0/x", "/a~1b/c",
        ] {
            assert_eq!(at(missing, &doc), None, "{missing}");
        }
        // An array at the top.
        assert_eq!(at("/1/id", &raw(r#"[{"id":1},{"id":2}]"#)), Some("2"));
    }

    #[test]
    fn pointers_must_start_with_a_slash_and_escape_tildes() {
        for bad in ["", "data", "#/data", "/a~", "/a~x"] {
            assert!(Pointer::parse(bad).is_err(), "{bad:?}");
        }
        let p = Pointer::parse("/data/channel_id").expect("valid");
        assert_eq!(p.first(), "data");
        assert_eq!(format!("{p:?}"), r#"Pointer("/data/channel_id")"#);
    }
}
