//! `bench engine`: how the local engine's write rate holds up as a table's stream grows.
//! Clients write conditional puts and 10-item transactions (the shapes of the writer's and the
//! projector's writes) to a table with a stream, on an engine of its own, and the rate of each
//! window is printed: flat means a write costs the same however long the stream is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use bench::{LocalInstance, TestTable};

#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of writing in all.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Seconds per reported window.
    #[arg(long, default_value_t = 5)]
    window_secs: u64,
    /// Run the engine without its stream indexes, as dynoxide comes.
    #[arg(long)]
    no_stream_indexes: bool,
}

/// Write for `secs`; print and return each window's operations per second.
pub async fn run(args: EngineArgs) -> Vec<f64> {
    let flags: &[&str] = if args.no_stream_indexes {
        &["--no-stream-indexes"]
    } else {
        &[]
    };
    let engine = LocalInstance::with_flags(flags);
    let table = Arc::new(TestTable::on(&engine.endpoint()).await);
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(args.secs);
    let clients: Vec<_> = (0..args.clients)
        .map(|client| {
            let (table, done) = (table.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    n += 1;
                    let key = |i: u64| format!("C{client}#{n}#{i}");
                    if n.is_multiple_of(2) {
                        table
                            .client
                            .put_item()
                            .table_name(&table.name)
                            .set_item(Some(item(&key(0))))
                            .condition_expression("attribute_not_exists(PK)")
                            .send()
                            .await
                            .expect("a conditional put");
                    } else {
                        let puts = (0..10).map(|i| {
                            let put = Put::builder()
                                .table_name(&table.name)
                                .set_item(Some(item(&key(i))))
                                .build()
                                .expect("a put");
                            TransactWriteItem::builder().put(put).build()
                        });
                        table
                            .client
                            .transact_write_items()
                            .set_transact_items(Some(puts.collect()))
                            .send()
                            .await
                            .expect("a transaction");
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut rates = Vec::new();
    let mut before = 0;
    for window in 1..=args.secs / args.window_secs {
        tokio::time::sleep(Duration::from_secs(args.window_secs)).await;
        let now = done.load(Ordering::Relaxed);
        let rate = (now - before) as f64 / args.window_secs as f64;
        before = now;
        println!("window {window}: {rate:.0} writes/s ({now} so far)");
        rates.push(rate);
    }
    for client in clients {
        client.await.expect("a client");
    }
    rates
}

fn item(key: &str) -> std::collections::HashMap<String, AttributeValue> {
    [
        ("PK", AttributeValue::S(key.into())),
        ("SK", AttributeValue::S(key.into())),
        ("type", AttributeValue::S("Load".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
