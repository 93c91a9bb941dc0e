//! `POST /v1/movements` and `POST /v1/movements/batch`: the hot write path. Each
//! movement is authorized against the token, validated against the cached catalog,
//! produced as Avro to `inventory.movements.v1` (key = store), and reported accepted only
//! once the broker acknowledged it.

pub mod producer;
pub mod validate;

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use futures::future::join_all;
use schemas::MovementKind;
use schemas::consistency::ConsistencyToken;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use service_kit::auth::{Auth, Permission, Principal};
use service_kit::problem::{ApiError, Problem};
use service_kit::settings::MovementSettings;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::catalog_cache::CatalogCache;
use crate::metrics::MovementMetrics;
use producer::MovementProducer;
use validate::{MovementRequest, Validator};

/// Most lines one batch may hold.
pub const MAX_BATCH: usize = 1_000;

#[derive(Clone, Debug)]
pub struct MovementsState {
    pub auth: Auth,
    pub cache: Arc<CatalogCache>,
    pub producer: MovementProducer,
    pub settings: MovementSettings,
    pub metrics: MovementMetrics,
}

impl FromRef<MovementsState> for Auth {
    fn from_ref(state: &MovementsState) -> Self {
        state.auth.clone()
    }
}

/// A movement on the topic.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub movement_id: Uuid,
    /// Partition and offset of the record on `inventory.movements.v1`.
    pub partition: i32,
    pub offset: i64,
    /// Give it to query-api (`consistency_token`) to read your own write.
    pub consistency_token: String,
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| Uuid::parse_str(text.trim()).ok())
        .map(Some)
        .ok_or_else(|| ApiError::validation("Idempotency-Key", "invalid", "a UUID"))
}

/// Report one stock movement.
#[utoipa::path(post, path = "/v1/movements", tag = "movements", request_body = MovementRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "The movement's UUID, instead of `movement_id` in the body")),
    responses(
        (status = 202, description = "On the topic; the processors will decide its outcome", body = Accepted),
        (status = 400, description = "A field is invalid (`errors` names each)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another store's movement (`store_forbidden`), or a kind this role may not post (`kind_forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The store, product or supplier does not exist or is deleted", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not acknowledge it: not accepted, retry with the same movement_id after Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn post_movement(
    State(state): State<MovementsState>,
    principal: Principal,
    headers: HeaderMap,
    body: Result<Json<MovementRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let _in_flight = state.metrics.in_flight();
    principal.require(Permission::MovementWrite)?;
    let header_id = idempotency_key(&headers)?;
    let request = body?.0;
    let kind = MovementKind::parse(&request.kind);
    let validator = Validator {
        cache: &state.cache,
        settings: &state.settings,
        now: Utc::now(),
    };
    let result = match validator.validate(request, &principal, header_id) {
        Ok(movement) => state
            .producer
            .produce(&movement)
            .await
            .map(|position| (movement, position)),
        Err(problem) => Err(problem),
    };
    match result {
        Ok((movement, position)) => {
            state.metrics.accepted(movement.kind);
            Ok((
                StatusCode::ACCEPTED,
                Json(Accepted {
                    movement_id: movement.movement_id,
                    partition: position.partition,
                    offset: position.offset,
                    consistency_token: ConsistencyToken::at(position.partition, position.offset)
                        .encode(),
                }),
            ))
        }
        Err(problem) => {
            state.metrics.refused(kind, problem.code());
            Err(problem)
        }
    }
}

/// Up to 1,000 movements, each validated on its own.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    #[schema(value_type = Vec<MovementRequest>)]
    pub movements: Vec<Box<RawValue>>,
}

/// The fate of one line of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineResult {
    /// Position of the line in the request.
    pub index: usize,
    /// 202 when on the topic, else the problem's status.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub movement_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub accepted: usize,
    pub refused: usize,
    /// Covers every accepted line; absent when none was.
    pub consistency_token: Option<String>,
    /// One per line, in request order.
    pub results: Vec<LineResult>,
}

/// Report many movements at once (a POS syncing after being offline).
#[utoipa::path(post, path = "/v1/movements/batch", tag = "movements", request_body = BatchRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "A result per line: accepted lines are on the topic even when others were refused", body = BatchResult),
        (status = 400, description = "Not a batch (bad JSON, no lines, more than 1,000)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not post movements", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, lines))]
pub async fn post_batch(
    State(state): State<MovementsState>,
    principal: Principal,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<Json<BatchResult>, ApiError> {
    let _in_flight = state.metrics.in_flight();
    principal.require(Permission::MovementWrite)?;
    let lines = body?.0.movements;
    tracing::Span::current().record("lines", lines.len());
    if lines.is_empty() || lines.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "movements",
            "invalid_length",
            format!("1 to {MAX_BATCH} movements"),
        ));
    }
    state.metrics.batch_size.observe(lines.len() as f64);
    let validator = Validator {
        cache: &state.cache,
        settings: &state.settings,
        now: Utc::now(),
    };
    let checked: Vec<(
        Option<MovementKind>,
        Result<schemas::StockMovement, ApiError>,
    )> = lines
        .iter()
        .map(|line| {
            let mut deserializer = serde_json::Deserializer::from_str(line.get());
            match serde_path_to_error::deserialize::<_, MovementRequest>(&mut deserializer) {
                Ok(request) => {
                    let kind = MovementKind::parse(&request.kind);
                    (kind, validator.validate(request, &principal, None))
                }
                Err(error) => (
                    None,
                    Err(ApiError::from_located(error, "invalid_json", "body")),
                ),
            }
        })
        .collect();
    // Every valid line is produced at once; librdkafka batches them on the wire.
    let producer = &state.producer;
    let outcomes = join_all(checked.into_iter().map(|(kind, checked)| async move {
        let outcome = match checked {
            Ok(movement) => producer
                .produce(&movement)
                .await
                .map(|position| (movement, position)),
            Err(problem) => Err(problem),
        };
        (kind, outcome)
    }))
    .await;

    let mut token = ConsistencyToken::default();
    let mut results = Vec::with_capacity(lines.len());
    let mut accepted = 0;
    for (index, (kind, outcome)) in outcomes.into_iter().enumerate() {
        results.push(match outcome {
            Ok((movement, position)) => {
                accepted += 1;
                state.metrics.accepted(movement.kind);
                token.include(position.partition, position.offset);
                LineResult {
                    index,
                    status: 202,
                    movement_id: Some(movement.movement_id),
                    partition: Some(position.partition),
                    offset: Some(position.offset),
                    problem: None,
                }
            }
            Err(problem) => {
                state.metrics.refused(kind, problem.code());
                LineResult {
                    index,
                    status: problem.status().as_u16(),
                    movement_id: None,
                    partition: None,
                    offset: None,
                    problem: Some(problem.problem()),
                }
            }
        });
    }
    Ok(Json(BatchResult {
        accepted,
        refused: results.len() - accepted,
        consistency_token: (!token.is_empty()).then(|| token.encode()),
        results,
    }))
}
