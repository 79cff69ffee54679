//! The writer binary on a real Lambda runtime (cargo-lambda's emulator), answering API Gateway
//! HTTP API events made from AWS's own sample: the caller is the JWT subject, a write without
//! claims is 401 even with the dev header, and problems name API Gateway's request id.

use bench::TestTable;
use bench::lambda_runtime::{RuntimeEmulator, sample_event};
use serde_json::{Value, json};

/// AWS's sample HTTP API (payload 2.0) event with a JWT authorizer, as `method path` with
/// `body`, the authorizer's claims replaced by `claims` (none: no authorizer at all).
fn http_event(method: &str, path: &str, body: Option<Value>, claims: Option<Value>) -> Value {
    let mut event = sample_event("example-apigw-v2-request-jwt-authorizer.json");
    event["routeKey"] = json!(format!("{method} {path}"));
    event["rawPath"] = json!(path);
    event["rawQueryString"] = json!("");
    event
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["headers"] = json!({"content-type": "application/json", "x-user-id": "mallory"});
    event["body"] = body.map_or(Value::Null, |b| json!(b.to_string()));
    match claims {
        Some(claims) => event["requestContext"]["authorizer"]["jwt"]["claims"] = claims,
        None => {
            event["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
        }
    }
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_on_a_real_runtime_takes_the_caller_from_the_authorizer_only() {
    let table = TestTable::new().await;
    let emulator = RuntimeEmulator::start();
    let _function = emulator.start_function(
        env!("CARGO_BIN_EXE_writer"),
        &table,
        &[("CURSOR_SECRET", "a secret")],
    );
    let profile = json!({"displayName": "Jay"});

    let signed_in = http_event(
        "PUT",
        "/users/me",
        Some(profile.clone()),
        Some(json!({"sub": "jay"})),
    );
    let answer = emulator.invoke(&signed_in).await.unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let user: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(user["userId"], "jay", "the JWT subject, not the dev header");

    let anonymous = http_event("PUT", "/users/me", Some(profile), None);
    let answer = emulator.invoke(&anonymous).await.unwrap();
    assert_eq!(answer["statusCode"], 401, "{answer}");
    let problem: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        problem["instance"], "urn:publishing:request:id",
        "API Gateway's request id"
    );

    let unknown = http_event("GET", "/my/path", None, None);
    let answer = emulator.invoke(&unknown).await.unwrap();
    assert_eq!(answer["statusCode"], 404, "{answer}");
}
