//! `POST /v1/movements` and `POST /v1/movements/batch`: the hot write path. Each
//! movement is authorized against the token, validated against the cached catalog,
//! produced as Avro to `inventory.movements.v1` (key = store), and reported accepted only
//! once the broker acknowledged it.

pub mod kinds;
pub mod producer;
pub mod validate;

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use schemas::MovementKind;
use schemas::consistency::ConsistencyToken;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use service_kit::auth::{Auth, Permission, Principal};
use service_kit::problem::responses::Unauthenticated;
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

/// What the movement handlers need, built once.
#[derive(Debug)]
pub struct Movements {
    pub auth: Auth,
    pub cache: Arc<CatalogCache>,
    /// The catalog's source, asked when a movement names something the cache lacks.
    pub pool: sqlx::PgPool,
    pub producer: MovementProducer,
    pub settings: MovementSettings,
    pub metrics: MovementMetrics,
    pub outcomes: crate::outcomes::Outcomes,
}

/// The handlers' state, shared: a request takes one reference instead of cloning
/// every field.
#[derive(Clone, Debug)]
pub struct MovementsState(pub Arc<Movements>);

impl std::ops::Deref for MovementsState {
    type Target = Movements;

    fn deref(&self) -> &Movements {
        &self.0
    }
}

impl Movements {
    /// Brings the cached catalog up to date when `requests` name something it lacks (a
    /// store or product created a moment ago), so they are decided on the current catalog.
    async fn know<'a>(&self, mut requests: impl Iterator<Item = &'a MovementRequest>) {
        if requests.all(|request| request.references_known(&self.cache)) {
            return;
        }
        if let Err(error) = self.cache.catch_up(&self.pool).await {
            tracing::warn!(%error, "Looking up a reference the catalog cache lacks failed; the movement is checked against the cache as it is.");
        }
    }
}

impl FromRef<MovementsState> for Auth {
    fn from_ref(state: &MovementsState) -> Self {
        state.auth.clone()
    }
}

/// A movement on the topic, and — with `?wait` — what the processors decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub movement_id: Uuid,
    /// Partition and offset of the record on `inventory.movements.v1`.
    pub partition: i32,
    pub offset: i64,
    /// Give it to query-api (`consistency_token`) to read your own write.
    pub consistency_token: String,
    /// `accepted` (on the topic, outcome not known yet), `applied` or `duplicate`.
    #[schema(example = "applied")]
    pub status: &'static str,
    /// The product's balance after this movement (`applied`), or after the original
    /// (`duplicate` of an applied movement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_after: Option<i64>,
    /// For a duplicate: what happened to the original (`applied` or `rejected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_status: Option<String>,
    /// For a duplicate of a rejected movement: why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_reason: Option<String>,
}

/// `?wait=`: how long to wait for the processors' outcome.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// Wait up to this long for the outcome (`500ms`, `2s`; at most `10s`): `201` applied,
    /// `409` rejected (or `idempotency_key_reused`: the id names another movement), `200` duplicate, or `202` if the wait runs out.
    #[param(example = "2s")]
    pub wait: Option<String>,
}

/// The longest `?wait` honoured.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl WaitParams {
    fn duration(&self) -> Result<Option<std::time::Duration>, ApiError> {
        let Some(text) = self.wait.as_deref() else {
            return Ok(None);
        };
        let parsed = text
            .trim()
            .parse::<u64>()
            .map(std::time::Duration::from_secs)
            .or_else(|_| humantime::parse_duration(text.trim()));
        match parsed {
            Ok(wait) if wait <= MAX_WAIT => Ok((!wait.is_zero()).then_some(wait)),
            _ => Err(ApiError::validation(
                "wait",
                "invalid",
                "a duration such as `500ms` or `2s`, at most `10s`",
            )),
        }
    }
}

/// `409` for a movement the processors rejected: problem+json with the reason as `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedProblem {
    #[serde(flatten)]
    pub problem: Problem,
    pub movement_id: Uuid,
    /// The balance when it was rejected (`insufficient_stock`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_quantity: Option<i64>,
    pub partition: i32,
    pub offset: i64,
    pub consistency_token: String,
}

/// The answer to a movement: `202` on the topic, or its decided outcome.
#[derive(Debug)]
pub enum MovementAnswer {
    Decided(StatusCode, Accepted),
    Rejected(RejectedProblem),
}

impl axum::response::IntoResponse for MovementAnswer {
    fn into_response(self) -> axum::response::Response {
        match self {
            Self::Decided(status, body) => (status, Json(body)).into_response(),
            Self::Rejected(problem) => {
                let status = StatusCode::CONFLICT;
                let mut response = (status, Json(problem)).into_response();
                response.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/problem+json"),
                );
                response
            }
        }
    }
}

/// The stable codes a rejection can carry.
fn reject_code(reason: Option<&str>) -> &'static str {
    reason
        .and_then(schemas::RejectReason::parse)
        .map_or("rejected", schemas::RejectReason::as_str)
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
    params(WaitParams, ("Idempotency-Key" = Option<String>, Header, description = "The movement's UUID, instead of `movement_id` in the body")),
    responses(
        (status = 201, description = "With `?wait`: applied; `balance_after` is the new balance", body = Accepted),
        (status = 200, description = "With `?wait`: a duplicate of an earlier movement (same id, same store, same content); the original outcome is in the body", body = Accepted),
        (status = 202, description = "On the topic; the processors will decide its outcome (also when `?wait` runs out)", body = Accepted),
        (status = 400, description = "A field is invalid (`errors` names each)", body = Problem, content_type = "application/problem+json"),
        Unauthenticated,
        (status = 403, description = "Another store's movement (`store_forbidden`), or a kind this role may not post (`kind_forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "With `?wait`: rejected by the processors; `code` is the reason (`insufficient_stock` with `available_quantity`; `return_exceeds_sale` with what the sale may still take back in `available_quantity`; `unknown_sale`; a void's `unknown_movement`, `not_voidable`, `void_mismatch`, `already_voided`; `superseded_by_count` for one that occurred before its product's latest count; a transfer-out's `unknown_destination`, `transfer_exists`; a transfer-receive's `unknown_transfer`, `already_received`, `receive_exceeds_transfer` with what was sent in `available_quantity`), or `idempotency_key_reused` when the movement id was first used by another store or for different content", body = RejectedProblem, content_type = "application/problem+json"),
        (status = 422, description = "The store, product or supplier does not exist or is deleted", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not acknowledge it: not accepted, retry with the same movement_id after Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn post_movement(
    State(state): State<MovementsState>,
    principal: Principal,
    params: service_kit::query::Query<WaitParams>,
    headers: HeaderMap,
    body: Result<Json<MovementRequest>, JsonRejection>,
) -> Result<MovementAnswer, ApiError> {
    let _in_flight = state.metrics.in_flight();
    principal.require(Permission::MovementWrite)?;
    let wait = params.0.duration()?;
    let header_id = idempotency_key(&headers)?;
    let request = body?.0;
    let kind = MovementKind::parse(&request.kind);
    state.know(std::iter::once(&request)).await;
    let validator = Validator {
        cache: &state.cache,
        settings: &state.settings,
        now: Utc::now(),
    };
    let movement = match validator.validate(request, &principal, header_id) {
        Ok(movement) => movement,
        Err(problem) => {
            state.metrics.refused(kind, problem.code());
            return Err(problem);
        }
    };
    // Subscribed before the record exists, so the outcome cannot slip past.
    let watch = match wait {
        Some(_) => state.outcomes.watch(movement.movement_id).await,
        None => None,
    };
    let position = match state.producer.produce(&movement).await {
        Ok(position) => position,
        Err(problem) => {
            state.metrics.refused(kind, problem.code());
            return Err(problem);
        }
    };
    state.metrics.accepted(movement.kind);
    let consistency_token = ConsistencyToken::at(position.partition, position.offset).encode();
    let mut accepted = Accepted {
        movement_id: movement.movement_id,
        partition: position.partition,
        offset: position.offset,
        consistency_token,
        status: "accepted",
        balance_after: None,
        original_status: None,
        reject_reason: None,
    };
    let (Some(wait), Some(mut watch)) = (wait, watch) else {
        return Ok(MovementAnswer::Decided(StatusCode::ACCEPTED, accepted));
    };
    let decided = tokio::time::timeout(wait, watch.outcome_of(position.partition, position.offset));
    let Ok(Some(notice)) = decided.await else {
        return Ok(MovementAnswer::Decided(StatusCode::ACCEPTED, accepted));
    };
    Ok(match notice.status.as_str() {
        "applied" => {
            accepted.status = "applied";
            accepted.balance_after = notice.balance_after;
            MovementAnswer::Decided(StatusCode::CREATED, accepted)
        }
        "duplicate" => {
            accepted.status = "duplicate";
            accepted.balance_after = notice.balance_after;
            accepted.original_status = notice.original_status;
            accepted.reject_reason = notice.reject_reason;
            MovementAnswer::Decided(StatusCode::OK, accepted)
        }
        "conflict" => MovementAnswer::Rejected(RejectedProblem {
            problem: Problem {
                kind: "/problems/idempotency_key_reused".into(),
                title: "The movement id was already used for another movement",
                status: StatusCode::CONFLICT.as_u16(),
                detail: Some(
                    "this movement_id (the idempotency key) names an earlier movement with other \
                     content or of another store; nothing changed. Send a new movement with a new id."
                        .into(),
                ),
                code: "idempotency_key_reused",
                errors: Vec::new(),
            },
            movement_id: accepted.movement_id,
            available_quantity: None,
            partition: accepted.partition,
            offset: accepted.offset,
            consistency_token: accepted.consistency_token,
        }),
        _ => {
            let code = reject_code(notice.reject_reason.as_deref());
            let detail = match notice.available_quantity {
                Some(available) => {
                    format!("the processors rejected it ({code}); {available} available")
                }
                None => format!("the processors rejected it ({code})"),
            };
            MovementAnswer::Rejected(RejectedProblem {
                problem: Problem {
                    kind: format!("/problems/{code}"),
                    title: "The movement was rejected",
                    status: StatusCode::CONFLICT.as_u16(),
                    detail: Some(detail),
                    code,
                    errors: Vec::new(),
                },
                movement_id: accepted.movement_id,
                available_quantity: notice.available_quantity,
                partition: accepted.partition,
                offset: accepted.offset,
                consistency_token: accepted.consistency_token,
            })
        }
    })
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
    /// The line's movement id when it was valid: accepted, or refused by the broker
    /// (retry with it).
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
        Unauthenticated,
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
    let parsed: Vec<Result<MovementRequest, ApiError>> = lines
        .into_iter()
        .map(|line| {
            let mut deserializer = serde_json::Deserializer::from_str(line.get());
            serde_path_to_error::deserialize::<_, MovementRequest>(&mut deserializer)
                .map_err(|error| ApiError::from_located(error, "invalid_json", "body"))
        })
        .collect();
    state
        .know(parsed.iter().filter_map(|line| line.as_ref().ok()))
        .await;
    let validator = Validator {
        cache: &state.cache,
        settings: &state.settings,
        now: Utc::now(),
    };
    let checked: Vec<(
        Option<MovementKind>,
        Result<schemas::StockMovement, ApiError>,
    )> = parsed
        .into_iter()
        .map(|line| match line {
            Ok(request) => {
                let kind = MovementKind::parse(&request.kind);
                (kind, validator.validate(request, &principal, None))
            }
            Err(problem) => (None, Err(problem)),
        })
        .collect();
    // Every valid line is handed to librdkafka first (it batches them on the wire), then
    // the acknowledgements are awaited. Only what a line's result needs is kept meanwhile:
    // a batch holds no future, payload or movement per line while the broker works.
    let producer = &state.producer;
    let mut payload = Vec::with_capacity(256);
    let mut enqueued = Vec::with_capacity(checked.len());
    for (kind, checked) in checked {
        let line = match checked {
            Ok(movement) => match producer.enqueue(&movement, &mut payload).await {
                Ok(pending) => Ok((movement.movement_id, movement.kind, pending)),
                Err(problem) => Err((Some(movement.movement_id), problem)),
            },
            Err(problem) => Err((None, problem)),
        };
        enqueued.push((kind, line));
    }
    drop(payload);

    let mut token = ConsistencyToken::default();
    let mut results = Vec::with_capacity(enqueued.len());
    let mut accepted = 0;
    for (index, (kind, line)) in enqueued.into_iter().enumerate() {
        let outcome = match line {
            Ok((movement_id, movement_kind, pending)) => {
                match producer.acknowledged(pending).await {
                    Ok(position) => Ok((movement_id, movement_kind, position)),
                    Err(problem) => Err((Some(movement_id), problem)),
                }
            }
            Err(refused) => Err(refused),
        };
        results.push(match outcome {
            Ok((movement_id, movement_kind, position)) => {
                accepted += 1;
                state.metrics.accepted(movement_kind);
                token.include(position.partition, position.offset);
                LineResult {
                    index,
                    status: 202,
                    movement_id: Some(movement_id),
                    partition: Some(position.partition),
                    offset: Some(position.offset),
                    problem: None,
                }
            }
            // A valid line the broker did not take names its id (generated or not), so
            // that a retry with it stays idempotent.
            Err((movement_id, problem)) => {
                state.metrics.refused(kind, problem.code());
                LineResult {
                    index,
                    status: problem.status().as_u16(),
                    movement_id,
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
