//! Purchase orders: a store asks a supplier for stock. A manager (own stores) or an admin
//! drafts one, edits it and submits it; an admin approves or rejects it; deliveries are
//! received against it ([`receive`]) and become stock-ins on the normal pipeline. Every
//! change is one transaction that locks the order and writes its audit row.

mod lines;
pub mod receive;
pub mod suggestions;
pub mod transitions;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use schemas::StoreId;
use schemas::purchase_orders::{self, OrderState, PurchaseOrder};
use serde::Deserialize;
use service_kit::auth::{Auth, Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidField, NoSuchOrder};
use service_kit::problem::{ApiError, FieldError, Problem};
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;

use crate::catalog::{Checks, Reference, present, require_live, trimmed};
use crate::movements::producer::MovementProducer;
use transitions::Action;

pub use lines::NewLine;
use lines::{check_lines, priced_lines, write_lines};

/// Most lines an order may hold.
pub const MAX_LINES: usize = 500;
const MAX_NOTE: usize = 500;

#[derive(Clone, Debug)]
pub struct OrdersState {
    pub pool: PgPool,
    pub auth: Auth,
    /// Receipts become stock-ins on `inventory.movements.v1`.
    pub producer: MovementProducer,
    /// `bazaar_purchase_order_receipts_unpublished`.
    pub unpublished: prometheus::IntGauge,
}

impl FromRef<OrdersState> for Auth {
    fn from_ref(state: &OrdersState) -> Self {
        state.auth.clone()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub store_id: i64,
    pub supplier_id: i64,
    pub note: Option<String>,
    /// Up to 500, one per product; a draft may start empty.
    #[serde(default)]
    pub lines: Vec<NewLine>,
}

/// A draft's change: only the fields present change; `lines` replaces them all.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderChange {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub note: Option<Option<String>>,
    pub lines: Option<Vec<NewLine>>,
}

/// The order `id` as it stands in `transaction`.
async fn load_one(
    transaction: &mut Transaction<'_, Postgres>,
    id: i64,
) -> Result<PurchaseOrder, ApiError> {
    purchase_orders::load(transaction, &[id])
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("purchase order", id))
}

/// Locks order `id` for the rest of `transaction` once `principal`'s role may take
/// `action` and the order is of their stores; its state.
async fn lock(
    transaction: &mut Transaction<'_, Postgres>,
    principal: &Principal,
    id: i64,
    action: Action,
) -> Result<OrderState, ApiError> {
    principal.require(action.permission())?;
    let locked: Option<(i64, OrderState)> =
        sqlx::query_as("SELECT store_id, state FROM purchase_orders WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut **transaction)
            .await?;
    let (store, state) = locked.ok_or_else(|| ApiError::not_found("purchase order", id))?;
    principal.require_store(StoreId(store))?;
    Ok(state)
}

/// [`lock`]s order `id`, checks that its state allows `action`, and returns it as it was.
async fn lock_for(
    transaction: &mut Transaction<'_, Postgres>,
    principal: &Principal,
    id: i64,
    action: Action,
) -> Result<PurchaseOrder, ApiError> {
    let state = lock(transaction, principal, id, action).await?;
    action.check(principal.role, state)?;
    load_one(transaction, id).await
}

/// Marks order `id` changed, audits the change from `before` to the order as it now
/// stands, commits, and returns it.
async fn finish(
    mut transaction: Transaction<'_, Postgres>,
    principal: &Principal,
    action: &str,
    id: i64,
    before: Option<&PurchaseOrder>,
) -> Result<PurchaseOrder, ApiError> {
    sqlx::query("UPDATE purchase_orders SET updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *transaction)
        .await?;
    let after = load_one(&mut transaction, id).await?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        action,
        "purchase_order",
        id,
        before,
        Some(&after),
    )
    .await?;
    transaction.commit().await?;
    Ok(after)
}

/// The order's store and supplier must be live, and stay so until `transaction` ends.
async fn require_store_and_supplier(
    transaction: &mut Transaction<'_, Postgres>,
    store: i64,
    supplier: i64,
) -> Result<(), ApiError> {
    require_live(
        transaction,
        &[
            Reference {
                field: "store_id",
                table: "stores",
                id: store,
            },
            Reference {
                field: "supplier_id",
                table: "suppliers",
                id: supplier,
            },
        ],
    )
    .await
}

/// Creates a draft in `transaction` (its store and supplier checked before) and returns
/// its id.
async fn insert_draft(
    transaction: &mut Transaction<'_, Postgres>,
    principal: &Principal,
    store: i64,
    supplier: i64,
    note: Option<String>,
    lines: &[(i64, i64, i64)],
) -> Result<i64, ApiError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO purchase_orders (store_id, supplier_id, note, created_by)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(store)
    .bind(supplier)
    .bind(note)
    .bind(&principal.subject)
    .fetch_one(&mut **transaction)
    .await?;
    write_lines(transaction, id, lines).await?;
    Ok(id)
}

/// Draft a purchase order (admins; managers for their stores).
#[utoipa::path(post, path = "/v1/purchase-orders", tag = "purchase-orders", request_body = NewOrder, security(("bearer" = [])),
    responses(
        (status = 201, description = "The draft", body = PurchaseOrder),
        (status = 400, description = "A field is invalid (`errors` names each)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not write orders (`role_forbidden`), or another store's (`store_forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The store, supplier or a product does not exist, or a line has no cost and the supplier no price (`no_supplier_price`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn create_order(
    State(state): State<OrdersState>,
    principal: Principal,
    body: Result<Json<NewOrder>, JsonRejection>,
) -> Result<(StatusCode, Json<PurchaseOrder>), ApiError> {
    principal.require(Permission::PurchaseOrderWrite)?;
    let new = body?.0;
    let note = trimmed(new.note);
    let mut checks = Checks::default();
    checks.optional_text("note", note.as_deref(), MAX_NOTE);
    check_lines(&mut checks, &NewLine::parts(&new.lines), 0);
    checks.done()?;
    principal.require_store(StoreId(new.store_id))?;

    let mut transaction = state.pool.begin().await?;
    require_store_and_supplier(&mut transaction, new.store_id, new.supplier_id).await?;
    let lines = priced_lines(&mut transaction, new.store_id, new.supplier_id, &new.lines).await?;
    let id = insert_draft(
        &mut transaction,
        &principal,
        new.store_id,
        new.supplier_id,
        note,
        &lines,
    )
    .await?;
    let order = finish(transaction, &principal, "create", id, None).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// Change a draft's note or lines (admins; managers for their stores).
#[utoipa::path(patch, path = "/v1/purchase-orders/{id}", tag = "purchase-orders", request_body = OrderChange, security(("bearer" = [])),
    params(("id" = i64, Path, description = "Purchase order id")),
    responses(
        (status = 200, description = "The draft after the change", body = PurchaseOrder),
        InvalidField,
        (status = 403, description = "The role may not write orders, or another store's", body = Problem, content_type = "application/problem+json"),
        NoSuchOrder,
        (status = 409, description = "Not a draft any more (`invalid_transition`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A product does not exist, or a line has no cost and the supplier no price", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, purchase_order_id = id))]
pub async fn change_order(
    State(state): State<OrdersState>,
    principal: Principal,
    Path(id): Path<i64>,
    body: Result<Json<OrderChange>, JsonRejection>,
) -> Result<Json<PurchaseOrder>, ApiError> {
    principal.require(Permission::PurchaseOrderWrite)?;
    let change = body?.0;
    let note = change.note.map(trimmed);
    let mut checks = Checks::default();
    checks.optional_text("note", note.clone().flatten().as_deref(), MAX_NOTE);
    if let Some(lines) = &change.lines {
        check_lines(&mut checks, &NewLine::parts(lines), 0);
    }
    checks.done()?;

    let mut transaction = state.pool.begin().await?;
    let before = lock_for(&mut transaction, &principal, id, Action::Edit).await?;
    if let Some(note) = note {
        sqlx::query("UPDATE purchase_orders SET note = $2 WHERE id = $1")
            .bind(id)
            .bind(note)
            .execute(&mut *transaction)
            .await?;
    }
    if let Some(lines) = &change.lines {
        let lines =
            priced_lines(&mut transaction, before.store_id, before.supplier_id, lines).await?;
        write_lines(&mut transaction, id, &lines).await?;
    }
    let after = finish(
        transaction,
        &principal,
        Action::Edit.as_str(),
        id,
        Some(&before),
    )
    .await?;
    Ok(Json(after))
}

/// Moves order `id` by `action` (not a receipt: see [`receive`]).
async fn transition(
    state: &OrdersState,
    principal: &Principal,
    id: i64,
    action: Action,
) -> Result<Json<PurchaseOrder>, ApiError> {
    let mut transaction = state.pool.begin().await?;
    let before = lock_for(&mut transaction, principal, id, action).await?;
    // Approvals and rejections also name who decided (`$2`).
    let (assignments, decided) = match action {
        Action::Submit => {
            if before.lines.is_empty() {
                return Err(ApiError::Unprocessable(vec![FieldError::new(
                    "lines",
                    "no_lines",
                    "an order without lines cannot be submitted",
                )]));
            }
            ("state = 'submitted', submitted_at = now()", false)
        }
        Action::Approve => (
            "state = 'approved', decided_at = now(), decided_by = $2",
            true,
        ),
        Action::Reject => (
            "state = 'rejected', decided_at = now(), decided_by = $2, closed_at = now()",
            true,
        ),
        Action::Cancel => ("state = 'cancelled', closed_at = now()", false),
        Action::Edit | Action::Receive => {
            unreachable!("edits and receipts have their own handlers")
        }
    };
    let update = format!("UPDATE purchase_orders SET {assignments} WHERE id = $1");
    let mut query = sqlx::query(&update).bind(id);
    if decided {
        query = query.bind(&principal.subject);
    }
    query.execute(&mut *transaction).await?;
    let after = finish(transaction, principal, action.as_str(), id, Some(&before)).await?;
    Ok(Json(after))
}

macro_rules! transition_route {
    ($name:ident, $action:expr, $path:literal, $summary:literal, $who:literal, $from:literal) => {
        #[doc = $summary]
        #[utoipa::path(post, path = $path, tag = "purchase-orders", security(("bearer" = [])),
            params(("id" = i64, Path, description = "Purchase order id")),
            responses(
                (status = 200, description = "The order after the change", body = PurchaseOrder),
                (status = 403, description = $who, body = Problem, content_type = "application/problem+json"),
                NoSuchOrder,
                (status = 409, description = $from, body = Problem, content_type = "application/problem+json"),
            ))]
        #[tracing::instrument(skip_all, fields(actor = %principal.subject, purchase_order_id = id))]
        pub async fn $name(
            State(state): State<OrdersState>,
            principal: Principal,
            Path(id): Path<i64>,
        ) -> Result<Json<PurchaseOrder>, ApiError> {
            transition(&state, &principal, id, $action).await
        }
    };
}

transition_route!(
    submit_order,
    Action::Submit,
    "/v1/purchase-orders/{id}/submit",
    "Submit a draft for approval (admins; managers for their stores); `422 no_lines` when it has none.",
    "Not an admin or the store's manager",
    "Not a draft (`invalid_transition`)"
);
transition_route!(
    approve_order,
    Action::Approve,
    "/v1/purchase-orders/{id}/approve",
    "Approve a submitted order (admins).",
    "Not an admin",
    "Not submitted (`invalid_transition`)"
);
transition_route!(
    reject_order,
    Action::Reject,
    "/v1/purchase-orders/{id}/reject",
    "Reject a submitted order (admins); it is closed.",
    "Not an admin",
    "Not submitted (`invalid_transition`)"
);
transition_route!(
    cancel_order,
    Action::Cancel,
    "/v1/purchase-orders/{id}/cancel",
    "Cancel an open order (admins; managers for their stores): nothing more will be received.",
    "Not an admin or the store's manager",
    "Already closed: received, rejected or cancelled (`invalid_transition`)"
);
