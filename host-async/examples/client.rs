//! The seed's `client.py`, with the async host: the call goes
//! `ads::Datastore::get` -> guest model logic -> `ads` transport `get` (awaited).
//!
//! The guest logic is the very component the blocking example runs; only the host differs.

use std::sync::Arc;

use ads::store::MemoryStore;
use ads::{Datastore, Entity, Key};
use anyhow::Context as _;
use tracing_subscriber::fmt::format::debug_fn;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()
        .await?;
    let key = Key::name("Model", "my_key");
    // Store the model first, before the call path is printed.
    db.put(&Entity::new(key.clone())).await?;

    tracing_subscriber::fmt()
        .with_env_filter("ads::api=debug,ds::guest=debug,ads::transport=debug")
        .with_writer(std::io::stdout)
        .without_time()
        .with_level(false)
        .with_target(false)
        .fmt_fields(debug_fn(|out, field, value| match field.name() {
            "message" => write!(out, "{value:?}"),
            _ => Ok(()),
        }))
        .init();

    let model = db
        .get(&key)
        .await?
        .context("the model was stored, but get found nothing")?;
    let name = model
        .key
        .leaf()
        .map(|element| element.id.to_string())
        .unwrap_or_default();
    println!("Got a model with key={name}");
    Ok(())
}
