//! Stream records as typed changes: the only thing the projector reads.
//!
//! One decoder, [`decode_json`], serves the Lambda event as raw JSON (so one malformed record
//! cannot fail a whole event) and records read with `aws-sdk-dynamodbstreams` (converted by
//! [`from_streams_record`] to the `aws_lambda_events` shape Lambda delivers).
//!
//! What matters to the projection:
//! - an INSERT of a like not yet counted: [`Change::LikeAdded`];
//! - a REMOVE of a like, with who had counted it: [`Change::LikeRemoved`];
//! - an INSERT of a hot post's delta, to be folded into its counter: [`Change::DeltaAdded`];
//! - a MODIFY of a counted like whose stamp the projector deferred (`stampDue` set, not yet in
//!   the view): [`Change::StampDue`].
//!
//! Everything else is [`Change::Ignored`]: other MODIFY records (the projector's own marks,
//! stamps and counters; profile updates), TTL deletions (tombstones expiring), likes the
//! transactional writer counted itself, and other item types. Which records are work is
//! decided by [`crate::filters::RULES`], the rules the deployed event filters are made of.

use aws_lambda_events::dynamodb::{EventRecord, StreamRecord, UserIdentity};
use chrono::{DateTime, Utc};
use std::str::FromStr;

use serde::Deserialize;
use serde_json::Value;

use crate::filters::{Image as FilterImage, Work};
pub use crate::items::LikeRef;
use crate::items::{CountedBy, Delta, ItemType};
use crate::keys::{self, KeyError, LikeId};

/// Why a record needs no projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// MODIFY: the projector's own writes, profile updates.
    Modified,
    /// A TTL deletion by DynamoDB itself.
    Expired,
    /// A like inserted already counted (transactional mode).
    CountedByWriter,
    /// The REMOVE of a like the projector had not counted: nothing to take back. The
    /// incarnation is gone, so a mark of it in the same batch can only fail.
    RemovedUncounted(LikeId),
    /// The REMOVE of a like the transactional writer counted: it decremented in the same
    /// transaction.
    RemovedByWriter,
    /// The REMOVE of a delta: the fold that added it to the counter deleted it.
    Folded,
    /// Not a like.
    OtherItem,
}

/// What a stream record means to the projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A like incarnation was created: count it.
    LikeAdded(LikeRef),
    /// A like the projector had counted was deleted: take one back.
    LikeRemoved(LikeRef),
    /// A hot post's counting transaction wrote this delta: add it to the counter.
    DeltaAdded(Delta),
    /// A counted like whose stamp was deferred (its view throttled): stamp it now.
    StampDue(LikeRef),
    /// Needs no projection, and why.
    Ignored(IgnoreReason),
}

/// A record the decoder could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable stream record {sequence}: {reason}")]
pub struct Undecodable {
    /// The record's sequence number.
    pub sequence: String,
    /// The record's `eventID`, unique per record: records can share a sequence number (AWS's
    /// own sample events do), and each is quarantined on its own.
    pub event_id: String,
    /// Why it could not be decoded.
    pub reason: String,
}

/// A decoded record: where it is in the stream, when it was written, what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The record's sequence number.
    pub sequence: String,
    /// When the change was written (the record's `ApproximateCreationDateTime`).
    pub created: DateTime<Utc>,
    /// What it means to the projection.
    pub change: Change,
}

/// What an undecodable record without a sequence number, or without an `eventID`, is
/// quarantined as.
pub const NO_SEQUENCE: &str = "<no sequence number>";
/// The event id of a record without one.
pub const NO_EVENT_ID: &str = "none";

/// Decode a record given as Lambda JSON.
///
/// Reads only what the projection needs straight from the JSON tree (event name, sequence
/// number, creation time, the image's type and the like's identity fields): no copy of the
/// record and no parse of attributes the projector never looks at, so decoding stays a small
/// share of a batch's CPU.
pub fn decode_json(raw: &Value) -> Result<Decoded, Undecodable> {
    let [event_name, identity, change, event_id] =
        members(raw, ["eventName", "userIdentity", "dynamodb", "eventID"]);
    let event_id = event_id
        .and_then(Value::as_str)
        .unwrap_or(NO_EVENT_ID)
        .to_owned();
    let [sequence, created, new_image, old_image] = change.map_or([None; 4], |change| {
        members(
            change,
            [
                "SequenceNumber",
                "ApproximateCreationDateTime",
                "NewImage",
                "OldImage",
            ],
        )
    });
    let sequence = sequence
        .and_then(Value::as_str)
        .ok_or_else(|| Undecodable {
            sequence: NO_SEQUENCE.into(),
            event_id: event_id.clone(),
            reason: "record has no sequence number".into(),
        })?
        .to_owned();
    let fail = |reason: String| Undecodable {
        sequence: sequence.clone(),
        event_id: event_id.clone(),
        reason,
    };
    let created = creation_time(created)
        .ok_or_else(|| fail("ApproximateCreationDateTime is not epoch seconds".into()))?;
    // What is work is decided by the rules the deployed event filters are made of.
    let change = match crate::filters::work_of(raw) {
        Some(work) => {
            let image = match work.rule().image {
                FilterImage::New => new_image,
                FilterImage::Old => old_image,
            };
            match (work, Image::of(image)) {
                (Work::LikeAdded, Some(Image::Like(like))) => {
                    Change::LikeAdded(like.map_err(fail)?.0)
                }
                (Work::LikeRemoved, Some(Image::Like(like))) => {
                    Change::LikeRemoved(like.map_err(fail)?.0)
                }
                (Work::StampDue, Some(Image::Like(like))) => {
                    Change::StampDue(like.map_err(fail)?.0)
                }
                (Work::DeltaAdded, Some(Image::Delta(delta))) => {
                    Change::DeltaAdded(delta.map_err(fail)?)
                }
                (work, _) => {
                    return Err(fail(format!("{} of an item of another type", work.name())));
                }
            }
        }
        None => Change::Ignored(ignored(event_name, identity, new_image, old_image).map_err(fail)?),
    };
    Ok(Decoded {
        sequence,
        created,
        change,
    })
}

/// Why a record no rule of [`crate::filters::RULES`] holds for needs no projection.
fn ignored(
    event_name: Option<&Value>,
    identity: Option<&Value>,
    new_image: Option<&Value>,
    old_image: Option<&Value>,
) -> Result<IgnoreReason, String> {
    Ok(match event_name.and_then(Value::as_str) {
        Some("MODIFY") => IgnoreReason::Modified,
        Some("INSERT") => match Image::of(new_image) {
            Some(Image::Like(like)) => {
                like?;
                IgnoreReason::CountedByWriter
            }
            Some(Image::Delta(_) | Image::Other) => IgnoreReason::OtherItem,
            None => return Err("INSERT without a NewImage type".into()),
        },
        Some("REMOVE") if is_ttl_delete(identity) => IgnoreReason::Expired,
        Some("REMOVE") => match Image::of(old_image) {
            Some(Image::Like(like)) => match like? {
                (_, Some(CountedBy::Writer)) => IgnoreReason::RemovedByWriter,
                (like, _) => IgnoreReason::RemovedUncounted(like.like_id),
            },
            Some(Image::Delta(_)) => IgnoreReason::Folded,
            Some(Image::Other) => IgnoreReason::OtherItem,
            None => return Err("REMOVE without an OldImage type".into()),
        },
        other => return Err(format!("unknown event name {other:?}")),
    })
}

/// Named members of a JSON object, picked in one pass over it (cheaper than one lookup per
/// name in its sorted map); all `None` if it is not an object.
fn members<'a, const N: usize>(object: &'a Value, names: [&str; N]) -> [Option<&'a Value>; N] {
    let mut found = [None; N];
    for (name, value) in object.as_object().into_iter().flatten() {
        if let Some(i) = names.iter().position(|n| n == name) {
            found[i] = Some(value);
        }
    }
    found
}

/// Epoch seconds as Lambda writes them (a number, or a string of one); absent means unknown,
/// which reads as the epoch, as `aws_lambda_events` does.
fn creation_time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let seconds = match value {
        None | Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => n.as_f64()?,
        Some(Value::String(s)) => s.parse().ok()?,
        Some(_) => return None,
    };
    let millis = (seconds * 1000.0).round();
    millis
        .is_finite()
        .then(|| DateTime::from_timestamp_millis(millis as i64))
        .flatten()
}

fn is_ttl_delete(identity: Option<&Value>) -> bool {
    let [kind, principal] = identity.map_or([None; 2], |id| members(id, ["type", "principalId"]));
    kind.and_then(Value::as_str) == Some("Service")
        && principal.and_then(Value::as_str) == Some("dynamodb.amazonaws.com")
}

/// A like as the projection reads it: its identity, and who counted it.
type LikeImage = (LikeRef, Option<CountedBy>);

/// An item image with a type.
enum Image {
    /// A like, or why its fields are malformed.
    Like(Result<LikeImage, String>),
    /// A delta, or why its fields are malformed.
    Delta(Result<Delta, String>),
    Other,
}

impl Image {
    /// The image's type and, for a like, the fields the projection reads, each validated as
    /// the key schema requires. `None` if there is no image with a string `type`.
    fn of(image: Option<&Value>) -> Option<Image> {
        let [
            item_type,
            user,
            post,
            topic,
            like_id,
            counted_by,
            delta_id,
            delta,
        ] = members(
            image?,
            [
                keys::TYPE,
                "userId",
                "postId",
                "topic",
                "likeId",
                "countedBy",
                "deltaId",
                "delta",
            ],
        );
        let item_type = string(item_type)?;
        if item_type == ItemType::Delta.as_str() {
            let delta = || -> Result<Delta, String> {
                Ok(Delta {
                    topic: parsed("topic", topic)?,
                    post_id: parsed("postId", post)?,
                    delta_id: parsed("deltaId", delta_id)?,
                    delta: delta
                        .and_then(|v| v.get("N")?.as_str()?.parse().ok())
                        .ok_or("malformed delta: no integer delta")?,
                })
            };
            return Some(Image::Delta(delta()));
        }
        if item_type != ItemType::Like.as_str() {
            return Some(Image::Other);
        }
        let like = || -> Result<LikeImage, String> {
            let like = LikeRef {
                user: parsed("userId", user)?,
                post: parsed("postId", post)?,
                topic: parsed("topic", topic)?,
                like_id: parsed("likeId", like_id)?,
            };
            let counted_by = counted_by
                .map(|value| CountedBy::deserialize(value.get("S").unwrap_or(value)))
                .transpose()
                .map_err(|e| format!("malformed like: countedBy: {e}"))?;
            Ok((like, counted_by))
        };
        Some(Image::Like(like()))
    }
}

/// A string attribute's value (`{"S": ...}`).
fn string(attribute: Option<&Value>) -> Option<&str> {
    attribute?.get("S")?.as_str()
}

/// A string attribute parsed as a key part.
fn parsed<T: FromStr<Err = KeyError>>(name: &str, attribute: Option<&Value>) -> Result<T, String> {
    string(attribute)
        .ok_or_else(|| format!("malformed item: no string {name}"))?
        .parse()
        .map_err(|e| format!("malformed item: {name}: {e}"))
}

/// A record read with `aws-sdk-dynamodbstreams`, as Lambda would deliver it.
pub fn from_streams_record(
    record: aws_sdk_dynamodbstreams::types::Record,
    source_arn: &str,
) -> EventRecord {
    let mut event = EventRecord::default();
    event.event_id = record.event_id.unwrap_or_default();
    event.event_name = record
        .event_name
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    event.event_source = record.event_source;
    event.event_version = record.event_version;
    event.aws_region = record.aws_region.unwrap_or_default();
    event.event_source_arn = Some(source_arn.to_owned());
    event.user_identity = record.user_identity.map(|id| {
        let mut identity = UserIdentity::default();
        identity.type_ = id.r#type.unwrap_or_default();
        identity.principal_id = id.principal_id.unwrap_or_default();
        identity
    });
    if let Some(change) = record.dynamodb {
        let mut stream = StreamRecord::default();
        if let Some(at) = change.approximate_creation_date_time {
            stream.approximate_creation_date_time =
                DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default();
        }
        stream.keys = change
            .keys
            .map(serde_dynamo::Item::from)
            .unwrap_or_default();
        stream.new_image = change
            .new_image
            .map(serde_dynamo::Item::from)
            .unwrap_or_default();
        stream.old_image = change
            .old_image
            .map(serde_dynamo::Item::from)
            .unwrap_or_default();
        stream.sequence_number = change.sequence_number;
        stream.size_bytes = change.size_bytes.unwrap_or_default();
        event.change = stream;
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LikeId;
    use serde_json::json;

    fn like(counted_by: Option<&str>) -> Value {
        let mut image = json!({
            "PK": {"S": "USER#ann"}, "SK": {"S": "LIKE#2lPNkfHnGyd3WnfyeBX4bRb3X2b"},
            "type": {"S": "Like"}, "userId": {"S": "ann"},
            "postId": {"S": "2lPNkfHnGyd3WnfyeBX4bRb3X2b"}, "topic": {"S": "rust"},
            "title": {"S": "T"}, "likedAt": {"S": "2026-01-01T00:00:00Z"},
            "likeId": {"S": "2lPNkfHnGyd3WnfyeBX4bRb3X2c"}
        });
        if let Some(by) = counted_by {
            image["countedBy"] = json!({"S": by});
        }
        image
    }

    fn record(name: &str, new: Option<Value>, old: Option<Value>) -> Value {
        let mut change = json!({
            "ApproximateCreationDateTime": 1767225600.0,
            "Keys": {}, "SequenceNumber": "4200000000000000001", "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        });
        if let Some(new) = new {
            change["NewImage"] = new;
        }
        if let Some(old) = old {
            change["OldImage"] = old;
        }
        json!({"eventID": "1", "eventName": name, "eventVersion": "1.1",
               "eventSource": "aws:dynamodb", "awsRegion": "ddblocal", "dynamodb": change})
    }

    fn change_of(raw: Value) -> Change {
        decode_json(&raw).unwrap().change
    }

    #[test]
    fn inserts_and_removes_of_likes_are_changes() {
        let Change::LikeAdded(added) = change_of(record("INSERT", Some(like(None)), None)) else {
            panic!("expected a like")
        };
        assert_eq!(added.user.as_str(), "ann");
        assert_eq!(
            added.like_id,
            "2lPNkfHnGyd3WnfyeBX4bRb3X2c".parse::<LikeId>().unwrap()
        );
        let removed = change_of(record("REMOVE", None, Some(like(Some("projector")))));
        assert_eq!(removed, Change::LikeRemoved(added));
    }

    #[test]
    fn a_delta_inserted_is_a_change_and_its_removal_is_ignored() {
        let delta = Delta {
            topic: "rust".parse().unwrap(),
            post_id: "2lPNkfHnGyd3WnfyeBX4bRb3X2b".parse().unwrap(),
            delta_id: "2lPNkfHnGyd3WnfyeBX4bRb3X2d".parse().unwrap(),
            delta: -2,
        };
        use crate::items::Entity;
        let image = serde_json::to_value(serde_dynamo::Item::from(delta.to_item())).unwrap();
        assert_eq!(
            change_of(record("INSERT", Some(image.clone()), None)),
            Change::DeltaAdded(delta)
        );
        assert_eq!(
            change_of(record("REMOVE", None, Some(image.clone()))),
            Change::Ignored(IgnoreReason::Folded)
        );
        let mut broken = image;
        broken["delta"] = json!({"S": "two"});
        assert!(decode_json(&record("INSERT", Some(broken), None)).is_err());
    }

    #[test]
    fn a_counted_like_whose_stamp_is_due_comes_back_until_it_is_in_the_view() {
        let mut due = like(Some("projector"));
        due["stampDue"] = json!({"N": "1767225600000"});
        let Change::StampDue(like_ref) = change_of(record("MODIFY", Some(due.clone()), None))
        else {
            panic!("expected a due stamp")
        };
        assert_eq!(like_ref.user.as_str(), "ann");
        // The stamp removes stampDue; a like in the view is done whatever it carries.
        due["GSI1PK"] = json!({"S": "POST#2lPNkfHnGyd3WnfyeBX4bRb3X2b#3"});
        assert_eq!(
            change_of(record("MODIFY", Some(due), None)),
            Change::Ignored(IgnoreReason::Modified)
        );
    }

    #[test]
    fn what_needs_no_projection_is_ignored() {
        let ignored = |raw| match change_of(raw) {
            Change::Ignored(reason) => reason,
            other => panic!("expected ignored, got {other:?}"),
        };
        use IgnoreReason::*;
        let counted = Some(like(Some("projector")));
        assert_eq!(
            ignored(record("MODIFY", counted.clone(), Some(like(None)))),
            Modified
        );
        assert_eq!(
            ignored(record("INSERT", Some(like(Some("writer"))), None)),
            CountedByWriter
        );
        assert_eq!(
            ignored(record("REMOVE", None, Some(like(None)))),
            RemovedUncounted("2lPNkfHnGyd3WnfyeBX4bRb3X2c".parse().unwrap())
        );
        assert_eq!(
            ignored(record("REMOVE", None, Some(like(Some("writer"))))),
            RemovedByWriter
        );
        let post = json!({"PK": {"S": "TOPIC#a"}, "SK": {"S": "POST#x"}, "type": {"S": "Post"}});
        assert_eq!(ignored(record("INSERT", Some(post), None)), OtherItem);
        let mut ttl = record("REMOVE", None, Some(json!({"type": {"S": "Tombstone"}})));
        ttl["userIdentity"] = json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
        assert_eq!(ignored(ttl), Expired);
    }

    #[test]
    fn broken_records_are_undecodable_with_their_sequence_number() {
        let mut broken_like = like(None);
        broken_like["likeId"] = json!({"S": "not-a-ksuid"});
        let cases = [
            record("INSERT", Some(broken_like), None),
            record("INSERT", None, None),
            record("TRUNCATE", None, None),
            json!({"dynamodb": {"SequenceNumber": "4200000000000000001", "NewImage": 5}}),
        ];
        for raw in cases {
            let err = decode_json(&raw).unwrap_err();
            assert_eq!(err.sequence, "4200000000000000001", "{err}");
        }
        let err = decode_json(&json!("garbage")).unwrap_err();
        assert_eq!(err.sequence, "<no sequence number>");
    }
}
