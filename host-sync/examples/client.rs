//! The seed's `client.py`, with the blocking host: the call goes
//! `ds::Datastore::get` -> guest model logic -> `ds` transport `get` (blocking).
//!
//! Each line comes from where the seed printed it: the host API, the guest (through the
//! logging import), the host's transport, and this program. The first three are `tracing`
//! events, printed here as bare messages.

use std::sync::Arc;

use anyhow::Context as _;
use ds::store::MemoryStore;
use ds::{Datastore, Entity, Key};
use tracing_subscriber::fmt::format::debug_fn;

fn main() -> anyhow::Result<()> {
    let db = Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()?;
    let key = Key::name("Model", "my_key");
    // Store the model first, before the call path is printed.
    db.put(&Entity::new(key.clone()))?;

    tracing_subscriber::fmt()
        .with_env_filter("ds::api=debug,ds::guest=debug,ds::transport=debug")
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
        .get(&key)?
        .context("the model was stored, but get found nothing")?;
    let name = model
        .key
        .leaf()
        .map(|element| element.id.to_string())
        .unwrap_or_default();
    println!("Got a model with key={name}");
    Ok(())
}
