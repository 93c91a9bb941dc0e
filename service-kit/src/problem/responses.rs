//! The problem responses many operations share, each declared once for their OpenAPI
//! descriptions: an operation lists them by name beside its own
//! (`responses((status = 200, …), InvalidField, NotAdmin)`). A response whose description
//! says something about that operation alone stays a tuple in its `#[utoipa::path]`.

use utoipa::IntoResponses;

use super::Problem;

/// A JSON body field is invalid; `errors` names each.
#[derive(Debug, IntoResponses)]
#[response(
    status = 400,
    description = "A field is invalid",
    content_type = "application/problem+json"
)]
pub struct InvalidField(pub Problem);

/// A path or query parameter is invalid; `errors` names each.
#[derive(Debug, IntoResponses)]
#[response(
    status = 400,
    description = "A parameter is invalid",
    content_type = "application/problem+json"
)]
pub struct InvalidParameter(pub Problem);

/// No token, or one that is expired, revoked or not ours.
#[derive(Debug, IntoResponses)]
#[response(
    status = 401,
    description = "No valid token",
    content_type = "application/problem+json"
)]
pub struct Unauthenticated(pub Problem);

/// An administrator's operation, asked by another role.
#[derive(Debug, IntoResponses)]
#[response(
    status = 403,
    description = "Not an admin",
    content_type = "application/problem+json"
)]
pub struct NotAdmin(pub Problem);

/// The path's store does not exist (or is deleted).
#[derive(Debug, IntoResponses)]
#[response(
    status = 404,
    description = "No such store",
    content_type = "application/problem+json"
)]
pub struct NoSuchStore(pub Problem);

/// The path's purchase order does not exist (or is another store's, for a store's staff).
#[derive(Debug, IntoResponses)]
#[response(
    status = 404,
    description = "No such order",
    content_type = "application/problem+json"
)]
pub struct NoSuchOrder(pub Problem);

/// A conditional read whose `If-None-Match` still names the current `ETag`.
#[derive(Debug, IntoResponses)]
#[response(
    status = 304,
    description = "Not modified since the `ETag` in `If-None-Match`"
)]
pub struct NotModified;
