//! Loki's `query_range` answer (<https://grafana.com/docs/loki/latest/reference/loki-http-api/>):
//! `{"status":"success","data":{"resultType":"streams","result":[{"stream":{..},"values":[["<ns>","<line>"(,{..})?],..]}]}}`.
//! Timestamps are strings of nanoseconds. With the `categorize-labels`
//! encoding flag, `stream` holds only the index labels and a value may carry
//! a third element, `{"structuredMetadata":{..},"parsed":{..}}`, whose
//! structured metadata is kept (the parsed labels are not: the connector
//! asks for them only when it extracts them itself).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A whole `query_range` response.
#[derive(Debug, Deserialize)]
pub struct QueryResponse {
    /// `success` or `error`.
    pub status: String,
    /// The result.
    pub data: QueryData,
}

/// `data` of a response.
#[derive(Debug, Deserialize)]
pub struct QueryData {
    /// `streams` for log queries.
    #[serde(rename = "resultType")]
    pub result_type: String,
    /// One entry per result stream (label set).
    pub result: Vec<StreamResult>,
}

/// One result stream.
#[derive(Debug, Deserialize)]
pub struct StreamResult {
    /// Its labels (index labels, structured metadata, extracted labels).
    pub stream: BTreeMap<String, String>,
    /// Its entries, in the request's direction.
    pub values: Vec<Entry>,
}

/// One `[timestamp, line]` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Nanoseconds since the epoch.
    pub ts_ns: i64,
    /// The line, as the query's pipeline rendered it.
    pub line: String,
    /// The entry's structured metadata, from a categorized answer (empty
    /// otherwise).
    pub metadata: Vec<(String, String)>,
}

/// The third element of a categorized value.
#[derive(Deserialize)]
struct EntryLabels {
    #[serde(default, rename = "structuredMetadata")]
    structured_metadata: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [\"<nanoseconds>\", \"<line>\"] pair")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
                let ts: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let ts_ns = ts.parse::<i64>().map_err(|_| {
                    de::Error::custom(format!("timestamp {ts:?} is not integer nanoseconds"))
                })?;
                let line: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let metadata = seq
                    .next_element::<EntryLabels>()?
                    .map(|labels| labels.structured_metadata.into_iter().collect())
                    .unwrap_or_default();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Entry {
                    ts_ns,
                    line,
                    metadata,
                })
            }
        }

        deserializer.deserialize_seq(EntryVisitor)
    }
}

impl QueryResponse {
    /// Parses a 200 body, checking that it is a successful streams answer.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let response: QueryResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if response.status != "success" {
            return Err(format!("status is {:?}, not \"success\"", response.status));
        }
        if response.data.result_type != "streams" {
            return Err(format!(
                "resultType is {:?}, not \"streams\" (a metric query?)",
                response.data.result_type
            ));
        }
        Ok(response)
    }
}

/// A frame of the tail websocket:
/// `{"streams":[{"stream":{..},"values":[["<ns>","<line>"],..]}],"dropped_entries":..}`.
#[derive(Debug, Deserialize)]
pub struct TailFrame {
    /// New entries, by stream; none in a frame that only reports drops.
    #[serde(default)]
    pub streams: Vec<StreamResult>,
}

impl TailFrame {
    /// The times of the oldest and the newest entry of a frame's text, if
    /// it has entries.
    pub fn line_times(text: &str) -> Option<(i64, i64)> {
        let frame: TailFrame = serde_json::from_str(text).ok()?;
        let times = || {
            frame
                .streams
                .iter()
                .flat_map(|s| s.values.iter().map(|e| e.ts_ns))
        };
        Some((times().min()?, times().max()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_with_and_without_metadata() {
        let body = br#"{"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"app":"x"},"values":[["1795601400000000000","one"],["1795601400000000001","two",{"structuredMetadata":{"a":"b"}}]]}],
            "stats":{"summary":{"bytesProcessedPerSecond":1}}}}"#;
        let response = QueryResponse::parse(body).unwrap();
        let stream = &response.data.result[0];
        assert_eq!(stream.stream["app"], "x");
        assert_eq!(
            stream.values,
            vec![
                Entry {
                    ts_ns: 1_795_601_400_000_000_000,
                    line: "one".into(),
                    metadata: Vec::new(),
                },
                Entry {
                    ts_ns: 1_795_601_400_000_000_001,
                    line: "two".into(),
                    metadata: vec![("a".into(), "b".into())],
                },
            ]
        );
    }

    #[test]
    fn a_tail_frame_says_when_its_entries_are() {
        let frame = r#"{"streams":[{"stream":{"a":"b"},"values":[["30","x"],["10","y"]]},
            {"stream":{"a":"c"},"values":[["20","z"]]}]}"#;
        assert_eq!(TailFrame::line_times(frame), Some((10, 30)));
        let drops = r#"{"dropped_entries":[{"labels":{"a":"b"},"timestamp":"5"}]}"#;
        assert_eq!(TailFrame::line_times(drops), None);
        assert_eq!(TailFrame::line_times("not json"), None);
    }

    #[test]
    fn refuses_what_is_not_a_streams_answer() {
        assert!(QueryResponse::parse(b"# HELP go_gc_duration_seconds").is_err());
        assert!(QueryResponse::parse(
            br#"{"status":"error","data":{"resultType":"streams","result":[]}}"#
        )
        .is_err());
        assert!(QueryResponse::parse(
            br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#
        )
        .is_err());
        let bad_ts = br#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[[17, "x"]]}]}}"#;
        assert!(QueryResponse::parse(bad_ts).is_err());
        let bad_ts = br#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["1.5", "x"]]}]}}"#;
        assert!(QueryResponse::parse(bad_ts)
            .unwrap_err()
            .contains("not integer nanoseconds"));
    }
}
