//! A path-parameter extractor whose errors are problem+json naming the parameter at fault
//! (axum's own `Path` answers `400` in plain text: an id beyond `i64`, a malformed UUID).

use axum::extract::FromRequestParts;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(problem(rejection)),
        }
    }
}

fn problem(rejection: PathRejection) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(error) = &rejection else {
        return ApiError::Internal(anyhow::anyhow!("path parameters missing: {rejection}"));
    };
    let field = match error.kind() {
        ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } => {
            key.clone()
        }
        ErrorKind::DeserializeError { key, .. } => key.clone(),
        _ => "path".to_owned(),
    };
    ApiError::validation(field, "invalid", error.body_text())
}
