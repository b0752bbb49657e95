//! The properties the fuzz targets (`fuzz/`) check, as plain functions: the targets call
//! them with generated input, and the unit tests below replay every input kept in
//! `fuzz/regressions/` (crashes once found, and edge cases), so a fixed bug stays fixed.
//! Each function panics when its property is broken.

use alloc::string::ToString;

use crate::entity::Entity;
use crate::key::Key;

/// Key text: parsing never panics; a parsed key prints to text that parses back to it.
pub fn key_parse(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = text.parse::<Key>() {
        let printed = key.to_string();
        assert_eq!(
            printed.parse::<Key>().as_ref(),
            Ok(&key),
            "{printed:?} does not parse back"
        );
    }
}

/// Transport key bytes (what crosses the component boundary as a `key`): decoding never
/// panics; what decodes re-encodes to the same bytes; and the in-place check of a `get`'s
/// key answers exactly as decoding and validating would.
pub fn key_codec(data: &[u8]) {
    if let Ok(key) = Key::decode(data) {
        assert_eq!(key.encode(), data, "{key:?} re-encodes differently");
        assert_eq!(key.encoded_len(), data.len());
    }
    let decoded = Key::from_encoded(data).and_then(|key| key.validate());
    assert_eq!(crate::key::check_encoded(data), decoded, "{data:?}");
}

/// JSON properties: conversion never panics; the direct reader agrees with the reference
/// wherever it reads; a valid entity round-trips through its stored form unchanged.
pub fn entity_json(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let key = Key::name("Fuzz", "k");
    let reference = Entity::from_json_reference(key.clone(), text);
    // The direct reader, where it reads, gives what the reference gives.
    if let Some((properties, unindexed)) = crate::typed_json::read_properties(text) {
        let direct = Entity {
            key: key.clone(),
            properties,
            unindexed,
        };
        assert_eq!(Ok(&direct), reference.as_ref(), "{text}");
    }
    // `decode` reads a stored value as the reference reads its text.
    let mut stored = alloc::vec![crate::entity::FORMAT_TYPED_JSON];
    stored.extend_from_slice(text.as_bytes());
    match (Entity::decode(key.clone(), &stored), &reference) {
        (Ok(decoded), Ok(entity)) => assert_eq!(&decoded, entity, "{text}"),
        (decoded, reference) => assert_eq!(decoded.is_ok(), reference.is_ok(), "{text}"),
    }
    let Ok(mut entity) = reference else {
        return;
    };
    if let Ok(stored) = entity.prepare(&crate::Schema::EMPTY) {
        assert_eq!(Entity::decode(key.clone(), &stored).as_ref(), Ok(&entity));
        // The canonical JSON reads back as the same entity.
        let again = Entity::from_json(key.clone(), &entity.properties_json());
        assert_eq!(again.as_ref(), Ok(&entity));
        // Index rows exist for it and all point back at it.
        let rows = crate::index::rows(&crate::Schema::EMPTY, &entity).unwrap_or_default();
        assert!(!rows.is_empty());
        for (_, value) in rows {
            assert_eq!(
                crate::index::row_entity_key(&value).ok().as_ref(),
                Some(&key)
            );
        }
    }
}

/// Query filter text (`prop OP value`): parsing never panics, and a parsed filter prints
/// as text that parses back to the same filter.
pub fn query_filter(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = crate::query::Filter::parse(text) else {
        return;
    };
    let printed = alloc::format!("{filter}");
    assert_eq!(
        crate::query::Filter::parse(&printed).as_ref(),
        Ok(&filter),
        "{printed}"
    );
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::path::Path;

    fn replay(target: &str, check: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions")
            .join(target);
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
        let mut replayed = 0;
        for entry in entries {
            let path = entry.expect("directory entry").path();
            check(&std::fs::read(&path).expect("readable input"));
            replayed += 1;
        }
        assert!(replayed > 0, "no inputs in {}", dir.display());
    }

    #[test]
    fn key_parse_regressions() {
        replay("key_parse", super::key_parse);
    }

    #[test]
    fn key_codec_regressions() {
        replay("key_codec", super::key_codec);
    }

    #[test]
    fn entity_json_regressions() {
        replay("entity_json", super::entity_json);
    }

    #[test]
    fn query_filter_regressions() {
        replay("query_filter", super::query_filter);
    }
}
