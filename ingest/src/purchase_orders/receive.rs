//! Receiving deliveries: `POST /v1/purchase-orders/{id}/receipts`. A receipt is recorded
//! in Postgres with the order's received quantities and new state (one transaction), then
//! each of its lines is produced as a stock-in with the order's cost and a movement id
//! derived from (receipt, product). Postgres holds the receipt before Kafka holds its
//! movements, so the receipts table is their outbox: a receipt sent again re-publishes the
//! same movements (duplicates in the ledger, never a second delivery), and
//! [`publish_pending`] publishes what an instance that died between the two steps left.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use schemas::consistency::ConsistencyToken;
use schemas::purchase_orders::{PurchaseOrder, Receipt, receipt_movement_id};
use schemas::{MovementKind, ProductId, StockMovement, StoreId, SupplierId};
use serde::{Deserialize, Serialize};
use service_kit::auth::Principal;
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidField, NoSuchOrder};
use service_kit::problem::{ApiError, Problem};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::transitions::Action;
use super::{OrdersState, check_lines, finish, load_one, lock};
use crate::catalog::Checks;
use crate::movements::producer::MovementProducer;

/// How old an unpublished receipt must be before [`publish_pending`] takes it: by then the
/// request that recorded it has published it or given up (were it still at it, the second
/// copies would be duplicates in the ledger).
pub const UNPUBLISHED_GRACE_SECONDS: i64 = 10;
/// How often each instance looks for such receipts.
pub const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceivedLine {
    pub product_id: i64,
    /// What arrived, in the product's unit: less or more than ordered is fine.
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    /// The client's id for this delivery (a UUID): sending the same receipt again changes
    /// nothing.
    pub receipt_id: Uuid,
    /// What arrived, products of the order only; absent: everything outstanding.
    pub lines: Option<Vec<ReceivedLine>>,
    /// Close the order as received although less arrived than ordered.
    #[serde(default)]
    pub close: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptAnswer {
    pub purchase_order: PurchaseOrder,
    pub receipt: Receipt,
    /// Covers the receipt's stock-ins: give it to query-api to read the stock they made.
    pub consistency_token: String,
}

fn check(request: &ReceiptRequest) -> Result<(), ApiError> {
    let mut checks = Checks::default();
    if let Some(lines) = &request.lines {
        let lines: Vec<(i64, i64, Option<i64>)> = lines
            .iter()
            .map(|line| (line.product_id, line.quantity, None))
            .collect();
        check_lines(&mut checks, &lines, 1);
    }
    checks.done()
}

/// What an earlier receipt with the same id recorded.
#[derive(Debug, sqlx::FromRow)]
struct Earlier {
    purchase_order_id: i64,
    whole: bool,
    closes: bool,
}

async fn earlier(
    connection: &mut sqlx::PgConnection,
    receipt: Uuid,
) -> Result<Option<Earlier>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT purchase_order_id, whole, closes FROM purchase_order_receipts WHERE id = $1",
    )
    .bind(receipt)
    .fetch_optional(connection)
    .await?)
}

/// Record a delivery against an approved order (admins; the store's managers and staff).
#[utoipa::path(post, path = "/v1/purchase-orders/{id}/receipts", tag = "purchase-orders", request_body = ReceiptRequest, security(("bearer" = [])),
    params(("id" = i64, Path, description = "Purchase order id")),
    responses(
        (status = 201, description = "Recorded, and every line on the topic as a stock-in", body = ReceiptAnswer),
        (status = 200, description = "This receipt was recorded before (same id, same content): nothing changed; its stock-ins were sent again and are duplicates in the ledger", body = ReceiptAnswer),
        InvalidField,
        (status = 403, description = "The role may not receive (`role_forbidden`), or another store's order (`store_forbidden`)", body = Problem, content_type = "application/problem+json"),
        NoSuchOrder,
        (status = 409, description = "Not approved or partially received (`invalid_transition`), or the receipt id was used for another delivery (`receipt_id_reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A product is not on the order (`not_on_order`), or nothing is outstanding", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Recorded, but the broker did not acknowledge every stock-in: send the same receipt again (or leave it: ingest publishes it within seconds)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, purchase_order_id = id, receipt_id))]
pub async fn receive(
    State(state): State<OrdersState>,
    principal: Principal,
    Path(id): Path<i64>,
    body: Result<Json<ReceiptRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<ReceiptAnswer>), ApiError> {
    principal.require(Action::Receive.permission())?;
    let request = body?.0;
    tracing::Span::current().record("receipt_id", tracing::field::display(request.receipt_id));
    check(&request)?;

    let mut transaction = state.pool.begin().await?;
    // Looked up under the order's lock, so the same receipt sent twice at once is recorded
    // by the first and answered as a replay to the second.
    let order_state = lock(&mut transaction, &principal, id, Action::Receive).await?;
    if let Some(earlier) = earlier(&mut transaction, request.receipt_id).await? {
        drop(transaction);
        return replay(&state, &principal, id, &request, earlier).await;
    }
    Action::Receive.check(principal.role, order_state)?;
    let before = load_one(&mut transaction, id).await?;
    let arrived = arrived_lines(&before, request.lines.as_deref())?;

    let (products, quantities): (Vec<i64>, Vec<i64>) = arrived.iter().copied().unzip();
    let movement_ids: Vec<Uuid> = products
        .iter()
        .map(|product| receipt_movement_id(request.receipt_id, *product))
        .collect();
    // The receipt id sent at once for another order: the second waits here for the first
    // to commit, then is refused as a replay of another delivery.
    let recorded: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO purchase_order_receipts (id, purchase_order_id, received_by, whole, closes)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(request.receipt_id)
    .bind(id)
    .bind(&principal.subject)
    .bind(request.lines.is_none())
    .bind(request.close)
    .fetch_optional(&mut *transaction)
    .await?;
    if recorded.is_none() {
        drop(transaction);
        let earlier = earlier(&mut *state.pool.acquire().await?, request.receipt_id)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a conflicting receipt vanished")))?;
        return replay(&state, &principal, id, &request, earlier).await;
    }
    sqlx::query(
        "INSERT INTO purchase_order_receipt_lines (receipt_id, product_id, quantity, unit_cost_paise, movement_id)
         SELECT $1, arrived.product_id, arrived.quantity, l.unit_cost_paise, arrived.movement_id
           FROM UNNEST($3::bigint[], $4::bigint[], $5::uuid[]) AS arrived (product_id, quantity, movement_id)
           JOIN purchase_order_lines l ON l.purchase_order_id = $2 AND l.product_id = arrived.product_id",
    )
    .bind(request.receipt_id)
    .bind(id)
    .bind(&products)
    .bind(&quantities)
    .bind(&movement_ids)
    .execute(&mut *transaction)
    .await?;
    sqlx::query(
        "UPDATE purchase_order_lines l SET received_quantity = l.received_quantity + arrived.quantity
           FROM UNNEST($2::bigint[], $3::bigint[]) AS arrived (product_id, quantity)
          WHERE l.purchase_order_id = $1 AND l.product_id = arrived.product_id",
    )
    .bind(id)
    .bind(&products)
    .bind(&quantities)
    .execute(&mut *transaction)
    .await?;
    // Received in full (every line at least what was ordered) or closed short: closed.
    sqlx::query(
        "UPDATE purchase_orders o
            SET state = CASE WHEN done THEN 'received' ELSE 'partially_received' END,
                closed_at = CASE WHEN done THEN now() END
           FROM (SELECT $2 OR bool_and(received_quantity >= quantity) AS done
                   FROM purchase_order_lines WHERE purchase_order_id = $1) AS received
          WHERE o.id = $1",
    )
    .bind(id)
    .bind(request.close)
    .execute(&mut *transaction)
    .await?;
    let order = finish(
        transaction,
        &principal,
        Action::Receive.as_str(),
        id,
        Some(&before),
    )
    .await?;
    let token = publish(&state.pool, &state.producer, &[request.receipt_id]).await?;
    answer(StatusCode::CREATED, order, request.receipt_id, token)
}

/// The (product, quantity) pairs that arrived: those named, each on the order
/// (`422 not_on_order` otherwise), or everything outstanding.
fn arrived_lines(
    order: &PurchaseOrder,
    named: Option<&[ReceivedLine]>,
) -> Result<Vec<(i64, i64)>, ApiError> {
    let Some(named) = named else {
        let outstanding: Vec<(i64, i64)> = order
            .lines
            .iter()
            .filter(|line| line.outstanding_quantity > 0)
            .map(|line| (line.product_id, line.outstanding_quantity))
            .collect();
        if outstanding.is_empty() {
            let mut checks = Checks::default();
            checks.fail(
                "lines",
                "nothing_outstanding",
                "every line is received in full; name the lines that arrived",
            );
            checks.done_unprocessable()?;
        }
        return Ok(outstanding);
    };
    let ordered: HashSet<i64> = order.lines.iter().map(|line| line.product_id).collect();
    let mut checks = Checks::default();
    for (at, line) in named.iter().enumerate() {
        if !ordered.contains(&line.product_id) {
            checks.fail(
                &format!("lines[{at}].product_id"),
                "not_on_order",
                format!("product {} is not on this order", line.product_id),
            );
        }
    }
    checks.done_unprocessable()?;
    Ok(named
        .iter()
        .map(|line| (line.product_id, line.quantity))
        .collect())
}

/// A receipt id seen before: the same delivery sent again is answered as it was recorded
/// (and its stock-ins published again, in case the first answer never arrived); another
/// delivery under that id is refused.
async fn replay(
    state: &OrdersState,
    principal: &Principal,
    id: i64,
    request: &ReceiptRequest,
    earlier: Earlier,
) -> Result<(StatusCode, Json<ReceiptAnswer>), ApiError> {
    let order = {
        let mut connection = state.pool.acquire().await?;
        schemas::purchase_orders::load(&mut connection, &[earlier.purchase_order_id])
            .await?
            .pop()
            .ok_or_else(|| ApiError::not_found("purchase order", earlier.purchase_order_id))?
    };
    principal.require_store(StoreId(order.store_id))?;
    let recorded = order
        .receipts
        .iter()
        .find(|receipt| receipt.id == request.receipt_id)
        .map(|receipt| {
            let mut lines: Vec<(i64, i64)> = receipt
                .lines
                .iter()
                .map(|line| (line.product_id, line.quantity))
                .collect();
            lines.sort_unstable();
            lines
        })
        .unwrap_or_default();
    let same_lines = match &request.lines {
        None => earlier.whole,
        Some(lines) => {
            let mut sent: Vec<(i64, i64)> = lines
                .iter()
                .map(|line| (line.product_id, line.quantity))
                .collect();
            sent.sort_unstable();
            !earlier.whole && sent == recorded
        }
    };
    if earlier.purchase_order_id != id || earlier.closes != request.close || !same_lines {
        return Err(ApiError::Conflict {
            code: "receipt_id_reused",
            detail: "this receipt_id names another delivery; nothing changed. Send a new delivery with a new receipt_id".into(),
            field: Some("receipt_id"),
        });
    }
    let token = publish(&state.pool, &state.producer, &[request.receipt_id]).await?;
    answer(StatusCode::OK, order, request.receipt_id, token)
}

/// The answer once [`publish`] succeeded: `order` with receipt `receipt_id` published.
fn answer(
    status: StatusCode,
    mut order: PurchaseOrder,
    receipt_id: Uuid,
    token: ConsistencyToken,
) -> Result<(StatusCode, Json<ReceiptAnswer>), ApiError> {
    let receipt = order
        .receipts
        .iter_mut()
        .find(|receipt| receipt.id == receipt_id)
        .ok_or_else(|| ApiError::not_found("receipt", receipt_id))?;
    receipt.published = true;
    let receipt = receipt.clone();
    Ok((
        status,
        Json(ReceiptAnswer {
            purchase_order: order,
            receipt,
            consistency_token: token.encode(),
        }),
    ))
}

/// A receipt line as the stock-in it becomes.
#[derive(Debug, sqlx::FromRow)]
struct Unpublished {
    receipt_id: Uuid,
    purchase_order_id: i64,
    store_id: i64,
    supplier_id: i64,
    product_id: i64,
    sku: String,
    quantity: i64,
    unit_cost_paise: i64,
    movement_id: Uuid,
    received_by: String,
    received_at: DateTime<Utc>,
}

impl Unpublished {
    fn movement(self, now: DateTime<Utc>) -> StockMovement {
        StockMovement {
            received_at: now,
            supplier_id: Some(SupplierId(self.supplier_id)),
            unit_cost_paise: Some(self.unit_cost_paise),
            reference: Some(format!("PO-{}", self.purchase_order_id)),
            ..StockMovement::new(
                self.movement_id,
                StoreId(self.store_id),
                ProductId(self.product_id),
                self.sku,
                MovementKind::StockIn,
                self.quantity,
                self.received_at,
                self.received_by,
            )
        }
    }
}

/// Produces every line of `receipts` as a stock-in and, once the broker acknowledged them
/// all, marks the receipts published. `503` when it did not (the receipts stay unpublished
/// and are tried again).
pub async fn publish(
    pool: &PgPool,
    producer: &MovementProducer,
    receipts: &[Uuid],
) -> Result<ConsistencyToken, ApiError> {
    let lines: Vec<Unpublished> = sqlx::query_as(
        "SELECT r.id AS receipt_id, o.id AS purchase_order_id, o.store_id, o.supplier_id,
                l.product_id, p.sku, l.quantity, l.unit_cost_paise, l.movement_id,
                r.received_by, r.received_at
           FROM purchase_order_receipts r
           JOIN purchase_orders o ON o.id = r.purchase_order_id
           JOIN purchase_order_receipt_lines l ON l.receipt_id = r.id
           JOIN products p ON p.id = l.product_id
          WHERE r.id = ANY($1)
          ORDER BY r.received_at, r.id, l.product_id",
    )
    .bind(receipts)
    .fetch_all(pool)
    .await?;
    let now = Utc::now();
    let mut buffer = Vec::with_capacity(256);
    let mut enqueued = Vec::with_capacity(lines.len());
    let mut published = Vec::with_capacity(receipts.len());
    for line in lines {
        if published.last() != Some(&line.receipt_id) {
            published.push(line.receipt_id);
        }
        enqueued.push(producer.enqueue(&line.movement(now), &mut buffer).await?);
    }
    let mut token = ConsistencyToken::default();
    for pending in enqueued {
        let position = producer.acknowledged(pending).await?;
        token.include(position.partition, position.offset);
    }
    sqlx::query(
        "UPDATE purchase_order_receipts SET published_at = now()
          WHERE id = ANY($1) AND published_at IS NULL",
    )
    .bind(&published)
    .execute(pool)
    .await?;
    Ok(token)
}

/// Publishes receipts recorded more than [`UNPUBLISHED_GRACE_SECONDS`] ago whose stock-ins
/// never reached the broker (the instance stopped, or the broker was down, between the
/// commit and the acknowledgement). Several instances may publish the same receipt: its
/// movements are duplicates in the ledger.
pub async fn publish_pending(state: &OrdersState) -> anyhow::Result<()> {
    let pending: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM purchase_order_receipts
          WHERE published_at IS NULL AND received_at < now() - make_interval(secs => $1)
          ORDER BY received_at",
    )
    .bind(UNPUBLISHED_GRACE_SECONDS as f64)
    .fetch_all(&state.pool)
    .await?;
    state.unpublished.set(pending.len() as i64);
    if pending.is_empty() {
        return Ok(());
    }
    for receipts in pending.chunks(100) {
        publish(&state.pool, &state.producer, receipts)
            .await
            .map_err(|error| anyhow::anyhow!("publishing receipts: {error}"))?;
        state.unpublished.sub(receipts.len() as i64);
    }
    tracing::info!(
        receipts = pending.len(),
        "Published receipts whose stock-ins had not reached the broker."
    );
    Ok(())
}
