//! The hand-written `http` line against serde's, over random events.

use std::net::IpAddr;
use std::sync::Arc;

use adi_core::event::{
    ContainerFields, ContainerInfo, Endpoints, Event, GrpcInfo, Headers, HttpEvent, LossyText,
    ProcessInfo,
};
use adi_core::flow::FlowId;
use proptest::prelude::*;

/// Text that needs no escaping, text with quotes, backslashes, control characters and
/// non-ASCII, and anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 /:.=-]{0,24}",
        Just("\"q\\ \u{0}\u{1f}\u{7f} é ✓ \r\n\t".to_owned()),
        any::<String>(),
    ]
}

/// Valid UTF-8, or any bytes (invalid sequences are replaced in the line).
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        text().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..48),
    ]
}

/// Names that repeat in other cases (grouped into arrays) and names of any text.
fn headers() -> impl Strategy<Value = Headers> {
    let name = prop_oneof![
        prop::sample::select(vec!["Host", "host", "Set-Cookie", "set-cookie", "X-A"])
            .prop_map(str::to_owned),
        text(),
    ];
    prop::collection::vec((name, text()), 0..8).prop_map(Headers)
}

fn process() -> impl Strategy<Value = ProcessInfo> {
    let name = || proptest::option::of(text().prop_map(|s| Arc::<str>::from(s.as_str())));
    (any::<u32>(), text(), text(), name(), name(), name()).prop_map(
        |(pid, comm, cmdline, service, peer_service, peer_process)| ProcessInfo {
            service,
            peer_service,
            peer_process,
            ..ProcessInfo::new(pid, &comm, &cmdline)
        },
    )
}

fn container() -> impl Strategy<Value = Option<Arc<ContainerInfo>>> {
    proptest::option::of((text(), text(), text(), text()).prop_map(
        |(service, image, container_id, container_name)| {
            Arc::new(ContainerInfo {
                service,
                image,
                container_id,
                container_name,
                labels: [("k".to_owned(), "v".to_owned())].into(),
            })
        },
    ))
}

fn grpc() -> impl Strategy<Value = Option<Box<GrpcInfo>>> {
    let o = || proptest::option::of(text());
    proptest::option::of(
        (
            o(),
            o(),
            proptest::option::of(any::<u16>()),
            o(),
            text(),
            prop::collection::vec(any::<u64>(), 0..4),
        )
            .prop_map(|(service, method, status, message, encoding, messages)| {
                Box::new(GrpcInfo {
                    service,
                    method,
                    status,
                    message,
                    encoding,
                    messages,
                })
            }),
    )
}

fn latency() -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(prop_oneof![
        0.0..1e6f64,
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(0.003),
    ])
}

prop_compose! {
    fn event()(
        ts in text(),
        process in process(),
        ends in (prop::sample::select(vec!["send", "recv"]), any::<IpAddr>(), any::<u16>(), any::<IpAddr>(), any::<u16>()),
        containers in (container(), container(), proptest::option::of(prop::sample::select(vec!["container", "process", "external"]))),
        (bytes, tls, truncated, flow) in (any::<u64>(), any::<bool>(), any::<bool>(), any::<u64>()),
        (method, url, status_code) in (proptest::option::of(text()), proptest::option::of(text()), proptest::option::of(any::<u16>())),
        headers in headers(),
        (body, raw) in (bytes(), bytes()),
        latency_ms in latency(),
        (version, stream_id) in (proptest::option::of(Just("2")), proptest::option::of(any::<u64>())),
        grpc in grpc(),
    ) -> HttpEvent {
        HttpEvent {
            timestamp: ts,
            process: process.into(),
            endpoints: Endpoints {
                direction: ends.0,
                source_ip: ends.1,
                source_port: ends.2,
                dest_ip: ends.3,
                dest_port: ends.4,
            },
            containers: ContainerFields {
                source_container: containers.0,
                destination_container: containers.1,
                destination_type: containers.2,
            },
            bytes,
            tls,
            method,
            url,
            status_code,
            headers,
            body: LossyText(body),
            raw_payload: LossyText(raw),
            truncated,
            flow_id: FlowId(flow),
            latency_ms,
            version,
            stream_id,
            grpc,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every field, present or absent, in any text: the same bytes as serde writes.
    #[test]
    fn http_lines_are_the_bytes_serde_writes(e in event()) {
        let mut line = Vec::new();
        super::http::write(&e, &mut line).expect("write");
        let serde = sonic_rs::to_vec(&Event::Http(e)).expect("serde");
        prop_assert_eq!(String::from_utf8_lossy(&line), String::from_utf8_lossy(&serde));
    }
}
