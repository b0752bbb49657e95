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
pub fn deleted_json(key: &Key, existed: bool) -> Value {
    json!({ "key": key.to_string(), "deleted": existed })
}

/// `{"matched", "deleted", "batches"}` (a dry run: `{"matched", "dry_run": true}`): what a
/// delete by query did.
pub fn deleted_by_query_json(done: &crate::face::DeletedByQuery, dry_run: bool) -> Value {
    if dry_run {
        json!({ "matched": done.matched, "dry_run": true })
    } else {
        json!({ "matched": done.matched, "deleted": done.deleted, "batches": done.batches })
    }
}

/// The names of the kinds a `schema` answer declares.
pub fn declared_kinds(schema: &Value) -> Vec<String> {
    schema["kinds"]
        .as_array()
        .map(|kinds| {
            kinds
                .iter()
                .filter_map(|kind| kind["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One row per composite index of a `schema` answer: `{"kind", "index", "columns"}`, the
/// columns as `a,-b` (`-`: descending), as indexes are named in messages.
pub fn index_rows(schema: &Value) -> Vec<Value> {
    let mut rows = Vec::new();
    for kind in schema["kinds"].as_array().into_iter().flatten() {
        for index in kind["indexes"].as_array().into_iter().flatten() {
            let columns: Vec<&str> = index["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["property"].as_str())
                .collect();
            rows.push(json!({
                "kind": kind["kind"],
                "index": index["name"],
                "properties": columns.join(", "),
            }));
        }
    }
    rows
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
