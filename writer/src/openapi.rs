//! The OpenAPI document, generated from the handlers' annotations. `writer/openapi.json` is
//! the committed copy; a test fails when it is stale.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{likes, posts, topics, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Publishing API",
        description = "Topics, posts, users and likes. Like counts are projected from the \
                       table's stream: eventually consistent and exact."
    ),
    paths(
        topics::create,
        posts::create, posts::list, posts::get, posts::likers,
        likes::like, likes::unlike,
        users::put_me, users::get_me, users::get,
    ),
    modifiers(&JwtAuth),
    tags(
        (name = "topics"), (name = "posts"), (name = "likes"), (name = "users"),
    )
)]
pub struct ApiDoc;

struct JwtAuth;

impl Modify for JwtAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serializes")
        + "\n"
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        if std::env::var_os("UPDATE_CONTRACTS").is_some() {
            std::fs::write(path, document()).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == document(),
            "writer/openapi.json is stale: run `UPDATE_CONTRACTS=1 cargo test -p writer openapi`"
        );
    }

    #[test]
    fn every_route_is_documented() {
        let doc = ApiDoc::openapi();
        let paths: Vec<_> = doc.paths.paths.keys().map(String::as_str).collect();
        for path in [
            "/topics/{topic}",
            "/topics/{topic}/posts",
            "/topics/{topic}/posts/{post}",
            "/topics/{topic}/posts/{post}/likes",
            "/topics/{topic}/posts/{post}/like",
            "/users/me",
            "/users/{user}",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
    }
}
