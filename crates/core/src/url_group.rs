//! URL groups (called topics on the wire): a named set of endpoints; a
//! publish to the group becomes one message per endpoint.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::destination::{validate_url, DestinationError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Omitted when none was given: the JS SDK compares `{name, url}`
    /// objects exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub url: String,
}

/// Which endpoints to remove: any with this url, or this name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EndpointRef {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("endpoints must not be empty")]
    Empty,
    #[error("endpoint {0}: {1}")]
    BadUrl(usize, DestinationError),
    #[error("endpoint {0}: give its url or its name")]
    NoSelector(usize),
}

/// Validates endpoints to add; an empty name counts as none.
pub fn validate_endpoints(endpoints: Vec<Endpoint>) -> Result<Vec<Endpoint>, EndpointError> {
    if endpoints.is_empty() {
        return Err(EndpointError::Empty);
    }
    endpoints
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.url = e.url.trim().to_string();
            validate_url(&e.url).map_err(|err| EndpointError::BadUrl(i, err))?;
            e.name = e.name.filter(|n| !n.trim().is_empty());
            Ok(e)
        })
        .collect()
}

pub fn validate_refs(refs: &[EndpointRef]) -> Result<(), EndpointError> {
    if refs.is_empty() {
        return Err(EndpointError::Empty);
    }
    for (i, r) in refs.iter().enumerate() {
        let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if !given(&r.name) && !given(&r.url) {
            return Err(EndpointError::NoSelector(i));
        }
    }
    Ok(())
}

/// Adds endpoints, or updates the one with the same url (its name), or
/// else the one with the same name (its url).
pub fn upsert_endpoints(group: &mut Vec<Endpoint>, new: Vec<Endpoint>) {
    for e in new {
        if let Some(old) = group.iter_mut().find(|o| o.url == e.url) {
            if e.name.is_some() {
                old.name = e.name;
            }
        } else if let Some(old) = group
            .iter_mut()
            .find(|o| e.name.is_some() && o.name == e.name)
        {
            old.url = e.url;
        } else {
            group.push(e);
        }
    }
}

/// Removes every endpoint matching a ref by name or url; answers how many.
pub fn remove_endpoints(group: &mut Vec<Endpoint>, refs: &[EndpointRef]) -> usize {
    let before = group.len();
    group.retain(|e| {
        !refs.iter().any(|r| {
            let by_name = r.name.is_some() && r.name == e.name;
            let by_url = r.url.as_deref().is_some_and(|u| u == e.url);
            by_name || by_url
        })
    });
    before - group.len()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlGroup {
    pub name: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub endpoints: Vec<Endpoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: Option<&str>, url: &str) -> Endpoint {
        Endpoint {
            name: name.map(String::from),
            url: url.into(),
        }
    }

    #[test]
    fn upsert_adds_and_updates_by_url_then_name() {
        let mut g = vec![ep(Some("a"), "http://a")];
        upsert_endpoints(
            &mut g,
            vec![
                ep(None, "http://b"),
                ep(Some("a2"), "http://a"),
                ep(Some("a2"), "http://a-new"),
            ],
        );
        assert_eq!(
            g,
            vec![ep(Some("a2"), "http://a-new"), ep(None, "http://b")]
        );
    }

    #[test]
    fn remove_by_name_or_url() {
        let mut g = vec![
            ep(Some("a"), "http://a"),
            ep(None, "http://b"),
            ep(None, "http://c"),
        ];
        let refs = [
            EndpointRef {
                name: Some("a".into()),
                url: None,
            },
            EndpointRef {
                name: None,
                url: Some("http://c".into()),
            },
        ];
        assert_eq!(remove_endpoints(&mut g, &refs), 2);
        assert_eq!(g, vec![ep(None, "http://b")]);
    }

    #[test]
    fn validation() {
        assert_eq!(validate_endpoints(vec![]), Err(EndpointError::Empty));
        assert!(validate_endpoints(vec![ep(None, "ftp://x")]).is_err());
        let ok = validate_endpoints(vec![ep(Some(""), " http://x/y ")]).unwrap();
        assert_eq!(ok, vec![ep(None, "http://x/y")]);
        assert!(validate_refs(&[EndpointRef::default()]).is_err());
        assert_eq!(
            serde_json::to_string(&ep(None, "http://x")).unwrap(),
            r#"{"url":"http://x"}"#
        );
    }
}
