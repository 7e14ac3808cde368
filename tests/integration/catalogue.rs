//! docs/events.md is what `hookbridge events --format markdown` prints, byte for byte, so the
//! committed catalogue cannot drift from the routers' tables. Needs no broker.

use std::path::Path;
use std::process::Command;

const REGENERATE: &str = "run `cargo run -q -- events --format markdown > docs/events.md`";

/// Standard output of `hookbridge events --format <format>`; the command must succeed.
fn events(format: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_hookbridge"))
        .args(["events", "--format", format])
        .output()
        .expect("hookbridge runs");
    assert!(
        output.status.success(),
        "hookbridge events --format {format}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn docs_events_md_is_what_the_binary_prints() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.md");
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", path.display()));
    let printed = events("markdown");
    if committed != printed {
        let lines = printed.lines().count().max(committed.lines().count());
        let (line, printed_line, committed_line) = printed
            .lines()
            .chain(std::iter::repeat(""))
            .zip(committed.lines().chain(std::iter::repeat("")))
            .take(lines)
            .enumerate()
            .find(|(_, (p, c))| p != c)
            .map_or(
                (
                    0,
                    "(the lines agree: line endings or the final newline differ)",
                    "",
                ),
                |(i, (p, c))| (i + 1, p, c),
            );
        panic!(
            "docs/events.md differs from `hookbridge events --format markdown` at line {line}:\n  \
             printed:   {printed_line}\n  committed: {committed_line}\n{REGENERATE}"
        );
    }
}

#[test]
fn every_category_in_the_json_catalogue_has_family_topic_and_key() {
    let json: serde_json::Value =
        serde_json::from_str(&events("json")).expect("the JSON catalogue parses");
    let providers = json.as_object().expect("an object keyed by provider");
    let mut categories = 0;
    for (provider, entries) in providers {
        for entry in entries.as_array().expect("a list of categories") {
            let field = |name: &str| {
                entry[name]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| panic!("{provider}: {entry} has no {name}"))
            };
            let category = field("category");
            let family = field("family");
            let topic = field("topic");
            field("key");
            assert!(
                topic.ends_with(family),
                "{provider} {category}: topic {topic} is not its family's {family}"
            );
            assert!(
                entry["typed_fields"].is_array(),
                "{provider} {category}: typed_fields is not a list"
            );
            assert!(
                entry["occurred_at"].is_string(),
                "{provider} {category}: occurred_at is not a string"
            );
            categories += 1;
        }
    }
    let sendbird = providers["sendbird"].as_array().expect("sendbird listed");
    assert!(
        sendbird.len() >= 54,
        "only {} Sendbird categories",
        sendbird.len()
    );
    for legacy in [
        "group_channel:old_kick_out:join",
        "group_channel:old_kick_out:invite",
    ] {
        assert!(
            sendbird.iter().any(|e| e["category"] == legacy),
            "{legacy} missing"
        );
    }
    let stream = providers["stream"].as_array().expect("stream listed");
    for event_type in [
        "message.new",
        "reaction.new",
        "member.added",
        "channel.created",
        "user.banned",
    ] {
        assert!(
            stream.iter().any(|e| e["category"] == event_type),
            "stream {event_type} missing"
        );
    }
    assert_eq!(
        providers["standard"].as_array().map(Vec::len),
        Some(0),
        "standard's types are the sender's own"
    );
    assert!(categories >= sendbird.len() + stream.len());
}

#[test]
fn a_provider_without_a_list_of_types_is_described_in_words() {
    let markdown = events("markdown");
    let standard = markdown
        .split_once("\n## standard\n\n")
        .map(|(_, rest)| rest)
        .expect("a standard section");
    assert!(
        standard.starts_with("Event types are the sender's own") && standard.contains(".events"),
        "{standard}"
    );
}
