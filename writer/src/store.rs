//! The writer's DynamoDB access: thin I/O over the keys and items of `contracts`.
//!
//! Stream mode appends only: a like is one conditional `PutItem` without GSI1 keys, an unlike
//! one conditional `DeleteItem`. Transactional mode (the baseline) writes the like, already in
//! the view and marked `countedBy = writer`, together with `ADD likeCount 1` in one
//! `TransactWriteItems`.
//!
//! Whoever counted a like owns its decrement: a delete of a writer-counted like always goes
//! with `ADD likeCount -1` in one transaction (in either mode), and every other delete is
//! plain, left to the projector, which decrements only likes it counted itself. So both modes
//! can run on one table and every like is counted once.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, TransactWriteItem};
use contracts::counting;
use contracts::dynamo::{Backoff, Failure, is_condition_failed};
use contracts::items::{Entity, Item, Like, key_item};
use contracts::keys::{self, ItemKey, PostId, TopicSlug, UserId, prefix};

use crate::decide::{Delete, Deleted, LikeOutcome, Unlike};
use crate::error::Error;

/// The answer to a failed call, for the HTTP layer: retryable failures are "unavailable".
fn unavailable_or_internal(failure: Failure) -> Error {
    if failure.is_transient() {
        Error::Unavailable(failure.describe())
    } else {
        Error::Internal(failure.describe())
    }
}

fn classify<E, R>(err: aws_sdk_dynamodb::error::SdkError<E, R>) -> Error
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::fmt::Debug + 'static,
    R: std::fmt::Debug,
{
    unavailable_or_internal(Failure::of(&err))
}

fn decode<E: Entity>(item: Item) -> Result<E, Error> {
    E::from_item(item).map_err(|e| Error::Internal(format!("unreadable item: {e}")))
}

/// An item collection that the API pages through.
#[derive(Debug, Clone)]
pub(crate) enum Collection {
    /// A topic's posts, newest first (base table).
    TopicPosts(TopicSlug),
    /// The users who liked a post, by user id (GSI1: stamped likes only), over the post's
    /// view shards.
    PostLikers { post: PostId, view_shards: u32 },
    /// The posts a user liked, newest post first (base table).
    UserLikes(UserId),
}

impl Collection {
    /// What a cursor is bound to: a cursor of one collection is refused by any other.
    pub(crate) fn scope(&self) -> String {
        match self {
            Collection::TopicPosts(t) => format!("base|{}", keys::topic_partition(t)),
            Collection::PostLikers { post, .. } => {
                format!("gsi1|{}", keys::post_view_partition(post))
            }
            Collection::UserLikes(u) => format!("base|{}", keys::user_partition(u)),
        }
    }
}

/// The key DynamoDB gave to resume a query after the last item of a page.
pub(crate) type ResumeKey = HashMap<String, String>;

/// One page of a query.
#[derive(Debug)]
pub(crate) struct Page<E> {
    pub items: Vec<E>,
    pub resume: Option<ResumeKey>,
}

/// Retries of transactions that lose a conflict on a hot counter: short pauses, since a
/// client waits for the answer, and enough of them (about 5 s in all, inside
/// [`crate::REQUEST_BUDGET`]) that the likes of a viral post wait their turn on its counter
/// rather than fail: in the transactional design every like of a post commits on its post item
/// one after another, and each conflict cancels all but one of the contenders.
const TRANSACTION_BACKOFF: Backoff = Backoff {
    attempts: 36,
    base: std::time::Duration::from_millis(5),
    cap: std::time::Duration::from_millis(200),
};

/// The table, as the writer sees it.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    /// The store of `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Read one entity; `consistent` for reads that must see a write just acknowledged.
    pub(crate) async fn get<E: Entity>(
        &self,
        key: &ItemKey,
        consistent: bool,
    ) -> Result<Option<E>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(decode).transpose()
    }

    /// Write an entity unless an item with its key exists; `false` if one did.
    pub(crate) async fn put_new<E: Entity>(&self, entity: &E) -> Result<bool, Error> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entity.to_item()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK);
        let result = retry_conflicts(|| put.clone().send()).await;
        match result.map_err(|e| Failure::of(&e)) {
            Ok(_) => Ok(true),
            Err(Failure::ConditionFailed) => Ok(false),
            Err(failure) => Err(unavailable_or_internal(failure)),
        }
    }

    /// Write an entity, replacing any item with its key.
    pub(crate) async fn put<E: Entity>(&self, entity: &E) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entity.to_item()))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// One page of a collection, resuming after `resume`.
    pub(crate) async fn page<E: Entity>(
        &self,
        collection: &Collection,
        limit: u16,
        resume: Option<ResumeKey>,
    ) -> Result<Page<E>, Error> {
        let (pk, sk_prefix) = match collection {
            Collection::TopicPosts(t) => (keys::topic_partition(t), prefix::POSTS),
            Collection::UserLikes(u) => (keys::user_partition(u), prefix::LIKES),
            Collection::PostLikers { post, view_shards } => {
                return self.likers_page(post, *view_shards, limit, resume).await;
            }
        };
        let start = resume.map(|key| {
            key.into_iter()
                .map(|(k, v)| (k, AttributeValue::S(v)))
                .collect::<Item>()
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":prefix", AttributeValue::S(sk_prefix.to_owned()))
            .scan_index_forward(false)
            .limit(i32::from(limit))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(decode)
            .collect::<Result<Vec<E>, _>>()?;
        let resume = out.last_evaluated_key.map(|key| {
            key.into_iter()
                .filter_map(|(k, v)| match v {
                    AttributeValue::S(s) => Some((k, s)),
                    _ => None,
                })
                .collect()
        });
        Ok(Page { items, resume })
    }

    /// One page of a post's likers: its view shards read concurrently from after the cursor's
    /// user id, merged by user id, the first `limit` taken. A like is in one shard and the
    /// cursor (the last user id given) only moves forward, so paging gives every like in the
    /// view once, also while the shard count grows.
    ///
    /// A shard whose query is throttled is asked again ([`SHARD_READ_BACKOFF`], within the
    /// request budget) rather than left out: a page without one shard's likers would move the
    /// cursor past them, and they would never be listed.
    async fn likers_page<E: Entity>(
        &self,
        post: &PostId,
        view_shards: u32,
        limit: u16,
        resume: Option<ResumeKey>,
    ) -> Result<Page<E>, Error> {
        let after = resume.and_then(|mut key| key.remove(keys::GSI1SK));
        let from = after.clone().unwrap_or_else(|| prefix::LIKES.to_owned());
        // The cursor's own like comes back (BETWEEN is inclusive): one more each.
        let per_shard = i32::from(limit) + 1;
        let shards = (0..view_shards.max(1)).map(|k| {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", keys::GSI1PK)
                .expression_attribute_names("#sk", keys::GSI1SK)
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(keys::post_view_shard(post, k)),
                )
                .expression_attribute_values(":from", AttributeValue::S(from.clone()))
                .expression_attribute_values(":to", AttributeValue::S(prefix::LIKES_END.to_owned()))
                .limit(per_shard);
            async move {
                let policy = SHARD_READ_BACKOFF;
                for attempt in 1.. {
                    match query.clone().send().await {
                        Ok(page) => {
                            return Ok(ShardPage {
                                items: page.items.unwrap_or_default(),
                                more: page.last_evaluated_key.is_some(),
                            });
                        }
                        Err(e) => {
                            let failure = Failure::of(&e);
                            if !(failure.is_transient() && policy.may_retry(attempt)) {
                                return Err(unavailable_or_internal(failure));
                            }
                            tracing::warn!(shard = k, error = %failure.describe(), "a likers view shard was not read; asking again");
                            policy.wait(attempt).await;
                        }
                    }
                }
                unreachable!("the loop returns on its last attempt")
            }
        });
        let pages = futures_util::future::try_join_all(shards).await?;
        let (likers, resume) = merge_likers(pages, after.as_deref(), usize::from(limit));
        let items = likers
            .into_iter()
            .map(decode)
            .collect::<Result<Vec<E>, _>>()?;
        let resume = resume.map(|user| ResumeKey::from([(keys::GSI1SK.to_owned(), user)]));
        Ok(Page { items, resume })
    }

    /// Stream mode: append the like (no GSI1 keys, not counted). The projector counts it.
    pub(crate) async fn append_like(&self, like: &Like) -> Result<LikeOutcome, Error> {
        debug_assert!(like.counted_by.is_none());
        Ok(if self.put_new(like).await? {
            LikeOutcome::Created
        } else {
            LikeOutcome::AlreadyLiked
        })
    }

    /// Transactional mode: the like, in view shard `shard` and marked counted, plus
    /// `ADD likeCount 1`.
    pub(crate) async fn like_and_count(
        &self,
        like: &Like,
        shard: u32,
    ) -> Result<LikeOutcome, Error> {
        let put = counting::put_counted_like(like, shard)
            .to_put(&self.table)
            .map_err(internal)?;
        let count = self.counter_update(&like.topic, like.post_id, 1)?;
        let actions = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        Ok(match self.transact(actions).await? {
            None => LikeOutcome::Created,
            Some(reasons) => LikeOutcome::of_cancelled(failed(&reasons, 0)),
        })
    }

    /// Remove the caller's like; `true` if there was one. `counted_first` tries the
    /// transactional decrement first (transactional mode), else the plain delete first.
    pub(crate) async fn unlike(
        &self,
        topic: &TopicSlug,
        user: &UserId,
        post: PostId,
        counted_first: bool,
    ) -> Result<bool, Error> {
        let mut unlike = Unlike::new(counted_first);
        while let Some(delete) = unlike.next() {
            let deleted = match delete {
                Delete::Counted => self.delete_counted(topic, user, post).await?,
                Delete::Uncounted => self.delete_uncounted(user, post).await?,
            };
            if let Some(removed) = unlike.found(deleted) {
                return Ok(removed);
            }
        }
        Err(Error::Unavailable(
            "unlike kept racing with re-likes".into(),
        ))
    }

    /// Delete a like that the writer did not count; the projector owns its decrement.
    async fn delete_uncounted(&self, user: &UserId, post: PostId) -> Result<Deleted, Error> {
        let delete =
            counting::delete_not_writer_counted(user, post).delete_item(&self.client, &self.table);
        let result = retry_conflicts(|| delete.clone().send()).await;
        match result {
            Ok(_) => Ok(Deleted::Yes),
            Err(e) => {
                let present = match e.as_service_error() {
                    Some(DeleteItemError::ConditionalCheckFailedException(failed)) => {
                        Some(failed.item().is_some_and(|item| !item.is_empty()))
                    }
                    _ => None,
                };
                present
                    .map(Deleted::of_failed_condition)
                    .ok_or_else(|| classify(e))
            }
        }
    }

    /// Delete a writer-counted like together with its decrement.
    async fn delete_counted(
        &self,
        topic: &TopicSlug,
        user: &UserId,
        post: PostId,
    ) -> Result<Deleted, Error> {
        let delete = counting::delete_writer_counted(user, post)
            .to_delete(&self.table)
            .map_err(internal)?;

        let count = self.counter_update(topic, post, -1)?;
        let actions = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        Ok(match self.transact(actions).await? {
            None => Deleted::Yes,
            Some(reasons) => {
                let like_failed = failed(&reasons, 0)
                    .then(|| reasons[0].item().is_some_and(|item| !item.is_empty()));
                Deleted::of_cancelled_counted(like_failed)
            }
        })
    }

    fn counter_update(
        &self,
        topic: &TopicSlug,
        post: PostId,
        by: i64,
    ) -> Result<aws_sdk_dynamodb::types::Update, Error> {
        counting::move_counter(topic, post, by)
            .to_update(&self.table)
            .map_err(internal)
    }

    /// Run a transaction, retrying conflicts and throttling as [`TRANSACTION_BACKOFF`] says.
    /// `Ok(None)` when it committed, `Ok(Some(reasons))` when a condition cancelled it.
    async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<CancellationReason>>, Error> {
        let policy = TRANSACTION_BACKOFF;
        for attempt in 1.. {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
                .await;
            let failure = match result {
                Ok(_) => return Ok(None),
                Err(err) => Failure::of(&err),
            };
            match failure {
                Failure::Cancelled(reasons) if reasons.iter().any(is_condition_failed) => {
                    return Ok(Some(reasons));
                }
                f if f.is_transient() && policy.may_retry(attempt) => policy.wait(attempt).await,
                f => return Err(unavailable_or_internal(f)),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}

/// Retries of a likers view shard's query that failed transiently (throttled, say): the SDK's
/// own attempts first, then these; the request budget bounds them all.
const SHARD_READ_BACKOFF: Backoff = Backoff {
    attempts: 6,
    base: std::time::Duration::from_millis(50),
    cap: std::time::Duration::from_millis(800),
};

/// What one view shard's query gave.
#[derive(Debug, Default)]
struct ShardPage {
    items: Vec<Item>,
    /// The shard has more after these.
    more: bool,
}

/// Merge the view shards' pages into one page of likers: by user id, after the cursor's user
/// id `after`, at most `limit`, and the user id to resume after when there is more.
///
/// A user id is listed once. GSI1 is updated after the table, so for a moment after an unlike
/// and a re-like that moved a liker between view shards, the old incarnation's entry may still
/// be in its shard beside the new one: the later incarnation (the greater `likeId`, a KSUID
/// that sorts by time) wins.
fn merge_likers(
    pages: Vec<ShardPage>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<Item>, Option<String>) {
    let text = |item: &Item, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut more = false;
    let mut likers: Vec<(String, String, Item)> = Vec::new();
    for page in pages {
        more |= page.more;
        for item in page.items {
            let user = text(&item, keys::GSI1SK);
            if Some(user.as_str()) != after {
                likers.push((user, text(&item, contracts::items::attr::LIKE_ID), item));
            }
        }
    }
    // By user id, the latest incarnation first; then one per user id.
    likers.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
    likers.dedup_by(|later, kept| later.0 == kept.0);
    more |= likers.len() > limit;
    likers.truncate(limit);
    let resume = more.then(|| likers.last().map(|l| l.0.clone())).flatten();
    (
        likers.into_iter().map(|(_, _, item)| item).collect(),
        resume,
    )
}

/// Send a single-item write again while a transaction holds its item: DynamoDB answers
/// `TransactionConflictException` until that transaction (the projector marking this very
/// like, say) ends, which takes milliseconds, so the caller need not see a 503.
async fn retry_conflicts<T, E, R, Fut>(
    mut send: impl FnMut() -> Fut,
) -> Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>
where
    Fut: std::future::Future<Output = Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>>,
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    let policy = TRANSACTION_BACKOFF;
    for attempt in 1.. {
        match send().await {
            Err(e)
                if aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e)
                    == Some("TransactionConflictException")
                    && policy.may_retry(attempt) =>
            {
                policy.wait(attempt).await;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns on its last attempt")
}

fn failed(reasons: &[CancellationReason], index: usize) -> bool {
    reasons.get(index).is_some_and(is_condition_failed)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}
