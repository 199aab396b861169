//! nom 8 parsers for the Kafka wire protocol (<https://kafka.apache.org/protocol.html>):
//! the size-prefixed frame, the request header (v0-v2) and the ApiVersions response body.
//!
//! Every parser is `streaming`: `Err::Incomplete` means "a longer input could still parse",
//! `Err::Error` means the bytes break the grammar. Nothing here allocates, so the probe and
//! the session share them.

use nom::bytes::streaming::take;
use nom::error::Error;
use nom::number::streaming::{be_i16, be_i32, be_u8};
use nom::{Err, Parser};

use crate::parsing::{fail, PResult};

/// Largest frame adi accepts: the broker's `socket.request.max.bytes` default (104857600,
/// "The maximum number of bytes in a socket request"). Responses share the limit.
pub(crate) const MAX_MESSAGE_SIZE: usize = 104_857_600;
/// Smallest request frame: api_key (2) + api_version (2) + correlation_id (4) + client_id
/// length (2), request header v1 (protocol guide, "Headers").
pub(crate) const MIN_REQUEST_SIZE: usize = 10;
/// Smallest response frame: correlation_id (4), response header v0.
pub(crate) const MIN_RESPONSE_SIZE: usize = 4;
/// Most entries adi accepts in an ApiVersions response: one per API key, and Kafka 4.x
/// defines fewer than 100; the margin leaves room for future keys.
pub(crate) const MAX_API_VERSIONS_ENTRIES: usize = 256;
/// The highest api_key an ApiVersions response entry may name (a future broker may list
/// keys adi does not know yet, but not absurd ones).
const MAX_ADVERTISED_API_KEY: i16 = 1000;
/// The highest version an ApiVersions response entry may advertise.
const MAX_ADVERTISED_VERSION: i16 = 100;

/// An API key (protocol guide, "Api Keys"). Unknown keys still parse; the probe rejects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ApiKey(pub(crate) i16);

/// Name and highest known version of every API key 0..=92, as of Kafka 4.1.
const APIS: &[(&str, i16)] = &[
    ("Produce", 13),
    ("Fetch", 18),
    ("ListOffsets", 10),
    ("Metadata", 13),
    ("LeaderAndIsr", 7),
    ("StopReplica", 4),
    ("UpdateMetadata", 8),
    ("ControlledShutdown", 3),
    ("OffsetCommit", 10),
    ("OffsetFetch", 10),
    ("FindCoordinator", 6),
    ("JoinGroup", 9),
    ("Heartbeat", 4),
    ("LeaveGroup", 5),
    ("SyncGroup", 5),
    ("DescribeGroups", 6),
    ("ListGroups", 5),
    ("SaslHandshake", 1),
    ("ApiVersions", 4),
    ("CreateTopics", 7),
    ("DeleteTopics", 6),
    ("DeleteRecords", 2),
    ("InitProducerId", 6),
    ("OffsetForLeaderEpoch", 4),
    ("AddPartitionsToTxn", 5),
    ("AddOffsetsToTxn", 4),
    ("EndTxn", 5),
    ("WriteTxnMarkers", 2),
    ("TxnOffsetCommit", 5),
    ("DescribeAcls", 3),
    ("CreateAcls", 3),
    ("DeleteAcls", 3),
    ("DescribeConfigs", 4),
    ("AlterConfigs", 2),
    ("AlterReplicaLogDirs", 2),
    ("DescribeLogDirs", 4),
    ("SaslAuthenticate", 2),
    ("CreatePartitions", 3),
    ("CreateDelegationToken", 3),
    ("RenewDelegationToken", 2),
    ("ExpireDelegationToken", 2),
    ("DescribeDelegationToken", 3),
    ("DeleteGroups", 2),
    ("ElectLeaders", 2),
    ("IncrementalAlterConfigs", 1),
    ("AlterPartitionReassignments", 1),
    ("ListPartitionReassignments", 0),
    ("OffsetDelete", 0),
    ("DescribeClientQuotas", 1),
    ("AlterClientQuotas", 1),
    ("DescribeUserScramCredentials", 0),
    ("AlterUserScramCredentials", 0),
    ("Vote", 2),
    ("BeginQuorumEpoch", 1),
    ("EndQuorumEpoch", 1),
    ("DescribeQuorum", 2),
    ("AlterPartition", 3),
    ("UpdateFeatures", 2),
    ("Envelope", 0),
    ("FetchSnapshot", 1),
    ("DescribeCluster", 2),
    ("DescribeProducers", 0),
    ("BrokerRegistration", 4),
    ("BrokerHeartbeat", 1),
    ("UnregisterBroker", 0),
    ("DescribeTransactions", 0),
    ("ListTransactions", 2),
    ("AllocateProducerIds", 0),
    ("ConsumerGroupHeartbeat", 1),
    ("ConsumerGroupDescribe", 1),
    ("ControllerRegistration", 0),
    ("GetTelemetrySubscriptions", 0),
    ("PushTelemetry", 0),
    ("AssignReplicasToDirs", 0),
    ("ListClientMetricsResources", 0),
    ("DescribeTopicPartitions", 0),
    ("ShareGroupHeartbeat", 1),
    ("ShareGroupDescribe", 1),
    ("ShareFetch", 1),
    ("ShareAcknowledge", 1),
    ("AddRaftVoter", 0),
    ("RemoveRaftVoter", 0),
    ("UpdateRaftVoter", 0),
    ("InitializeShareGroupState", 0),
    ("ReadShareGroupState", 0),
    ("WriteShareGroupState", 0),
    ("DeleteShareGroupState", 0),
    ("ReadShareGroupStateSummary", 0),
    ("StreamsGroupHeartbeat", 0),
    ("StreamsGroupDescribe", 0),
    ("DescribeShareGroupOffsets", 0),
    ("AlterShareGroupOffsets", 0),
    ("DeleteShareGroupOffsets", 0),
];

impl ApiKey {
    /// Produce (0).
    pub(crate) const PRODUCE: Self = Self(0);
    /// ApiVersions (18): the first request of modern clients; its response header is always
    /// v0, even for flexible versions (KIP-511).
    pub(crate) const API_VERSIONS: Self = Self(18);

    fn entry(self) -> Option<&'static (&'static str, i16)> {
        usize::try_from(self.0).ok().and_then(|i| APIS.get(i))
    }

    /// The API's name, for a known key.
    pub(crate) fn name(self) -> Option<&'static str> {
        self.entry().map(|e| e.0)
    }

    /// True when the key is known and `version` is within its known range.
    pub(crate) fn knows_version(self, version: i16) -> bool {
        self.entry().is_some_and(|e| (0..=e.1).contains(&version))
    }
}

/// A request header v1/v2 up to the client id (a v2 header's tagged fields follow it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestHeader<'a> {
    pub(crate) api_key: ApiKey,
    pub(crate) api_version: i16,
    pub(crate) correlation_id: i32,
    /// `None` for a null client id (length -1).
    pub(crate) client_id: Option<&'a [u8]>,
}

/// A client id byte: printable ASCII or any byte of a multi-byte UTF-8 sequence. Real
/// clients use names like `adi-fixture`, `rdkafka`, `consumer-1`; control bytes never occur.
pub(crate) fn is_client_id_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b >= 0x80
}

/// The int32 size that starts every frame, checked against `min..=MAX_MESSAGE_SIZE`.
pub(crate) fn parse_frame_size(i: &[u8], min: usize) -> PResult<'_, usize> {
    let (rest, size) = be_i32(i)?;
    match usize::try_from(size) {
        Ok(n) if (min..=MAX_MESSAGE_SIZE).contains(&n) => Ok((rest, n)),
        _ => fail(i),
    }
}

/// A request header, given the frame `size` (the bytes after the size field). Checks that
/// the key and version are known, the correlation id is not negative and the client id fits
/// the frame and is printable, so the probe can reject look-alikes on a prefix.
pub(crate) fn parse_request_header(i: &[u8], size: usize) -> PResult<'_, RequestHeader<'_>> {
    let (rest, key) = be_i16(i)?;
    let api_key = ApiKey(key);
    if api_key.name().is_none() {
        return fail(i);
    }
    let (rest, api_version) = be_i16(rest)?;
    if !api_key.knows_version(api_version) {
        return fail(i);
    }
    let (rest, correlation_id) = be_i32(rest)?;
    if correlation_id < 0 {
        return fail(i);
    }
    let (rest, len) = be_i16(rest)?;
    if len == -1 {
        return Ok((
            rest,
            RequestHeader {
                api_key,
                api_version,
                correlation_id,
                client_id: None,
            },
        ));
    }
    let len = match usize::try_from(len) {
        Ok(n) if n <= size - MIN_REQUEST_SIZE => n,
        _ => return fail(i),
    };
    // Check what is there already, so that a prefix is rejected early.
    if !rest.iter().take(len).all(|&b| is_client_id_byte(b)) {
        return fail(i);
    }
    let (rest, id) = take(len).parse(rest)?;
    Ok((
        rest,
        RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id: Some(id),
        },
    ))
}

/// An unsigned varint (protocol guide, "Protocol Primitive Types": UNSIGNED_VARINT), at most
/// 5 bytes.
pub(crate) fn parse_uvarint(i: &[u8]) -> PResult<'_, u32> {
    let mut value: u32 = 0;
    let mut rest = i;
    for shift in [0u32, 7, 14, 21, 28] {
        let (r, b) = be_u8(rest)?;
        rest = r;
        value |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((rest, value));
        }
    }
    fail(i)
}

/// Skips a tagged-field section (KIP-482): a count, then (tag, size, bytes) per field.
pub(crate) fn skip_tagged_fields(i: &[u8]) -> PResult<'_, ()> {
    let (mut rest, count) = parse_uvarint(i)?;
    for _ in 0..count {
        let (r, _tag) = parse_uvarint(rest)?;
        let (r, size) = parse_uvarint(r)?;
        let (r, _) = take(size).parse(r)?;
        rest = r;
    }
    Ok((rest, ()))
}

/// The fixed part of a Produce request body up to `acks`: `transactional_id` (v3+: a
/// nullable string, compact from v9) comes first. Returns `acks`.
pub(crate) fn parse_produce_acks(i: &[u8], version: i16) -> PResult<'_, i16> {
    let rest = if version >= 9 {
        let (r, len) = parse_uvarint(i)?;
        take(len.saturating_sub(1)).parse(r)?.0
    } else if version >= 3 {
        let (r, len) = be_i16(i)?;
        take(usize::try_from(len).unwrap_or(0)).parse(r)?.0
    } else {
        i
    };
    be_i16(rest)
}

/// How much of an ApiVersions response body was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApiVersionsFit {
    /// The first entries (up to three) are plausible; the body is not complete.
    Plausible,
    /// The whole body parsed and its length matches the frame exactly.
    Whole,
}

/// One ApiVersions entry: key, min version, max version; keys ascend.
fn check_entry(i: &[u8], prev: i16) -> PResult<'_, i16> {
    let (rest, key) = be_i16(i)?;
    let (rest, min) = be_i16(rest)?;
    let (rest, max) = be_i16(rest)?;
    if key <= prev
        || key > MAX_ADVERTISED_API_KEY
        || min < 0
        || min > max
        || max > MAX_ADVERTISED_VERSION
    {
        return fail(i);
    }
    Ok((rest, key))
}

/// An ApiVersions response body (after the correlation id), `body_len` bytes in all of
/// which `i` may hold a prefix. Versions 0-2: error_code, int32 array of (key, min, max)
/// and, from v1, throttle_time_ms. Versions 3+: the array is compact and every entry and the
/// body end with tagged fields. `flexible` picks the layout.
pub(crate) fn parse_api_versions_body(
    i: &[u8],
    body_len: usize,
    flexible: bool,
) -> PResult<'_, ApiVersionsFit> {
    let (rest, error_code) = be_i16(i)?;
    // 0 NONE, or 35 UNSUPPORTED_VERSION (the broker then answers in v0 with its range).
    if error_code != 0 && error_code != 35 {
        return fail(i);
    }
    let (mut rest, count) = if flexible {
        let (r, n) = parse_uvarint(rest)?;
        let Some(n) = n.checked_sub(1) else {
            return fail(i);
        };
        (r, n as usize)
    } else {
        let (r, n) = be_i32(rest)?;
        match usize::try_from(n) {
            Ok(n) => (r, n),
            Err(_) => return fail(i),
        }
    };
    let entry_len = if flexible { 7 } else { 6 };
    let fixed = 2 + entry_len * count;
    if count > MAX_API_VERSIONS_ENTRIES || fixed > body_len {
        return fail(i);
    }
    let mut prev = -1;
    for n in 0..count {
        match check_entry(rest, prev) {
            Ok((r, key)) => {
                prev = key;
                rest = r;
            }
            Err(Err::Incomplete(_)) if n >= 3 => return Ok((rest, ApiVersionsFit::Plausible)),
            Err(e) => return Err(e),
        }
        if flexible {
            match skip_tagged_fields(rest) {
                Ok((r, ())) => rest = r,
                Err(Err::Incomplete(_)) if n >= 3 => {
                    return Ok((rest, ApiVersionsFit::Plausible));
                }
                Err(e) => return Err(e),
            }
        }
    }
    let used = i.len() - rest.len();
    let Some(left) = body_len.checked_sub(used) else {
        return fail(i);
    };
    if flexible {
        // throttle_time_ms, then the body's tagged fields, ending exactly at the frame end.
        let tail = rest.get(..left.min(rest.len())).unwrap_or_default();
        return match be_i32::<_, Error<&[u8]>>(tail).and_then(|(r, _)| skip_tagged_fields(r)) {
            Ok((r, ())) if r.is_empty() && tail.len() == left => {
                Ok((&rest[left..], ApiVersionsFit::Whole))
            }
            Err(Err::Incomplete(_)) if tail.len() < left => Ok((rest, ApiVersionsFit::Plausible)),
            Ok(_) | Err(_) => fail(i),
        };
    }
    // v0 ends here; v1 and v2 add throttle_time_ms.
    if left == 0 || left == 4 {
        if rest.len() >= left {
            Ok((&rest[left..], ApiVersionsFit::Whole))
        } else {
            Ok((rest, ApiVersionsFit::Plausible))
        }
    } else {
        fail(i)
    }
}
