//! Query strings with repeated keys (`messageIds=a&messageIds=b`), which
//! the SDKs send for arrays; comma-joined values are accepted too.

use qstash_core::clock::Millis;

use crate::ApiError;

#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        Self(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The keys present, in order, repeated keys repeated.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Every value of `key`, commas split, empties dropped.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect()
    }

    pub fn millis(&self, key: &str) -> Result<Option<Millis>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<Millis>().map_err(|_| {
                    ApiError::BadRequest(format!("{key} must be unix milliseconds, got {v:?}"))
                })
            })
            .transpose()
    }

    /// A count between 1 and `max`.
    pub fn count(&self, max: usize) -> Result<Option<usize>, ApiError> {
        self.get("count")
            .map(|v| match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!(
                    "count must be an integer from 1 to {max}, got {v:?}"
                ))),
            })
            .transpose()
    }
}
