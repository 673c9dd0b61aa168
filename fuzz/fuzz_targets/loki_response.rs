//! Loki's answers: `query_range` bodies and tail frames. A body is either
//! refused with a message or parsed into streams that, written back in
//! Loki's form, parse to the same streams; the records made of a page are
//! in strictly increasing positions, each entry at most once; a frame's line
//! times are its oldest and newest entry's.
//!
//! Input: a response body or a tail frame, as Loki sends it.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use tekton_results_logs::backend::loki::history::records_of;
use tekton_results_logs::backend::loki::wire::{QueryResponse, StreamResult, TailFrame};

fuzz_target!(|data: &[u8]| {
    match QueryResponse::parse(data) {
        Ok(response) => check_response(response),
        Err(message) => assert!(!message.is_empty()),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_frame(text);
    }
});

fn check_response(response: QueryResponse) {
    assert_eq!(response.status, "success");
    assert_eq!(response.data.result_type, "streams");
    let body = serde_json::to_vec(&loki_form(&response.data.result)).unwrap();
    let again = QueryResponse::parse(&body).expect("Loki's form of a parsed answer parses");
    assert_eq!(again.data.result.len(), response.data.result.len());
    for (a, b) in again.data.result.iter().zip(&response.data.result) {
        assert_eq!(a.stream, b.stream);
        assert_eq!(a.values, b.values);
    }

    let entries: BTreeSet<(i64, &str)> = response
        .data
        .result
        .iter()
        .flat_map(|s| s.values.iter().map(|e| (e.ts_ns, e.line.as_str())))
        .collect();
    let total: usize = response.data.result.iter().map(|s| s.values.len()).sum();
    let records = records_of(again);
    assert!(records.len() <= total);
    for pair in records.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions do not increase: {:?} then {:?}",
            pair[0].position,
            pair[1].position
        );
        let same_time = pair[0].position.ts_ns == pair[1].position.ts_ns;
        let next_seq = if same_time {
            pair[0].position.seq + 1
        } else {
            0
        };
        assert_eq!(pair[1].position.seq, next_seq);
    }
    for record in &records {
        assert_eq!(record.ts_ns, Some(record.position.ts_ns));
        let line = std::str::from_utf8(&record.message).unwrap();
        assert!(entries.contains(&(record.position.ts_ns, line)));
    }
    if let Some(first) = records.first() {
        assert_eq!(first.position.seq, 0);
    }
}

/// Streams as Loki writes them, with a categorized value's metadata.
fn loki_form(streams: &[StreamResult]) -> Value {
    let result: Vec<Value> = streams
        .iter()
        .map(|s| {
            let values: Vec<Value> = s
                .values
                .iter()
                .map(|e| {
                    let mut value = vec![json!(e.ts_ns.to_string()), json!(e.line)];
                    if !e.metadata.is_empty() {
                        let metadata: Map<String, Value> = e
                            .metadata
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(v)))
                            .collect();
                        value.push(json!({ "structuredMetadata": metadata }));
                    }
                    Value::Array(value)
                })
                .collect();
            json!({ "stream": s.stream, "values": values })
        })
        .collect();
    json!({
        "status": "success",
        "data": { "resultType": "streams", "result": result },
    })
}

fn check_frame(text: &str) {
    let Ok(frame) = serde_json::from_str::<TailFrame>(text) else {
        assert_eq!(TailFrame::line_times(text), None);
        return;
    };
    let times: Vec<i64> = frame
        .streams
        .iter()
        .flat_map(|s| s.values.iter().map(|e| e.ts_ns))
        .collect();
    let expected = times
        .iter()
        .min()
        .zip(times.iter().max())
        .map(|(a, b)| (*a, *b));
    assert_eq!(TailFrame::line_times(text), expected);
}
