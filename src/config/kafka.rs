//! The `[kafka_properties]` rules: librdkafka spellings, the properties the delivery guarantee
//! rests on (which configuration may not set) and the bounds of the producer queue.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Secret, read_secret_file};

/// librdkafka properties the gateway's delivery guarantee rests on; configuration may not set them.
/// Names are compared after [`canonical_kafka_property`], so aliases and `topic.` prefixes are
/// caught too.
pub const RESERVED_KAFKA_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "enable.idempotence",
    "acks",
    "partitioner",
    "max.in.flight.requests.per.connection",
    "message.max.bytes",
    "enable.gapless.guarantee",
    "transactional.id",
    // Without successful delivery reports no request would ever be answered 200.
    "delivery.report.only.error",
];

/// librdkafka's queue is part of the memory arithmetic (docs/deploy.md, "Sizing"): it may be
/// lowered, not raised.
pub const MAX_QUEUE_KBYTES: u64 = 65536;

/// Global properties whose names begin with `topic.`; every other `topic.` name is a topic
/// property given at the global level.
const GLOBAL_TOPIC_PREFIXED: &[&str] = &[
    "topic.metadata.refresh.interval.ms",
    "topic.metadata.refresh.fast.interval.ms",
    "topic.metadata.refresh.fast.cnt",
    "topic.metadata.refresh.sparse",
    "topic.metadata.propagation.max.ms",
    "topic.blacklist",
];

/// librdkafka's name for a property: topic-level properties may be given with a `topic.` prefix
/// at the global level, and several properties have aliases. Two spellings of one property would
/// otherwise both be applied, in an order nobody chose, and slip past the reserved list.
pub fn canonical_kafka_property(key: &str) -> String {
    let key = key.trim().to_ascii_lowercase();
    let key = if GLOBAL_TOPIC_PREFIXED.contains(&key.as_str()) {
        key.as_str()
    } else {
        key.strip_prefix("topic.").unwrap_or(&key)
    };
    match key {
        "metadata.broker.list" => "bootstrap.servers",
        "request.required.acks" => "acks",
        "max.in.flight" => "max.in.flight.requests.per.connection",
        "compression.codec" => "compression.type",
        "queue.buffering.max.ms" => "linger.ms",
        "message.timeout.ms" | "delivery.timeout.ms" => "message.timeout.ms",
        "message.send.max.retries" => "retries",
        "sasl.mechanism" => "sasl.mechanisms",
        "sasl.oauthbearer.client.credentials.client.id" => "sasl.oauthbearer.client.id",
        "sasl.oauthbearer.client.credentials.client.secret" => "sasl.oauthbearer.client.secret",
        other => other,
    }
    .to_owned()
}

/// Checks `[kafka_properties]` and `[kafka_property_files]` (file values are read here), keyed by
/// librdkafka's own names; also returns which came from which file.
pub(super) fn check_properties(
    inline: BTreeMap<String, String>,
    files: BTreeMap<String, PathBuf>,
    errors: &mut Vec<String>,
) -> (BTreeMap<String, Secret>, BTreeMap<String, PathBuf>) {
    let mut properties = BTreeMap::new();
    let from_files: BTreeMap<String, PathBuf> = files
        .iter()
        .map(|(k, path)| (canonical_kafka_property(k.trim()), path.clone()))
        .collect();
    let file_props: Vec<(String, String)> = files
        .into_iter()
        .filter_map(|(k, path)| {
            let setting = format!("kafka_property_files.\"{k}\"");
            read_secret_file(&setting, &path, errors).map(|v| (k, v))
        })
        .collect();
    let mut spelled: BTreeMap<String, String> = BTreeMap::new();
    for (given, value) in inline.into_iter().chain(file_props) {
        let given = given.trim().to_owned();
        let key = canonical_kafka_property(&given);
        let named = if key == given {
            format!("kafka_properties.\"{given}\"")
        } else {
            format!("kafka_properties.\"{given}\" (librdkafka's \"{key}\")")
        };
        if RESERVED_KAFKA_PROPERTIES.contains(&key.as_str()) {
            errors.push(format!(
                "{named}: set by hookbridge for its delivery guarantee and may not be overridden"
            ));
        } else if key == "queue.buffering.max.kbytes"
            && value
                .trim()
                .parse::<u64>()
                .is_ok_and(|kb| kb > MAX_QUEUE_KBYTES)
        {
            errors.push(format!(
                "{named}: at most {MAX_QUEUE_KBYTES} (64 MiB), the queue the memory bounds are sized for; lower values are fine"
            ));
        } else if key == "compression.type" && value.trim().eq_ignore_ascii_case("none") {
            errors.push(format!(
                "{named}: compression may not be turned off (records of 2 MiB bodies rely on it)"
            ));
        } else if let Some(first) = spelled.get(&key) {
            errors.push(format!(
                "{named}: given twice (also as \"{first}\", inline or in kafka_property_files); keep one"
            ));
        } else {
            spelled.insert(key.clone(), given);
            properties.insert(key, Secret::new(value));
        }
    }
    (properties, from_files)
}
