//! Any body a client can send to `POST /v1/movements`: parsing and validation never panic
//! and never fail as a server error, and a movement they accept is one the pipeline can
//! carry — within its limits, on a live store and product, and unchanged through Avro.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use ingest::catalog_cache::CatalogCache;
use ingest::checks::MAX_QUANTITY;
use ingest::movements::validate::{MovementRequest, Validator};
use libfuzzer_sys::fuzz_target;
use schemas::{AvroRecord, MovementKind, StockMovement, StoreId};
use service_kit::auth::{Principal, Role, StoreScope};
use service_kit::settings::MovementSettings;

const PRODUCTS: [(i64, &str, bool); 3] = [
    (1, "ATTA-5KG", true),
    (2, "DAL-1KG", true),
    (3, "OLD-SOAP", false),
];

fuzz_target!(|bytes: &[u8]| {
    let Ok(request) = serde_json::from_slice::<MovementRequest>(bytes) else {
        return;
    };
    let cache = CatalogCache::from_rows(
        [(1, true), (2, true), (3, false)],
        PRODUCTS,
        [(7, true), (8, false)],
    );
    let settings = MovementSettings {
        max_age: Duration::from_secs(30 * 86_400),
        max_future_skew: Duration::from_secs(300),
        offline_after: Duration::from_secs(600),
        catalog_refresh: Duration::from_millis(250),
    };
    let validator = Validator {
        cache: &cache,
        settings: &settings,
        now: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
    };
    let principal = Principal {
        subject: "pos-fuzz".to_owned(),
        role: Role::Manager,
        stores: StoreScope::Only(BTreeSet::from([StoreId(1), StoreId(3)])),
        session: None,
        token_version: 0,
        expires_at: i64::MAX,
    };
    let movement = match validator.validate(request, &principal, None) {
        Ok(movement) => movement,
        Err(problem) => {
            let status = problem.status();
            assert!(
                status.is_client_error(),
                "{status} for a client's body: {problem:?}"
            );
            return;
        }
    };
    assert_eq!(
        movement.store_id,
        StoreId(1),
        "only a live store of the token's"
    );
    // Positive, but for an adjustment (signed, never 0), a count and what arrived of a
    // transfer (0 or more).
    let quantities = match movement.kind {
        MovementKind::Adjustment => -MAX_QUANTITY..=MAX_QUANTITY,
        MovementKind::Count | MovementKind::TransferReceive => 0..=MAX_QUANTITY,
        _ => 1..=MAX_QUANTITY,
    };
    assert!(quantities.contains(&movement.quantity), "{movement:?}");
    assert!(movement.kind != MovementKind::Adjustment || movement.quantity != 0);
    let product = PRODUCTS
        .iter()
        .find(|(id, ..)| *id == movement.product_id.0);
    assert!(
        product.is_some_and(|(_, sku, live)| *live && movement.sku == *sku),
        "{movement:?}"
    );
    // Each kind's own fields and no other's (kinds.rs): a stock-in may name a supplier (a
    // cash purchase does not), a removal and an adjustment say why, a return may (goods not
    // resellable), a void names its movement, a transfer-out its transfer and another live
    // store, a receive its transfer (and may say why some was lost); no client sends a
    // transfer-in.
    let kind = movement.kind;
    assert!(movement.supplier_id.is_none() || kind == MovementKind::StockIn);
    assert!(movement.unit_cost_paise.is_none() || kind == MovementKind::StockIn);
    assert!(movement.unit_price_paise.is_none() || kind == MovementKind::Sale);
    assert!(movement.restock.is_none() || kind == MovementKind::Return);
    assert!(movement.original_movement_id.is_none() || kind == MovementKind::Return);
    assert!(movement.count_id.is_none() || kind == MovementKind::Count);
    assert_eq!(
        movement.voids_movement_id.is_some(),
        kind == MovementKind::Void
    );
    assert_ne!(kind, MovementKind::TransferIn);
    assert_eq!(
        movement.transfer_id.is_some(),
        matches!(
            kind,
            MovementKind::TransferOut | MovementKind::TransferReceive
        )
    );
    assert_eq!(
        movement.to_store_id.is_some(),
        kind == MovementKind::TransferOut
    );
    assert!(
        movement
            .to_store_id
            .is_none_or(|to| to != movement.store_id && to == StoreId(2)),
        "another live store: {movement:?}"
    );
    assert!(movement.from_store_id.is_none());
    match kind {
        MovementKind::Removal | MovementKind::Adjustment => assert!(movement.reason.is_some()),
        MovementKind::Return => {
            assert_eq!(movement.reason.is_some(), movement.restock == Some(false))
        }
        MovementKind::TransferReceive => {}
        _ => assert!(movement.reason.is_none(), "{movement:?}"),
    }
    let encoded = movement.encode().expect("an accepted movement encodes");
    assert_eq!(
        StockMovement::decode(&encoded).expect("and decodes"),
        movement
    );
});
