//! A movement request, parsed and checked against the token and the cached catalog,
//! becomes a `StockMovement` — or the problem that says what is wrong, with every field
//! at fault: 403 for a store or kind the token may not post, 400 for a malformed field,
//! 422 for a store, product or supplier that does not exist (or is deleted).

use std::time::Duration;

use chrono::{DateTime, Utc};
use schemas::{MovementKind, ProductId, StockMovement, StoreId, SupplierId};
use serde::Deserialize;
use service_kit::auth::Principal;
use service_kit::problem::ApiError;
use service_kit::settings::MovementSettings;
use utoipa::ToSchema;
use uuid::Uuid;

use super::kinds;
use crate::catalog_cache::CatalogCache;
use crate::checks::Checks;

/// One stock movement as a POS or staff app reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MovementRequest {
    /// The idempotency key (or send an `Idempotency-Key` header). Generated, and returned,
    /// only when neither is given — then a retry cannot be recognised.
    pub movement_id: Option<Uuid>,
    pub store_id: i64,
    /// The product, by id or by SKU (one is enough; if both are given they must agree).
    pub product_id: Option<i64>,
    pub sku: Option<String>,
    /// `stock_in`, `sale`, `removal`, `return` (a customer brings goods back),
    /// `adjustment` (a signed correction of the book), `void` (an earlier movement undone) or
    /// `count` (what the shelf held).
    #[schema(example = "sale")]
    pub kind: String,
    /// In the product's unit (pieces, grams, millilitres): positive, the kind giving the
    /// sign — except an adjustment's, which carries its own (never 0), and a count's, what
    /// the shelf held (0 or more).
    #[schema(example = 2)]
    pub quantity: i64,
    /// When it happened on the device (RFC 3339); default now. Not more than a few minutes
    /// ahead, not older than 30 days.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Stock-in only: a live supplier. Without one the stock-in is a cash purchase (the
    /// wholesale market, a shop next door); the sourcing report shows it as such.
    pub supplier_id: Option<i64>,
    /// Stock-in only: cost of one unit, in paise. Without it the units join the stock at
    /// its moving-average cost so far; reports count units whose cost is unknown.
    pub unit_cost_paise: Option<i64>,
    /// Sale only: the price one unit sold at, in paise. Without it the sale is recorded at
    /// the store's selling price of the product (`selling_price_paise` of its store
    /// product), when it has one.
    pub unit_price_paise: Option<i64>,
    /// Why. Removal, required: `damaged`, `expired`, `lost`, `theft` or `other`.
    /// Adjustment, required: `damaged`, `expired`, `theft`, `found`, `correction` or
    /// `other`. Return with `restock: false`, required: `damaged`, `expired`, `defective` or
    /// `other`. Not part of the other kinds.
    pub reason: Option<String>,
    /// Invoice or bill number (up to 100 characters).
    pub reference: Option<String>,
    pub device_id: Option<String>,
    /// Sale or removal only: it was made while the till was offline, and is synced now.
    /// It happened, so it is never rejected for want of stock: when it takes more than the
    /// book holds, the balance goes below zero and a `phantom_stock` alert says the book was
    /// wrong. A sale or removal received more than `MOVEMENT_OFFLINE_AFTER_SECONDS` (10
    /// minutes) after its `occurred_at` counts as offline without it.
    pub offline: Option<bool>,
    /// Return only: `false` when the goods are not resellable — recorded, sellable stock
    /// unchanged (give a `reason`). Default `true`: back on the shelf.
    pub restock: Option<bool>,
    /// Return, adjustment, void or count: a free note (up to 100 characters).
    pub note: Option<String>,
    /// Return only: the `movement_id` of the sale the goods were bought in. The processors
    /// reject a return of more than that sale sold, less its earlier returns
    /// (`return_exceeds_sale`, with what it may still take back in `available_quantity`),
    /// and one naming no applied sale of the same store and product (`unknown_sale`).
    pub original_movement_id: Option<Uuid>,
    /// Void only (admins and managers), required: the `movement_id` of the movement of the
    /// same store whose effect the void reverses — its stock change and its place in the
    /// reports; `product_id` and `quantity` repeat that movement's (an adjustment's without
    /// its sign). The processors reject a void naming no movement of the store
    /// (`unknown_movement`), one that was not applied or is a void (`not_voidable`), another
    /// product or quantity (`void_mismatch`), or a movement voided already
    /// (`already_voided`); a void taking stock below zero follows the store's
    /// negative-stock policy.
    pub voids_movement_id: Option<Uuid>,
    /// Count only: the stock-take the line belongs to (send every line of one with the same
    /// `occurred_at`). A count says the shelf held `quantity` (0 or more) at `occurred_at`:
    /// the balance becomes that as of then (the variance, counted less the book as of then,
    /// is recorded and reported); movements that occurred later stay applied on top, and one
    /// that occurred before the product's latest count but arrives after it is rejected
    /// `superseded_by_count`.
    pub count_id: Option<Uuid>,
    /// Transfer-out and transfer-receive only, required: the client's id of the transfer
    /// (a transfer-out's must be new: `transfer_exists`). A transfer-out takes `quantity`
    /// from this store; it is in transit until the destination's transfer-receive with the
    /// same `transfer_id` says what arrived (0 up to what was sent; more is rejected
    /// `receive_exceeds_transfer`, a transfer is received once: `already_received`). The
    /// shortfall is a loss in transit, its `reason` optional (`lost` when not given). The
    /// processors announce each applied transfer-out to its destination with a
    /// `transfer_in` (never sent by a client); a receive before it, or naming no transfer
    /// of its product to its store, is rejected `unknown_transfer`.
    pub transfer_id: Option<Uuid>,
    /// Transfer-out only, required: the store the goods go to (another live store).
    pub to_store_id: Option<i64>,
}

impl MovementRequest {
    /// Whether the cache knows everything this request names.
    pub fn references_known(&self, cache: &CatalogCache) -> bool {
        cache.knows(
            self.store_id,
            self.product_id,
            self.sku.as_deref(),
            self.supplier_id,
        ) && self
            .to_store_id
            .is_none_or(|store| cache.store_is_live(store))
    }
}

/// Checks requests against one moment's view of the clock, the catalog and the settings.
#[derive(Debug)]
pub struct Validator<'a> {
    pub cache: &'a CatalogCache,
    pub settings: &'a MovementSettings,
    pub now: DateTime<Utc>,
}

fn duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl Validator<'_> {
    /// `header_id` is the request's `Idempotency-Key`, if any.
    pub fn validate(
        &self,
        request: MovementRequest,
        principal: &Principal,
        header_id: Option<Uuid>,
    ) -> Result<StockMovement, ApiError> {
        principal.require_store(StoreId(request.store_id))?;
        let mut checks = Checks::default();
        let kind = MovementKind::parse(&request.kind);
        let kind = match kind {
            Some(MovementKind::TransferIn) => {
                checks.fail(
                    "kind",
                    "not_allowed",
                    "a transfer_in is created by the processors when its transfer_out applies",
                );
                MovementKind::Unknown
            }
            Some(kind) if !principal.role.may_post(kind) => {
                return Err(ApiError::forbidden(
                    "kind_forbidden",
                    format!("a {} token may not post a {kind}", principal.role.as_str()),
                ));
            }
            Some(kind) => kind,
            None => {
                checks.fail("kind", "invalid", kinds::KINDS);
                MovementKind::Unknown
            }
        };
        let movement_id = match (request.movement_id, header_id) {
            (Some(body), Some(header)) if body != header => {
                checks.fail(
                    "movement_id",
                    "conflict",
                    "differs from the Idempotency-Key header",
                );
                body
            }
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => Uuid::now_v7(),
        };
        let occurred_at = schemas::on_the_wire(request.occurred_at.unwrap_or(self.now));
        if occurred_at > self.now + duration(self.settings.max_future_skew) {
            checks.fail(
                "occurred_at",
                "in_the_future",
                "later than now (beyond the allowed clock skew)",
            );
        } else if occurred_at < self.now - duration(self.settings.max_age) {
            checks.fail(
                "occurred_at",
                "too_old",
                format!(
                    "older than {} days",
                    self.settings.max_age.as_secs() / 86_400
                ),
            );
        }
        if kind != MovementKind::Unknown {
            kinds::check(&mut checks, kind, &request);
        }
        if request.product_id.is_none() && request.sku.is_none() {
            checks.fail("product_id", "required", "a `product_id` or a `sku`");
        }
        checks.done()?;

        // References, from the cached catalog.
        if !self.cache.store_is_live(request.store_id) {
            checks.fail(
                "store_id",
                "unknown",
                format!("no such store: {}", request.store_id),
            );
        }
        let product = match (request.product_id, request.sku.as_deref()) {
            (Some(id), sku) => match self.cache.product(id) {
                Some(product) if product.live && sku.is_none_or(|sku| sku == &*product.sku) => {
                    Some((id, product.sku))
                }
                Some(product) if product.live => {
                    checks.fail(
                        "sku",
                        "mismatch",
                        format!("product {id} has SKU {}", product.sku),
                    );
                    None
                }
                _ => {
                    checks.fail("product_id", "unknown", format!("no such product: {id}"));
                    None
                }
            },
            (None, Some(sku)) => {
                let found = self.cache.product_by_sku(sku);
                if found.is_none() {
                    checks.fail("sku", "unknown", format!("no product has SKU {sku}"));
                }
                found
            }
            (None, None) => None,
        };
        if let Some(destination) = request.to_store_id
            && !self.cache.store_is_live(destination)
        {
            checks.fail(
                "to_store_id",
                "unknown",
                format!("no such store: {destination}"),
            );
        }
        if let Some(supplier) = request.supplier_id
            && !self.cache.supplier_is_live(supplier)
        {
            checks.fail(
                "supplier_id",
                "unknown",
                format!("no such supplier: {supplier}"),
            );
        }
        checks.done_unprocessable()?;
        let Some((product_id, sku)) = product else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "a movement passed its checks without a product"
            )));
        };

        // A sale or removal that comes late was made while its till was offline.
        let late = self.now - occurred_at > duration(self.settings.offline_after);
        let offline = request.offline.unwrap_or(false)
            || (late && matches!(kind, MovementKind::Sale | MovementKind::Removal));
        Ok(StockMovement {
            movement_id,
            store_id: StoreId(request.store_id),
            product_id: ProductId(product_id),
            sku: sku.to_string(),
            kind,
            quantity: request.quantity,
            occurred_at,
            received_at: schemas::on_the_wire(self.now),
            supplier_id: request.supplier_id.map(SupplierId),
            unit_cost_paise: request.unit_cost_paise,
            unit_price_paise: request.unit_price_paise,
            reason: request.reason,
            reference: request.reference,
            actor: principal.subject.clone(),
            device_id: request.device_id,
            offline,
            restock: request.restock,
            note: request.note,
            original_movement_id: request.original_movement_id,
            voids_movement_id: request.voids_movement_id,
            count_id: request.count_id,
            transfer_id: request.transfer_id,
            to_store_id: request.to_store_id.map(StoreId),
            from_store_id: None,
        })
    }
}
