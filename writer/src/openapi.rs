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
