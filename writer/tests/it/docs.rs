//! The interactive API reference at /docs, opened in a real headless browser (Debian's
//! chromium, installed by scripts/browser.sh): every operation of the OpenAPI document is
//! listed, from assets served by the writer itself (no network).

use std::process::Command;

use bench::TestTable;
use serde_json::Value;
use writer::WriteMode;
use writer::identity::IdentitySource;

fn browser() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/browser.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run scripts/browser.sh");
    assert!(
        out.status.success(),
        "no browser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_lists_every_operation_in_a_browser() {
    let table = TestTable::new().await;
    let base = bench::app::serve_writer(&table, WriteMode::Stream, IdentitySource::DevHeader).await;
    let document: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let browser = browser();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{base}{}/", writer::DOCS_PATH);
    let dom = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=20000", "--dump-dom"])
            .arg(url)
            .output()
            .expect("run the browser")
    })
    .await
    .unwrap();
    let html = String::from_utf8_lossy(&dom.stdout);
    let mut operations = 0;
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            let tag = operation["tags"][0].as_str().unwrap();
            assert!(
                html.contains(&format!("id=\"operations-{tag}-{id}\"")),
                "{method} {path} ({id}) is not listed; the page was: {}",
                &html[..html.len().min(2000)]
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 10, "every operation of the document");
}
