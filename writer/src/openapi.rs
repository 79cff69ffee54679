//! The OpenAPI document, generated from the handlers' annotations. `writer/openapi.json` is
//! the committed copy (as deployed, JWT bearer auth); a test fails when it is stale. A local
//! server with the dev identity serves its own truth: the `jwt` scheme is the `x-user-id`
//! header there, so API fuzzers exercise the auth rules that server applies.

use axum::Json;
use axum::extract::State;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::identity::{DEV_USER_HEADER, IdentitySource};

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
    components(schemas(contracts::api::Problem)),
    modifiers(&JwtAuth),
    tags(
        (name = "topics"), (name = "posts"), (name = "likes"), (name = "users"),
    )
)]
/// The API document (`writer/openapi.json` is generated from it).
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

/// The document a server with this identity source answers to.
pub fn for_identity(identity: IdentitySource) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    if identity == IdentitySource::DevHeader {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                DEV_USER_HEADER,
                "Local development: the caller's user id, trusted as given.",
            ))),
        );
    }
    doc
}

/// `GET /openapi.json`.
pub async fn serve(State(app): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(for_identity(app.identity))
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
    fn every_schema_reference_resolves() {
        let doc = document();
        let value: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let schemas = &value["components"]["schemas"];
        let prefix = "\"#/components/schemas/";
        for (at, _) in doc.match_indices(prefix) {
            let name: String = doc[at + prefix.len()..]
                .chars()
                .take_while(|c| *c != '"')
                .collect();
            assert!(
                schemas.get(&name).is_some(),
                "{name} is referenced, not defined"
            );
        }
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
