//! Handlers, one module per resource. Each parses its input, calls the store, and shapes the
//! answer; the rules live in `contracts` and the I/O in [`crate::store`].

use contracts::items::Entity;

use crate::AppState;
use crate::extract::PageRequest;
use crate::problem::ApiError;
use crate::store::Collection;

pub(crate) mod likes;
pub(crate) mod posts;
pub(crate) mod topics;
pub(crate) mod users;

/// One page of a collection and the cursor for the next, checking the given cursor first.
async fn page<E: Entity>(
    app: &AppState,
    collection: Collection,
    request: &PageRequest,
) -> Result<(Vec<E>, Option<String>), ApiError> {
    let scope = collection.scope();
    let resume = request
        .cursor
        .as_deref()
        .map(|cursor| app.cursors.decode(&scope, cursor))
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let page = app.store.page(&collection, request.limit, resume).await?;
    let next = page.resume.map(|key| app.cursors.encode(&scope, &key));
    Ok((page.items, next))
}
