//! An order's lines: what a new or edited order may hold, checked together, priced from
//! the supplier's current prices where no cost is given, and written in two statements.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use service_kit::problem::ApiError;
use sqlx::{Postgres, Transaction};
use utoipa::ToSchema;

use crate::catalog::Checks;
use crate::checks::{MAX_PAISE, MAX_QUANTITY};

use super::MAX_LINES;

/// A line of a new or edited order.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    pub product_id: i64,
    /// In the product's unit, 1 to 1,000,000,000.
    pub quantity: i64,
    /// The expected cost of one unit; the supplier's current price for the store when absent.
    pub unit_cost_paise: Option<i64>,
}

/// Lines as (product, quantity, unit cost if given): `min` to [`MAX_LINES`] of them, one
/// per product, quantities and costs in range.
pub(super) fn check_lines(checks: &mut Checks, lines: &[(i64, i64, Option<i64>)], min: usize) {
    if !(min..=MAX_LINES).contains(&lines.len()) {
        checks.fail(
            "lines",
            "invalid_length",
            format!("{min} to {MAX_LINES} lines"),
        );
        return;
    }
    let mut seen = HashSet::new();
    for (at, &(product, quantity, cost)) in lines.iter().enumerate() {
        if !seen.insert(product) {
            checks.fail(
                &format!("lines[{at}].product_id"),
                "duplicate",
                "one line per product",
            );
        }
        checks
            .range(
                &format!("lines[{at}].quantity"),
                Some(quantity),
                1..=MAX_QUANTITY,
                "",
            )
            .range(
                &format!("lines[{at}].unit_cost_paise"),
                cost,
                0..=MAX_PAISE,
                " paise",
            );
    }
}

impl NewLine {
    pub(super) fn parts(lines: &[Self]) -> Vec<(i64, i64, Option<i64>)> {
        lines
            .iter()
            .map(|line| (line.product_id, line.quantity, line.unit_cost_paise))
            .collect()
    }
}

/// The order's lines as they will be stored: each product live, each cost given or the
/// supplier's current price for the store (`422` naming every line that has neither).
pub(super) async fn priced_lines(
    transaction: &mut Transaction<'_, Postgres>,
    store: i64,
    supplier: i64,
    lines: &[NewLine],
) -> Result<Vec<(i64, i64, i64)>, ApiError> {
    let products: Vec<i64> = lines.iter().map(|line| line.product_id).collect();
    let live: HashSet<i64> = sqlx::query_scalar(
        "SELECT id FROM products WHERE id = ANY($1) AND deleted_at IS NULL FOR SHARE",
    )
    .bind(&products)
    .fetch_all(&mut **transaction)
    .await?
    .into_iter()
    .collect();
    let prices: HashMap<i64, i64> = sqlx::query_as(
        "SELECT DISTINCT ON (sp.product_id) sp.product_id, sp.unit_cost_paise
           FROM supplier_prices sp JOIN stores s ON s.id = sp.store_id
          WHERE sp.store_id = $1 AND sp.supplier_id = $2 AND sp.product_id = ANY($3)
            AND sp.deleted_at IS NULL
            AND sp.effective_from <= (now() AT TIME ZONE s.timezone)::date
          ORDER BY sp.product_id, sp.effective_from DESC",
    )
    .bind(store)
    .bind(supplier)
    .bind(&products)
    .fetch_all(&mut **transaction)
    .await?
    .into_iter()
    .collect();
    let mut checks = Checks::default();
    let mut priced = Vec::with_capacity(lines.len());
    for (at, line) in lines.iter().enumerate() {
        if !live.contains(&line.product_id) {
            checks.fail(
                &format!("lines[{at}].product_id"),
                "unknown",
                format!("no such product: {}", line.product_id),
            );
            continue;
        }
        match line
            .unit_cost_paise
            .or_else(|| prices.get(&line.product_id).copied())
        {
            Some(cost) => priced.push((line.product_id, line.quantity, cost)),
            None => {
                checks.fail(
                    &format!("lines[{at}].unit_cost_paise"),
                    "no_supplier_price",
                    "the supplier has no current price for this product in this store; give unit_cost_paise",
                );
            }
        }
    }
    checks.done_unprocessable()?;
    Ok(priced)
}

/// Replaces the lines of order `id` with `lines` as (product, quantity, unit cost): two
/// statements, whatever the number of lines.
pub(super) async fn write_lines(
    transaction: &mut Transaction<'_, Postgres>,
    id: i64,
    lines: &[(i64, i64, i64)],
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM purchase_order_lines WHERE purchase_order_id = $1")
        .bind(id)
        .execute(&mut **transaction)
        .await?;
    let (products, quantities, costs): (Vec<i64>, Vec<i64>, Vec<i64>) = lines.iter().fold(
        Default::default(),
        |(mut p, mut q, mut c), &(product, quantity, cost)| {
            p.push(product);
            q.push(quantity);
            c.push(cost);
            (p, q, c)
        },
    );
    sqlx::query(
        "INSERT INTO purchase_order_lines (purchase_order_id, product_id, quantity, unit_cost_paise)
         SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[])",
    )
    .bind(id)
    .bind(&products)
    .bind(&quantities)
    .bind(&costs)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}
