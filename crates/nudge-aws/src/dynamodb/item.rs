//! Reading and writing item attributes: typed getters that turn a malformed item into
//! `StoreError::Corrupt` instead of a panic, and serde conversions of domain records.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use nudge_service::ports::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One DynamoDB item.
pub(super) type Item = HashMap<String, AttributeValue>;

/// A string attribute value.
pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub(super) fn n(value: impl Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string attribute, required.
pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        other => Err(malformed(item, name, "a string", other)),
    }
}

/// A number attribute, required.
pub(super) fn get_n<T: FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    get_opt_n(item, name)?.ok_or_else(|| malformed(item, name, "a number", None))
}

/// A number attribute that may be absent.
pub(super) fn get_opt_n<T: FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| malformed(item, name, "a number in range", item.get(name))),
        other => Err(malformed(item, name, "a number", other)),
    }
}

/// A binary attribute that may be absent.
pub(super) fn get_opt_b<'a>(item: &'a Item, name: &str) -> Result<Option<&'a [u8]>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::B(v)) => Ok(Some(v.as_ref())),
        other => Err(malformed(item, name, "binary", other)),
    }
}

/// A string attribute that may be absent.
pub(super) fn get_opt_s<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        other => Err(malformed(item, name, "a string", other)),
    }
}

/// The attributes of a record (fields set to `None` are left out, so that
/// `if_not_exists` and `attribute_exists` see them as absent).
pub(super) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(value)
        .map_err(|e| StoreError::Corrupt(format!("record not storable: {e}")))?;
    item.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
    Ok(item)
}

/// A record from an item's attributes (attributes the record does not have are ignored).
pub(super) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    let key = describe_key(&item);
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
        .map_err(|e| StoreError::Corrupt(format!("item {key}: {e}")))
}

fn malformed(
    item: &Item,
    name: &str,
    expected: &str,
    found: Option<&AttributeValue>,
) -> StoreError {
    let found = match found {
        None => "nothing".to_string(),
        Some(v) => format!("{v:?}").chars().take(80).collect(),
    };
    StoreError::Corrupt(format!(
        "item {}: attribute `{name}` should be {expected}, found {found}",
        describe_key(item)
    ))
}

/// `pk/sk` of an item, for error messages.
fn describe_key(item: &Item) -> String {
    let key = |name| match item.get(name) {
        Some(AttributeValue::S(v)) => v.as_str(),
        _ => "?",
    };
    format!("{}/{}", key("pk"), key("sk"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    #[test]
    fn malformed_attributes_are_corrupt_not_panics() {
        let item: Item = [
            ("pk".to_string(), s("u#a")),
            ("sk".to_string(), s("state")),
            ("version".to_string(), s("seven")),
            ("big".to_string(), n("99999999999999999999999")),
            ("state".to_string(), AttributeValue::B(Blob::new(vec![1]))),
        ]
        .into_iter()
        .collect();
        for result in [
            get_n::<u64>(&item, "version").map(|_| ()),
            get_n::<u64>(&item, "big").map(|_| ()),
            get_n::<u64>(&item, "missing").map(|_| ()),
            get_s(&item, "state").map(|_| ()),
            get_opt_b(&item, "pk").map(|_| ()),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
            assert!(err.to_string().contains("u#a/state"), "{err}");
        }
        assert_eq!(get_opt_b(&item, "state").unwrap(), Some(&[1u8][..]));
        assert_eq!(get_opt_n::<u64>(&item, "missing").unwrap(), None);
    }

    #[test]
    fn none_fields_are_left_out() {
        #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
        struct R {
            a: Option<i64>,
            b: i64,
        }
        let item = to_item(&R { a: None, b: 2 }).unwrap();
        assert!(!item.contains_key("a"));
        assert_eq!(from_item::<R>(item).unwrap(), R { a: None, b: 2 });
    }
}
