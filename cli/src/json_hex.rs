//! `--json` gives every id and key in hex. Some library types keep them as bytes (as their
//! vault records store them: a release notice's `conversation` and `trustee_keys`), which serde
//! writes as arrays of numbers; [`ids_in_hex`] rewrites those fields of a JSON value.

use serde_json::Value;

/// The fields that hold an id or a key, or a list of them, wherever they occur.
const ID_FIELDS: &[&str] = &["conversation", "trustee_keys"];

/// Rewrites, anywhere in `v`, each [`ID_FIELDS`] field that is an array of bytes (or a list of
/// them) as hex.
pub(crate) fn ids_in_hex(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if ID_FIELDS.contains(&k.as_str()) {
                    to_hex(x);
                } else {
                    ids_in_hex(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(ids_in_hex),
        _ => {}
    }
}

/// `v` in hex if it is an array of bytes; each element so if it is a list.
fn to_hex(v: &mut Value) {
    if let Some(bytes) = as_bytes(v) {
        *v = Value::String(hex::encode(bytes));
    } else if let Value::Array(a) = v {
        a.iter_mut().for_each(to_hex);
    }
}

/// The bytes of a non-empty JSON array of numbers 0–255.
fn as_bytes(v: &Value) -> Option<Vec<u8>> {
    let a = v.as_array().filter(|a| !a.is_empty())?;
    a.iter()
        .map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_arrays_become_hex_and_the_rest_stays() {
        let mut v = serde_json::json!({
            "releases": [{"conversation": [1, 2, 255], "trustee_keys": [[0, 16]], "indexes": [1, 2]}],
            "conversation": "ab12",
        });
        ids_in_hex(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "releases": [{"conversation": "0102ff", "trustee_keys": ["0010"], "indexes": [1, 2]}],
                "conversation": "ab12",
            })
        );
    }
}
