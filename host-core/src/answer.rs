//! The JSON shapes of results, written once for the command line (`ds-cli`) and the HTTP
//! API (`ads serve`), so both print the same bytes for the same answer.

use serde_json::{Value, json};

use crate::{Entity, Key, QueryPage, Receipt};

/// An entity as one JSON object: `{"key": "...", "properties": {...}}` (typed JSON).
pub fn entity_json(entity: &Entity) -> Value {
    json!({ "key": entity.key.to_string(), "properties": entity.to_json_object() })
}

/// `{"key"}`: what a put wrote.
pub fn key_json(key: &Key) -> Value {
    json!({ "key": key.to_string() })
}

/// `{"key", "deleted": true}`: what a delete removed.
pub fn deleted_json(key: &Key) -> Value {
    json!({ "key": key.to_string(), "deleted": true })
}

/// `{"kind", "first", "last"}`: the ids `allocate-ids` reserved (`count` ≥ 1).
pub fn allocated_json(kind: &str, first: u64, count: u64) -> Value {
    json!({ "kind": kind, "first": first, "last": first + (count - 1) })
}

/// `{"account", "balance"}`: the balance after a deposit.
pub fn balance_json(account: &Key, balance: i64) -> Value {
    json!({ "account": account.to_string(), "balance": balance })
}

/// `{"transfer", "source_balance", "destination_balance"}`: a transfer's receipt.
pub fn receipt_json(receipt: &Receipt) -> Value {
    json!({
        "transfer": receipt.transfer.to_string(),
        "source_balance": receipt.source_balance,
        "destination_balance": receipt.destination_balance,
    })
}

/// The results of a query page: entities, or `{"key"}` objects when keys-only.
pub fn query_rows(page: &QueryPage) -> Vec<Value> {
    if page.entities.is_empty() {
        page.keys.iter().map(key_json).collect()
    } else {
        page.entities.iter().map(entity_json).collect()
    }
}
