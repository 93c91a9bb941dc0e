//! A query-string extractor whose errors are problem+json naming the parameter at fault
//! (axum's own `Query` answers in plain text without the parameter's name).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> Query<T> {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| ApiError::from_located(error, "invalid", "query"))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::parse(parts.uri.query().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        limit: Option<u32>,
        city: Option<String>,
    }

    fn field_of(query: &str) -> String {
        let error = Query::<Params>::parse(query).unwrap_err();
        error.problem().errors[0].field.clone()
    }

    #[test]
    fn errors_name_the_parameter() {
        assert_eq!(field_of("limit=ten"), "limit");
        assert_eq!(field_of("limit=-1&city=Pune"), "limit");
        assert_eq!(field_of("citty=Pune"), "citty");
        let Query(params) = Query::<Params>::parse("city=Navi%20Mumbai&limit=5").unwrap();
        assert_eq!(
            (params.city.as_deref(), params.limit),
            (Some("Navi Mumbai"), Some(5))
        );
    }
}
