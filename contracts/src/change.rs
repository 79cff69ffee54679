//! Stream records as typed changes: the only thing the projector reads.
//!
//! One decoder serves the Lambda event (`aws_lambda_events` [`EventRecord`], possibly as raw
//! JSON so one malformed record cannot fail a whole event) and records read with
//! `aws-sdk-dynamodbstreams` (converted by [`from_streams_record`]).
//!
//! What matters to the projection:
//! - an INSERT of a like not yet counted: [`Change::LikeAdded`];
//! - a REMOVE of a like, with who had counted it: [`Change::LikeRemoved`].
//!
//! Everything else is [`Change::Ignored`]: MODIFY records (the projector's own marks, stamps and
//! counters; profile updates), TTL deletions (tombstones expiring), likes the transactional
//! writer counted itself, and other item types.

use aws_lambda_events::dynamodb::{EventRecord, StreamRecord, UserIdentity};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::items::{CountedBy, Entity, ItemType, Like};
use crate::keys::{self, LikeId, PostId, TopicSlug, UserId};

/// A like as the projection needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LikeRef {
    pub user: UserId,
    pub post: PostId,
    pub topic: TopicSlug,
    /// The incarnation: conditions on it keep a late record from touching a re-like.
    pub like_id: LikeId,
}

impl From<&Like> for LikeRef {
    fn from(like: &Like) -> Self {
        Self {
            user: like.user_id.clone(),
            post: like.post_id,
            topic: like.topic.clone(),
            like_id: like.like_id,
        }
    }
}

/// Why a record needs no projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// MODIFY: the projector's own writes, profile updates.
    Modified,
    /// A TTL deletion by DynamoDB itself.
    Expired,
    /// A like inserted already counted (transactional mode).
    CountedByWriter,
    /// The REMOVE of a like the projector had not counted: nothing to take back.
    RemovedUncounted,
    /// The REMOVE of a like the transactional writer counted: it decremented in the same
    /// transaction.
    RemovedByWriter,
    /// Not a like.
    OtherItem,
}

/// What a stream record means to the projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    LikeAdded(LikeRef),
    /// A like the projector had counted was deleted: take one back.
    LikeRemoved(LikeRef),
    Ignored(IgnoreReason),
}

/// A record the decoder could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable stream record {sequence}: {reason}")]
pub struct Undecodable {
    pub sequence: String,
    pub reason: String,
}

/// A decoded record: where it is in the stream, when it was written, what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub sequence: String,
    pub created: DateTime<Utc>,
    pub change: Change,
}

/// The sequence number of a raw record, or a placeholder saying it had none.
fn raw_sequence(raw: &Value) -> String {
    raw.pointer("/dynamodb/SequenceNumber")
        .and_then(Value::as_str)
        .unwrap_or("<no sequence number>")
        .to_owned()
}

/// Decode a record given as Lambda JSON.
pub fn decode_json(raw: &Value) -> Result<Decoded, Undecodable> {
    let record: EventRecord = serde_json::from_value(raw.clone()).map_err(|e| Undecodable {
        sequence: raw_sequence(raw),
        reason: format!("not a DynamoDB stream record: {e}"),
    })?;
    decode(&record)
}

fn is_ttl_delete(identity: Option<&UserIdentity>) -> bool {
    identity.is_some_and(|id| id.type_ == "Service" && id.principal_id == "dynamodb.amazonaws.com")
}

fn item_type(image: &serde_dynamo::Item) -> Option<&str> {
    match image.get(keys::TYPE)? {
        serde_dynamo::AttributeValue::S(t) => Some(t.as_str()),
        _ => None,
    }
}

fn like_of(image: &serde_dynamo::Item) -> Result<Like, String> {
    let item: crate::items::Item = image.clone().into();
    Like::from_item(item).map_err(|e| format!("malformed like: {e}"))
}

/// Decode one record.
pub fn decode(record: &EventRecord) -> Result<Decoded, Undecodable> {
    let StreamRecord {
        sequence_number,
        approximate_creation_date_time,
        new_image,
        old_image,
        ..
    } = &record.change;
    let sequence = sequence_number.clone().ok_or_else(|| Undecodable {
        sequence: "<no sequence number>".into(),
        reason: "record has no sequence number".into(),
    })?;
    let fail = |reason: String| Undecodable {
        sequence: sequence.clone(),
        reason,
    };
    let like_type = ItemType::Like.as_str();
    let change = match record.event_name.as_str() {
        "MODIFY" => Change::Ignored(IgnoreReason::Modified),
        "INSERT" => match item_type(new_image) {
            Some(t) if t == like_type => {
                let like = like_of(new_image).map_err(fail)?;
                match like.counted_by {
                    None => Change::LikeAdded(LikeRef::from(&like)),
                    Some(_) => Change::Ignored(IgnoreReason::CountedByWriter),
                }
            }
            Some(_) => Change::Ignored(IgnoreReason::OtherItem),
            None => return Err(fail("INSERT without a NewImage type".into())),
        },
        "REMOVE" if is_ttl_delete(record.user_identity.as_ref()) => {
            Change::Ignored(IgnoreReason::Expired)
        }
        "REMOVE" => match item_type(old_image) {
            Some(t) if t == like_type => {
                let like = like_of(old_image).map_err(fail)?;
                match like.counted_by {
                    Some(CountedBy::Projector) => Change::LikeRemoved(LikeRef::from(&like)),
                    Some(CountedBy::Writer) => Change::Ignored(IgnoreReason::RemovedByWriter),
                    None => Change::Ignored(IgnoreReason::RemovedUncounted),
                }
            }
            Some(_) => Change::Ignored(IgnoreReason::OtherItem),
            None => return Err(fail("REMOVE without an OldImage type".into())),
        },
        other => return Err(fail(format!("unknown event name {other:?}"))),
    };
    Ok(Decoded {
        sequence,
        created: *approximate_creation_date_time,
        change,
    })
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
    use crate::keys::Ksuid;
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
            "2lPNkfHnGyd3WnfyeBX4bRb3X2c".parse::<Ksuid>().unwrap()
        );
        let removed = change_of(record("REMOVE", None, Some(like(Some("projector")))));
        assert_eq!(removed, Change::LikeRemoved(added));
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
            RemovedUncounted
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
