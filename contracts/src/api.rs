//! The HTTP API's request and response bodies (JSON, camelCase) and their validation rules.
//!
//! Requests refuse unknown fields. [`Validate`] holds the rules a well-formed body must still
//! meet (lengths); the writer answers a broken rule with 422 and names the field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::items;
use crate::keys::{PostId, TopicSlug, UserId};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Page size when `limit` is absent.
pub const DEFAULT_PAGE_SIZE: u16 = 20;
/// Largest accepted `limit`.
pub const MAX_PAGE_SIZE: u16 = 100;

/// A rule a field broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field, as named in JSON.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Rules on a well-formed request body.
pub trait Validate {
    /// The rules the value breaks; empty when it keeps them all.
    fn validate(&self) -> Result<(), Vec<FieldError>>;
}

fn check_chars(errors: &mut Vec<FieldError>, field: &str, value: &str, min: usize, max: usize) {
    let n = value.chars().count();
    if n < min || n > max {
        errors.push(FieldError {
            field: field.into(),
            message: format!("must be {min} to {max} characters, got {n}"),
        });
    }
}

fn check_bytes(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    if value.len() > max {
        errors.push(FieldError {
            field: field.into(),
            message: format!("must be at most {max} bytes, got {}", value.len()),
        });
    }
}

fn result(errors: Vec<FieldError>) -> Result<(), Vec<FieldError>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `PUT /topics/{topic}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTopic {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
}

impl Validate for CreateTopic {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_chars(&mut errors, "title", &self.title, 1, 200);
        result(errors)
    }
}

/// `PUT /users/me`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutProfile {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
    /// Up to 1,000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub bio: String,
}

impl Validate for PutProfile {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_chars(&mut errors, "displayName", &self.display_name, 1, 100);
        check_chars(&mut errors, "bio", &self.bio, 0, 1000);
        result(errors)
    }
}

/// `POST /topics/{topic}/posts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePost {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// Up to 8 KiB of UTF-8 (8,192 characters when all are ASCII).
    #[serde(default)]
    #[schema(max_length = 8192)]
    pub body: String,
}

impl Validate for CreatePost {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_chars(&mut errors, "title", &self.title, 1, 200);
        check_bytes(&mut errors, "body", &self.body, 8 * 1024);
        result(errors)
    }
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicView {
    /// The topic's id in paths.
    #[schema(value_type = String, pattern = "^[a-z0-9-]{1,64}$")]
    pub slug: TopicSlug,
    /// Its title.
    pub title: String,
    /// Who created it.
    #[schema(value_type = String)]
    pub created_by: UserId,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<items::Topic> for TopicView {
    fn from(t: items::Topic) -> Self {
        Self {
            slug: t.slug,
            title: t.title,
            created_by: t.created_by,
            created_at: t.created_at,
        }
    }
}

/// A post with its like count (eventually consistent in stream mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostView {
    /// The topic the post is in.
    #[schema(value_type = String)]
    pub topic: TopicSlug,
    /// The post's id (a KSUID: its text sorts by creation time).
    #[schema(value_type = String)]
    pub post_id: PostId,
    /// Who wrote it.
    #[schema(value_type = String)]
    pub author_id: UserId,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// How many users like it (exact, a moment behind the likes in stream mode).
    pub like_count: i64,
}

impl From<items::Post> for PostView {
    fn from(p: items::Post) -> Self {
        Self {
            topic: p.topic,
            post_id: p.post_id,
            author_id: p.author_id,
            title: p.title,
            body: p.body,
            created_at: p.created_at,
            like_count: p.like_count,
        }
    }
}

/// A user's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The user's id.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// The name shown for the user.
    pub display_name: String,
    /// A few words about the user.
    pub bio: String,
    /// When the profile last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<items::User> for UserView {
    fn from(u: items::User) -> Self {
        Self {
            user_id: u.user_id,
            display_name: u.display_name,
            bio: u.bio,
            updated_at: u.updated_at,
        }
    }
}

/// The answer to a like or an unlike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LikeState {
    /// The liked post's topic.
    #[schema(value_type = String)]
    pub topic: TopicSlug,
    /// The liked post.
    #[schema(value_type = String)]
    pub post_id: PostId,
    /// The caller.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// Whether the caller likes the post now.
    pub liked: bool,
    /// Whether this request changed anything (false for a repeat).
    pub changed: bool,
}

/// One page of a topic's posts, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostPage {
    /// The posts, newest first.
    pub posts: Vec<PostView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A user who liked a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Liker {
    /// Who liked the post.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// When.
    pub liked_at: DateTime<Utc>,
}

/// A post and one page of the users who liked it (ordered by user id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostLikers {
    /// The post.
    pub post: PostView,
    /// Its likers, by user id.
    pub likers: Vec<Liker>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A post a user liked, with its title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LikedPost {
    /// The liked post's topic.
    #[schema(value_type = String)]
    pub topic: TopicSlug,
    /// The liked post.
    #[schema(value_type = String)]
    pub post_id: PostId,
    /// Its title when it was liked.
    pub title: String,
    /// When it was liked.
    pub liked_at: DateTime<Utc>,
}

impl From<items::Like> for LikedPost {
    fn from(l: items::Like) -> Self {
        Self {
            topic: l.topic,
            post_id: l.post_id,
            title: l.title,
            liked_at: l.liked_at,
        }
    }
}

/// A user and one page of the posts they liked (newest post first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserLikes {
    /// The user.
    pub user: UserView,
    /// Posts the user liked, newest post first.
    pub likes: Vec<LikedPost>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An error, as RFC 9457 `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request this answers (`urn:publishing:request:<id>`; the id is also the
    /// `x-request-id` header and, deployed, API Gateway's request id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The fields that broke a rule (422 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_characters_and_bytes() {
        let ok = CreatePost {
            title: "é".repeat(200),
            body: "x".repeat(8 * 1024),
        };
        assert!(ok.validate().is_ok());
        let bad = CreatePost {
            title: String::new(),
            body: "é".repeat(4097),
        };
        let fields: Vec<_> = bad
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["title", "body"]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<CreatePost>(r#"{"title":"a","likeCount":5}"#);
        assert!(err.unwrap_err().to_string().contains("unknown field"));
    }
}
