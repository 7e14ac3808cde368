//! Every provider's request path on hostile input, through the seam the handler uses:
//! `Source::expect` on arbitrary headers, the verifier on an arbitrary body, then `build`.
//!
//! - Arbitrary headers and body never panic, and are accepted only when an independent
//!   re-implementation of the provider's scheme (HMAC-SHA256 here, hex or base64, with the
//!   Standard Webhooks `id.timestamp.` prefix) says the headers carry a genuine signature.
//! - The same body signed by the provider's own `sign` (the CLI's) always verifies, and `build`
//!   never panics: an event record decodes with apache-avro's reader against the provider's
//!   schema with nothing left over and keeps the signed text as `raw_body`; a dead letter names a
//!   bounded reason.
//!
//! Input layout: 1 control byte (provider, and whether to sign), header lines `name: value`, an
//! empty line, then the body.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use hmac::{Hmac, Mac};
use hookbridge::config::Config;
use hookbridge::providers::{BuildContext, Built, PROVIDERS, Source};
use hookbridge::sink::avro::split_frame;
use hookbridge::verify::VerifiedWebhook;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const NOW_MS: i64 = 1_764_500_000_000;
const SENDBIRD_TOKEN: &str = "fuzz-sendbird-token";
const STREAM_SECRET: &str = "fuzz-stream-secret";
const STANDARD_KEY: &[u8] = b"fuzz-standard-signing-key-24b";

fn standard_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(STANDARD_KEY)
    )
}

/// One running source per provider, from an ordinary configuration.
fn sources() -> &'static Vec<(Arc<dyn Source>, String)> {
    static SOURCES: OnceLock<Vec<(Arc<dyn Source>, String)>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        let toml = format!(
            r#"
kafka_brokers = "127.0.0.1:9092"
schema_registry_url = "http://127.0.0.1:8081"
max_typed_items = 3
[[sources]]
provider = "sendbird"
id = "fuzz-app"
secrets = ["{SENDBIRD_TOKEN}"]
[[sources]]
provider = "stream"
id = "fuzz-stream"
secrets = ["{STREAM_SECRET}"]
[[sources]]
provider = "standard"
id = "fuzz-standard"
secrets = ["{}"]
key_pointer = "/data/id"
"#,
            standard_secret()
        );
        let config =
            Config::from_toml_str(Some(&toml), &BTreeMap::new(), &PROVIDERS).expect("valid");
        let ids: HashMap<_, _> = PROVIDERS
            .event_topics(&config.sources)
            .expect("topics")
            .into_iter()
            .map(|(t, _)| (t, 7))
            .collect();
        let context = BuildContext {
            limits: &config.limits,
            schema_ids: &ids,
        };
        let running = PROVIDERS
            .sources(&config.sources, &context)
            .expect("sources");
        let secrets = [
            SENDBIRD_TOKEN.to_owned(),
            STREAM_SECRET.to_owned(),
            standard_secret(),
        ];
        running.into_iter().zip(secrets).collect()
    })
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    all.next().is_none().then_some(first.as_bytes())
}

/// Whether `headers` carry a genuine signature of `content` for `provider`, by the published
/// schemes, written here without the crate's code.
fn genuine(provider: &str, headers: &HeaderMap, content: &[u8]) -> bool {
    let hex_matches = |name: &str, key: &[u8]| {
        header(headers, name).is_some_and(|v| {
            let v = v.trim_ascii();
            v.len() == 64 && v.eq_ignore_ascii_case(hex(&mac(key, &[content])).as_bytes())
        })
    };
    match provider {
        "sendbird" => {
            let name = if headers.contains_key("x-sendbird-signature") {
                "x-sendbird-signature"
            } else {
                "x-signature"
            };
            hex_matches(name, SENDBIRD_TOKEN.as_bytes())
        }
        "stream" => hex_matches("x-signature", STREAM_SECRET.as_bytes()),
        "standard" => {
            let (Some(id), Some(ts), Some(sigs)) = (
                header(headers, "webhook-id"),
                header(headers, "webhook-timestamp"),
                header(headers, "webhook-signature"),
            ) else {
                return false;
            };
            let Some(ts) = std::str::from_utf8(ts)
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
            else {
                return false;
            };
            if (i128::from(ts) * 1000 - i128::from(NOW_MS)).abs() > 300_000 {
                return false;
            }
            let id = id.trim_ascii();
            let want = mac(
                STANDARD_KEY,
                &[id, b".", ts.to_string().as_bytes(), b".", content],
            );
            sigs.split(|b| *b == b' ').any(|entry| {
                entry.strip_prefix(b"v1,").is_some_and(|b64| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64))
                        .is_ok_and(|sig| sig == want)
                })
            })
        }
        other => panic!("no oracle for {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_headers(text: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in text.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    headers
}

fn check_built(source: &dyn Source, webhook: &VerifiedWebhook) {
    match source.build(webhook) {
        Built::Event { record, family, .. } => {
            assert!(!family.is_empty());
            let provider = PROVIDERS.get(source.provider()).expect("registered");
            let (id, mut datum) = split_frame(&record.value).expect("framed");
            assert_eq!(id, 7);
            let schema = provider.schema().schema().expect("schema parses");
            let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
                .build()
                .expect("reader")
                .read_value(&mut datum)
                .expect("the record decodes against its schema");
            assert!(datum.is_empty(), "bytes left over after the datum");
            let apache_avro::types::Value::Record(fields) = value else {
                panic!("not a record");
            };
            let raw = fields
                .iter()
                .find(|(k, _)| k == "raw_body")
                .map(|(_, v)| v.clone());
            let signed = std::str::from_utf8(webhook.content()).expect("records hold UTF-8");
            assert_eq!(
                raw,
                Some(apache_avro::types::Value::String(signed.to_owned())),
                "raw_body is the signed text"
            );
            assert!(record.headers.iter().any(|(k, v)| *k == "hookbridge-event-id"
                && v == webhook.event_id().as_bytes()));
        }
        Built::DeadLetter { reason, .. } => {
            assert!(!reason.is_empty() && reason.len() <= 32, "{reason}");
            assert!(
                reason
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
        Built::Internal => panic!("a configured source has every schema id"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctrl, rest)) = data.split_first() else {
        return;
    };
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let (source, secret) = &sources()[usize::from(ctrl % 3)];
    let provider = source.provider();

    // Hostile headers and body.
    let headers = parse_headers(head);
    if let Ok(expectation) = source.expect(&headers, NOW_MS) {
        let keys = source.keys().current();
        if let Ok(webhook) =
            VerifiedWebhook::verify(source.id().as_str(), keys, expectation, body, NOW_MS)
        {
            assert!(
                genuine(provider, &headers, webhook.content()),
                "{provider} accepted headers that carry no genuine signature: {headers:?}"
            );
            assert_eq!(&webhook.body()[..], body);
            check_built(source.as_ref(), &webhook);
        }
    }

    // The same body, signed as the provider's sender signs it (Stream signs JSON before it
    // compresses; a body that is already gzip is not what its sender signs).
    let gzip = body.starts_with(&[0x1f, 0x8b]);
    if ctrl & 0x80 != 0 && !(provider == "stream" && gzip) {
        let signed = PROVIDERS
            .get(provider)
            .expect("registered")
            .sign(secret, body, NOW_MS)
            .expect("the configured secret signs");
        let mut headers = HeaderMap::new();
        for (name, value) in signed {
            headers.insert(
                name,
                HeaderValue::from_str(&value).expect("ASCII header value"),
            );
        }
        let expectation = source
            .expect(&headers, NOW_MS)
            .expect("the provider's own headers are well-formed");
        let webhook = VerifiedWebhook::verify(
            source.id().as_str(),
            source.keys().current(),
            expectation,
            body,
            NOW_MS,
        )
        .expect("a body signed by the provider's scheme verifies");
        assert!(genuine(provider, &headers, webhook.content()));
        check_built(source.as_ref(), &webhook);
    }
});
