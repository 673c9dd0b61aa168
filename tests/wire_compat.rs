//! The generated messages against bytes upstream put on the wire (from the
//! captures of the upstream Results API server: cases 01, 05 and 11).

use bytes::Bytes;
use prost::Message;
use tekton_results_logs::proto::google::api::HttpBody;
use tekton_results_logs::proto::tekton::results::{v1alpha2, v1alpha3};

use crate::support::NAME;

#[test]
fn a_full_http_body_chunk_has_upstreams_bytes() {
    // Capture 01: a full message is 32,784 bytes and starts
    // 0a 0a "text/plain" 12 80 80 02 (content_type, then data of 32,768 bytes).
    let body = HttpBody {
        content_type: "text/plain".into(),
        data: Bytes::from(vec![b'x'; 32_768]),
        extensions: vec![],
    };
    let wire = body.encode_to_vec();
    assert_eq!(wire.len(), 32_784);
    assert_eq!(
        &wire[..16],
        &[
            0x0a, 0x0a, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i', b'n', 0x12, 0x80,
            0x80, 0x02
        ]
    );
    // The last message of capture 01: 9,559 bytes of data, 9,574 on the wire.
    let last = HttpBody {
        content_type: "text/plain".into(),
        data: Bytes::from(vec![b'x'; 9_559]),
        extensions: vec![],
    };
    let wire = last.encode_to_vec();
    assert_eq!(wire.len(), 9_574);
    assert_eq!(&wire[12..15], &[0x12, 0xd7, 0x4a]);
}

#[test]
fn get_log_requests_carry_the_name_in_field_one() {
    // Capture 01: the request for NAME is 100 bytes serialized.
    for wire in [
        v1alpha3::GetLogRequest { name: NAME.into() }.encode_to_vec(),
        v1alpha2::GetLogRequest { name: NAME.into() }.encode_to_vec(),
        v1alpha2::DeleteLogRequest { name: NAME.into() }.encode_to_vec(),
    ] {
        assert_eq!(wire.len(), 100);
        assert_eq!(&wire[..2], &[0x0a, 98]);
        assert_eq!(&wire[2..], NAME.as_bytes());
    }
}

#[test]
fn log_messages_are_name_then_data() {
    // Capture 11: UpdateLog messages for NAME with 6 data bytes are 108 bytes.
    let wire = v1alpha2::Log {
        name: NAME.into(),
        data: Bytes::from_static(b"hello\n"),
    }
    .encode_to_vec();
    assert_eq!(wire.len(), 108);
    assert_eq!(&wire[100..102], &[0x12, 0x06]);
    // Decoding what an upstream client sends by hand.
    let mut hand = vec![0x0a, 3, b'a', b'/', b'b', 0x12, 2, b'h', b'i'];
    let decoded = v1alpha2::Log::decode(&hand[..]).unwrap();
    assert_eq!(decoded.name, "a/b");
    assert_eq!(&decoded.data[..], b"hi");
    hand.truncate(5);
    assert_eq!(v1alpha2::Log::decode(&hand[..]).unwrap().data.len(), 0);
}

#[test]
fn log_summary_is_record_then_bytes_received() {
    // record = 1 (string), bytesReceived = 2 (int64 varint).
    let hand = [0x0a, 0x01, b'r', 0x10, 0xac, 0x02];
    let summary = v1alpha2::LogSummary::decode(&hand[..]).unwrap();
    assert_eq!(summary.record, "r");
    assert_eq!(summary.bytes_received, 300);
    assert_eq!(summary.encode_to_vec(), hand);
}
