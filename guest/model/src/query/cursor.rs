//! Cursors: a position in a query's results, bound to that query by a fingerprint.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine as _;

use super::Query;
use super::plan::invalid;
use crate::encoding;
use crate::error::{Error, quote};
use crate::key::Key;
use crate::value;

pub(super) const CURSOR_VERSION: u8 = 1;

/// FNV-1a over what defines the result order and set (not limit, offset or cursors).
pub(super) fn fingerprint(query: &Query) -> u64 {
    let mut bytes = Vec::new();
    encoding::put_bytes(&mut bytes, query.namespace.as_bytes());
    encoding::put_bytes(&mut bytes, query.kind.as_deref().unwrap_or("").as_bytes());
    bytes.push(u8::from(query.kind.is_some()));
    encoding::put_bytes(
        &mut bytes,
        &query.ancestor.as_ref().map(Key::encode).unwrap_or_default(),
    );
    for filter in &query.filters {
        encoding::put_bytes(&mut bytes, filter.property.as_bytes());
        bytes.push(filter.op as u8);
        for v in filter.value.elements() {
            value::encode_index_value(v, &mut bytes);
        }
    }
    for order in &query.orders {
        encoding::put_bytes(&mut bytes, order.property.as_bytes());
        bytes.push(order.direction as u8);
    }
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(super) fn encode_cursor(fingerprint: u64, position: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(9 + position.len());
    bytes.push(CURSOR_VERSION);
    bytes.extend_from_slice(&fingerprint.to_be_bytes());
    bytes.extend_from_slice(position);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn decode_cursor(cursor: &str, fingerprint: u64) -> Result<Vec<u8>, Error> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| {
            invalid(format!(
                "cursor {} is not a ds cursor (bad base64url)",
                quote(cursor)
            ))
        })?;
    if bytes.len() < 9 || bytes[0] != CURSOR_VERSION {
        return Err(invalid(format!(
            "cursor {} is not a ds cursor",
            quote(cursor)
        )));
    }
    if bytes[1..9] != fingerprint.to_be_bytes() {
        return Err(invalid(
            "the cursor belongs to a different query (kind, ancestor, filters and orders must \
             be the same)"
                .into(),
        ));
    }
    Ok(bytes[9..].to_vec())
}
