//! Which fields each kind of movement takes, and what they may hold: one table of rules,
//! checked before the catalog is consulted.

use schemas::MovementKind;

use super::validate::MovementRequest;
use crate::checks::{Checks, MAX_PAISE, MAX_QUANTITY};

pub const REMOVAL_REASONS: &[&str] = &["damaged", "expired", "lost", "theft", "other"];
pub const ADJUSTMENT_REASONS: &[&str] = &[
    "damaged",
    "expired",
    "theft",
    "found",
    "correction",
    "other",
];
/// Why returned goods are not resellable.
pub const RETURN_REASONS: &[&str] = &["damaged", "expired", "defective", "other"];
/// Why goods sent were lost in transit (optional on a receive with a shortfall).
pub const TRANSIT_LOSS_REASONS: &[&str] = &["lost", "damaged", "expired", "theft", "other"];
/// Every kind a request may name, as the API spells it.
pub const KINDS: &str = "`stock_in`, `sale`, `removal`, `return`, `adjustment`, `void`, `count`, \
     `transfer_out` or `transfer_receive`";
const MAX_TEXT: usize = 100;

/// Checks the fields that depend on `kind` (already known to be one of [`KINDS`]).
pub fn check(checks: &mut Checks, kind: MovementKind, request: &MovementRequest) {
    use MovementKind::{
        Adjustment, Count, Removal, Return, Sale, StockIn, TransferOut, TransferReceive, Void,
    };
    // An adjustment's quantity carries its sign; a count's may be 0 (an empty shelf), and so
    // may what arrived of a transfer; every other kind's is positive.
    if matches!(kind, Count | TransferReceive) {
        checks.range("quantity", Some(request.quantity), 0..=MAX_QUANTITY, "");
    } else if kind == Adjustment {
        if request.quantity == 0 {
            checks.fail("quantity", "zero", "an adjustment moves stock: not 0");
        }
        checks.range(
            "quantity",
            Some(request.quantity),
            -MAX_QUANTITY..=MAX_QUANTITY,
            "",
        );
    } else {
        checks.range("quantity", Some(request.quantity), 1..=MAX_QUANTITY, "");
    }
    let mut field = |name: &str, given: bool, rule: Rule| match (given, rule) {
        (false, Rule::Required) => {
            checks.fail(name, "required", format!("required for a {kind}"));
        }
        (true, Rule::NotAllowed) => {
            checks.fail(name, "not_allowed", format!("not part of a {kind}"));
        }
        _ => {}
    };
    let optional_for = |allowed: bool| {
        if allowed {
            Rule::Optional
        } else {
            Rule::NotAllowed
        }
    };
    field(
        "supplier_id",
        request.supplier_id.is_some(),
        optional_for(kind == StockIn),
    );
    field(
        "unit_cost_paise",
        request.unit_cost_paise.is_some(),
        optional_for(kind == StockIn),
    );
    // A sale without a price is recorded at the store's selling price.
    field(
        "unit_price_paise",
        request.unit_price_paise.is_some(),
        optional_for(kind == Sale),
    );
    field(
        "offline",
        request.offline.is_some(),
        optional_for(matches!(kind, Sale | Removal)),
    );
    field(
        "restock",
        request.restock.is_some(),
        optional_for(kind == Return),
    );
    field(
        "note",
        request.note.is_some(),
        optional_for(matches!(
            kind,
            Return | Adjustment | Void | Count | TransferOut | TransferReceive
        )),
    );
    field(
        "count_id",
        request.count_id.is_some(),
        optional_for(kind == Count),
    );
    field(
        "original_movement_id",
        request.original_movement_id.is_some(),
        optional_for(kind == Return),
    );
    field(
        "voids_movement_id",
        request.voids_movement_id.is_some(),
        if kind == Void {
            Rule::Required
        } else {
            Rule::NotAllowed
        },
    );
    field(
        "transfer_id",
        request.transfer_id.is_some(),
        if matches!(kind, TransferOut | TransferReceive) {
            Rule::Required
        } else {
            Rule::NotAllowed
        },
    );
    field(
        "to_store_id",
        request.to_store_id.is_some(),
        if kind == TransferOut {
            Rule::Required
        } else {
            Rule::NotAllowed
        },
    );
    // Why: a removal and an adjustment always say; a return only when it is not resellable;
    // a receive may say why some goods did not arrive.
    let (reasons, rule) = match kind {
        Removal => (Some(REMOVAL_REASONS), Rule::Required),
        Adjustment => (Some(ADJUSTMENT_REASONS), Rule::Required),
        Return if request.restock == Some(false) => (Some(RETURN_REASONS), Rule::Required),
        TransferReceive => (Some(TRANSIT_LOSS_REASONS), Rule::Optional),
        _ => (None, Rule::NotAllowed),
    };
    field("reason", request.reason.is_some(), rule);
    if kind == TransferOut && request.to_store_id == Some(request.store_id) {
        checks.fail("to_store_id", "same_store", "another store than `store_id`");
    }
    if let (Some(reason), Some(reasons)) = (&request.reason, reasons)
        && !reasons.contains(&reason.as_str())
    {
        let names: Vec<String> = reasons.iter().map(|name| format!("`{name}`")).collect();
        checks.fail("reason", "invalid", names.join(", "));
    }
    checks
        .range(
            "unit_cost_paise",
            request.unit_cost_paise,
            0..=MAX_PAISE,
            " paise",
        )
        .range(
            "unit_price_paise",
            request.unit_price_paise,
            0..=MAX_PAISE,
            " paise",
        );
    text(checks, "reference", &request.reference);
    text(checks, "device_id", &request.device_id);
    text(checks, "note", &request.note);
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Required,
    Optional,
    NotAllowed,
}

/// Optional text of 1 to 100 characters, taken as sent (no trimming: it is the client's).
fn text(checks: &mut Checks, name: &str, value: &Option<String>) {
    if value
        .as_ref()
        .is_some_and(|value| value.is_empty() || value.chars().count() > MAX_TEXT)
    {
        checks.fail(
            name,
            "invalid_length",
            format!("1 to {MAX_TEXT} characters"),
        );
    }
}
