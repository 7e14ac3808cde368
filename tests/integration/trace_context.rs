//! W3C trace context on records: each record carries `traceparent` (and the sender's valid
//! `tracestate`), continuing the sender's trace or starting one, for event records and dead
//! letters alike, with span export off; and with export on, spans at an OTLP receiver whose ids
//! the records carry.

use std::time::Duration;

use rdkafka::message::Message;

use crate::support::{broker, consume, fixture, header, sign, spawn_app};

const SENDER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn parts(m: &rdkafka::message::OwnedMessage) -> (String, String, String) {
    let value = header(m, "traceparent").expect("every record has a traceparent");
    let text = std::str::from_utf8(value).expect("ASCII");
    let p: Vec<&str> = text.split('-').collect();
    assert_eq!((p.len(), p[0], text.len()), (4, "00", 55), "{text}");
    (p[1].to_owned(), p[2].to_owned(), p[3].to_owned())
}

#[tokio::test]
async fn records_continue_the_senders_trace_or_start_one() {
    let broker = broker().await;
    let app = spawn_app(&broker, "trace").await;
    let body = fixture("group_channel__message_send");
    let signature = sign(&body);
    let continued = app
        .post_to(
            "/webhooks/sendbird",
            &body,
            &[
                ("x-sendbird-signature", Some(&signature)),
                ("traceparent", Some(SENDER)),
                ("tracestate", Some("congo=t61rcWkgMzE")),
            ],
        )
        .await;
    assert_eq!(continued.status(), 200);
    let other = fixture("group_channel__join");
    let fresh = app
        .post_to(
            "/webhooks/sendbird",
            &other,
            &[
                ("x-sendbird-signature", Some(&sign(&other))),
                // Uppercase hex is invalid: a new trace is started.
                ("traceparent", Some(&SENDER.to_uppercase())),
            ],
        )
        .await;
    assert_eq!(fresh.status(), 200);
    // Authentic but not JSON: a dead letter, which carries the context too.
    let poison = b"not json".to_vec();
    let dead = app
        .post_to(
            "/webhooks/sendbird",
            &poison,
            &[
                ("x-sendbird-signature", Some(&sign(&poison))),
                ("traceparent", Some(SENDER)),
            ],
        )
        .await;
    assert_eq!(dead.status(), 200);

    let records = consume(
        &[app.topic("group_channel"), app.topic("dlq")],
        3,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(records.len(), 3);
    let by_category = |c: &str| {
        records
            .iter()
            .find(|m| header(m, "hookbridge-category") == Some(c.as_bytes()))
            .unwrap_or_else(|| panic!("{c} record"))
    };
    let (trace, span, flags) = parts(by_category("group_channel:message_send"));
    assert_eq!(
        trace, "4bf92f3577b34da6a3ce929d0e0e4736",
        "the sender's trace"
    );
    // Export is off: nothing of the gateway's hop is recorded, so the sender's context goes on
    // as it came, its span the parent of whatever a consumer records.
    assert_eq!(span, "00f067aa0ba902b7", "the sender's span");
    assert_eq!(flags, "01", "the sender's sampling decision");
    assert_eq!(
        header(by_category("group_channel:message_send"), "tracestate"),
        Some(&b"congo=t61rcWkgMzE"[..])
    );

    let join = by_category("group_channel:join");
    let (trace, _, flags) = parts(join);
    assert_eq!(
        flags, "01",
        "a new trace, sampled at the default ratio of 1"
    );
    assert_ne!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(trace, "0".repeat(32));
    assert_eq!(header(join, "tracestate"), None);

    let dlq = records
        .iter()
        .find(|m| m.topic() == app.topic("dlq"))
        .expect("the dead letter");
    assert_eq!(parts(dlq).0, "4bf92f3577b34da6a3ce929d0e0e4736");
    app.stop().await;
}

/// Span export to an OTLP/HTTP receiver made here: the request span and its children, in the
/// sender's trace, whose ids the record's `traceparent` carries; no body or secret in them.
#[tokio::test]
async fn spans_are_exported_and_the_record_names_the_request_span() {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::extract::State;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;

    let broker = crate::support::broker().await;
    let received: Arc<Mutex<Vec<ExportTraceServiceRequest>>> = Arc::default();
    let router =
        axum::Router::new()
            .route(
                "/v1/traces",
                axum::routing::post(
                    |State(seen): State<Arc<Mutex<Vec<ExportTraceServiceRequest>>>>,
                     body: Bytes| async move {
                        let request =
                            ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                        seen.lock().expect("lock").push(request);
                        axum::http::StatusCode::OK
                    },
                ),
            )
            .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });

    let prefix = crate::support::unique_prefix("otel");
    let mut env = crate::support::base_env(&broker, &prefix).await;
    env.insert(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        format!("http://{collector}"),
    );
    env.insert("OTEL_SERVICE_NAME".into(), "hookbridge-it".into());
    let mut serve = crate::support::Serve::start(env).await;
    let client = reqwest::Client::new();

    let body = fixture("group_channel__message_send");
    let answer = client
        .post(format!("http://{}/webhooks/sendbird", serve.http))
        .header("content-type", "application/json")
        .header("x-sendbird-signature", sign(&body))
        .header("traceparent", SENDER)
        .body(body.clone())
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(answer.status(), 200);

    // SIGTERM: the last batch is exported before the process exits.
    serve.terminate();
    let status = serve
        .exit_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no exit:\n{}", serve.logs()));
    assert!(status.success(), "exit {status}:\n{}", serve.logs());

    let records = consume(
        &[format!("{prefix}group_channel")],
        1,
        Duration::from_secs(30),
    )
    .await;
    let (trace, span, _) = parts(&records[0]);
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");

    let exports = received.lock().expect("lock").clone();
    let resource_names: Vec<String> = exports
        .iter()
        .flat_map(|r| &r.resource_spans)
        .filter_map(|rs| rs.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                Some(s.clone())
            }
            _ => None,
        })
        .collect();
    assert!(resource_names.iter().all(|n| n == "hookbridge-it") && !resource_names.is_empty());
    let spans: Vec<_> = exports
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .filter(|s| hex::encode(&s.trace_id) == trace)
        .collect();
    let named = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no {name} span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let request = named("webhook");
    assert_eq!(
        hex::encode(&request.span_id),
        span,
        "the record's traceparent names the request span"
    );
    assert_eq!(
        hex::encode(&request.parent_span_id),
        "00f067aa0ba902b7",
        "the sender's span is its parent"
    );
    for child in ["verify", "encode", "publish"] {
        assert_eq!(
            named(child).parent_span_id,
            request.span_id,
            "{child} is a child of the request"
        );
    }
    // Attributes are labels and ids: no body text, no signature, no token.
    let text = format!("{spans:?}");
    for leak in ["Caf", &sign(&body), crate::support::TOKEN] {
        assert!(!text.contains(leak), "{leak:?} exported");
    }
}
