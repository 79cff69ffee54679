//! Where the local engine departs from DynamoDB in something the project relies on, worked
//! around here, in the test bed, never in production code (each departure is written up in
//! docs/local-engine.md).
//!
//! - **A TTL removal's `userIdentity`**: the Streams API names its members `Type` and
//!   `PrincipalId` (API reference, `Identity`); dynoxide writes `type` and `principalId`, so
//!   the SDK reads neither and a TTL removal looks like a user's delete. [`StreamsIdentity`]
//!   renames them in `GetRecords` answers before the SDK reads them.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use aws_sdk_dynamodbstreams::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_dynamodbstreams::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_types::body::SdkBody;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use serde_json::Value;

/// Renames a TTL removal's identity members to DynamoDB's in `GetRecords` answers.
#[derive(Debug)]
pub struct StreamsIdentity;

impl Intercept for StreamsIdentity {
    fn name(&self) -> &'static str {
        "StreamsIdentity"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodbstreams::error::BoxError> {
        let body = context.response_mut().body_mut();
        let inner = std::mem::replace(body, SdkBody::taken());
        *body = SdkBody::from_body_1_x(Rewritten {
            inner: Some(inner),
            read: BytesMut::new(),
        });
        Ok(())
    }
}

/// `client` with the engine's departures worked around.
pub fn streams_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodbstreams::Client {
    let config = aws_sdk_dynamodbstreams::config::Builder::from(config)
        .interceptor(StreamsIdentity)
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
}

/// A body read whole, then handed on with its records' identities renamed.
struct Rewritten {
    inner: Option<SdkBody>,
    read: BytesMut,
}

impl Body for Rewritten {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match ready!(Pin::new(&mut *inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.read.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.inner = None;
                    let read = std::mem::take(&mut this.read).freeze();
                    return Poll::Ready(Some(Ok(Frame::data(renamed(read)))));
                }
            }
        }
    }
}

/// The answer with every record's `userIdentity` members named as DynamoDB names them.
fn renamed(answer: Bytes) -> Bytes {
    let Ok(mut json) = serde_json::from_slice::<Value>(&answer) else {
        return answer;
    };
    let Some(records) = json.get_mut("Records").and_then(Value::as_array_mut) else {
        return answer;
    };
    for identity in records
        .iter_mut()
        .filter_map(|r| r.get_mut("userIdentity")?.as_object_mut())
    {
        for (from, to) in [("type", "Type"), ("principalId", "PrincipalId")] {
            if let Some(value) = identity.remove(from) {
                identity.insert(to.into(), value);
            }
        }
    }
    serde_json::to_vec(&json).map_or(answer, Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_renamed_and_nothing_else_moves() {
        let answer = serde_json::json!({
            "NextShardIterator": "i",
            "Records": [
                {"eventName": "REMOVE", "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}},
                {"eventName": "INSERT"}
            ]
        });
        let out: Value = serde_json::from_slice(&renamed(Bytes::from(answer.to_string()))).unwrap();
        assert_eq!(
            out["Records"][0]["userIdentity"],
            serde_json::json!({"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"})
        );
        assert_eq!(out["Records"][1], answer["Records"][1]);
        assert_eq!(out["NextShardIterator"], "i");
        assert_eq!(renamed(Bytes::from_static(b"not json")), "not json");
    }
}
