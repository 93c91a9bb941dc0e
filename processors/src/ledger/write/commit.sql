-- The batch's write (`COMMIT` in mod.rs): one statement; its parameters are named with a
-- leading colon, and `CommitParams` numbers them.
WITH ledger AS (
  INSERT INTO movements (movement_id, store_id, product_id, sku, kind, quantity, status, reject_reason,
    available_quantity, balance_after, original_status, occurred_at, received_at, recorded_at, actor,
    device_id, supplier_id, unit_cost_paise, unit_price_paise, reason, reference, offline, restock,
    note, original_movement_id, voids_movement_id, count_id, transfer_id, to_store_id, from_store_id,
    delta, average_cost_paise, source_partition, source_offset)
  SELECT * FROM UNNEST(:movement_id::uuid[], :store_id::int8[], :product_id::int8[], :sku::text[],
    :kind::text[], :quantity::int8[], :status::text[], :reject_reason::text[], :available_quantity::int8[],
    :balance_after::int8[], :original_status::text[], :occurred_at::timestamptz[],
    :received_at::timestamptz[], :recorded_at::timestamptz[], :actor::text[], :device_id::text[],
    :supplier_id::int8[], :unit_cost_paise::int8[], :unit_price_paise::int8[], :reason::text[],
    :reference::text[], :offline::bool[], :restock::bool[], :note::text[],
    :original_movement_id::uuid[], :voids_movement_id::uuid[], :count_id::uuid[],
    :transfer_id::uuid[], :to_store_id::int8[], :from_store_id::int8[], :delta::int8[],
    :average_cost_paise::int8[],
    :source_partition::int4[], :source_offset::int8[])
), firsts AS (
  INSERT INTO movement_ids (movement_id, store_id, status, reject_reason, balance_after, recorded_at,
    fingerprint, sold_product_id, sold_quantity, returned, voided_by)
  SELECT * FROM UNNEST(:first_id::uuid[], :first_store::int8[], :first_status::text[],
    :first_reason::text[], :first_balance::int8[], :first_at::timestamptz[], :first_fingerprint::int8[],
    :first_sold_product::int8[], :first_sold_quantity::int8[], :first_returned::int8[],
    :first_voided_by::uuid[])
), returns AS (
  UPDATE movement_ids m SET returned = GREATEST(COALESCE(m.returned, 0) + u.units, 0)
  FROM UNNEST(:returned_sale::uuid[], :returned_units::int8[]) AS u(movement_id, units)
  WHERE m.movement_id = u.movement_id
), voids AS (
  UPDATE movement_ids m SET voided_by = u.voided_by
  FROM UNNEST(:voided_id::uuid[], :voided_by::uuid[]) AS u(movement_id, voided_by)
  WHERE m.movement_id = u.movement_id
), sent AS (
  INSERT INTO transfers (transfer_id, from_store_id, to_store_id, product_id, sku, quantity_sent, sent_at,
    out_movement_id, unit_cost_paise)
  SELECT * FROM UNNEST(:sent_transfer::uuid[], :sent_from::int8[], :sent_to::int8[], :sent_product::int8[],
    :sent_sku::text[], :sent_quantity::int8[], :sent_at::timestamptz[], :sent_movement::uuid[],
    :sent_cost::int8[])
), received AS (
  UPDATE transfers t SET quantity_received = u.quantity, received_at = u.at,
    receive_movement_id = u.movement_id,
    loss_reason = CASE WHEN u.quantity < t.quantity_sent THEN COALESCE(u.reason, 'lost') END
  FROM UNNEST(:received_transfer::uuid[], :received_quantity::int8[], :received_on::timestamptz[],
    :received_movement::uuid[], :received_reason::text[]) AS u(transfer_id, quantity, at, movement_id, reason)
  WHERE t.transfer_id = u.transfer_id AND t.quantity_received IS NULL
  RETURNING t.to_store_id, t.product_id, t.received_at, t.quantity_sent - t.quantity_received AS lost,
    t.unit_cost_paise
), balance AS (
  INSERT INTO balances AS b (store_id, product_id, quantity, average_unit_cost_paise, last_movement_id,
    updated_at, counted_at)
  SELECT * FROM UNNEST(:balance_store::int8[], :balance_product::int8[], :balance_quantity::int8[],
    :balance_cost::int8[], :balance_movement::uuid[], :balance_at::timestamptz[],
    :balance_counted::timestamptz[])
  ON CONFLICT (store_id, product_id) DO UPDATE SET quantity = excluded.quantity,
    average_unit_cost_paise = excluded.average_unit_cost_paise,
    last_movement_id = excluded.last_movement_id, updated_at = excluded.updated_at,
    counted_at = GREATEST(b.counted_at, excluded.counted_at)
), sales AS (
  INSERT INTO sales_daily AS d (store_id, day, product_id, units_sold, revenue_paise, cost_of_goods_paise,
    sale_count, units_removed)
  SELECT u.store_id, (u.occurred_at AT TIME ZONE s.timezone)::date, u.product_id, sum(u.sold)::int8,
    sum(u.revenue), sum(u.cost), sum(u.sales)::int8, sum(u.removed)::int8
  FROM UNNEST(:sale_store::int8[], :sale_product::int8[], :sale_at::timestamptz[], :sold::int8[],
    :revenue::int8[], :cost::int8[], :sales::int8[], :removed::int8[])
    AS u(store_id, product_id, occurred_at, sold, revenue, cost, sales, removed)
  JOIN stores s ON s.id = u.store_id
  GROUP BY 1, 2, 3
  ON CONFLICT (store_id, day, product_id) DO UPDATE SET units_sold = d.units_sold + excluded.units_sold,
    revenue_paise = d.revenue_paise + excluded.revenue_paise,
    cost_of_goods_paise = d.cost_of_goods_paise + excluded.cost_of_goods_paise,
    sale_count = d.sale_count + excluded.sale_count,
    units_removed = d.units_removed + excluded.units_removed
), store_sales AS (
  INSERT INTO sales_daily_store AS d (store_id, day, units_sold, revenue_paise, cost_of_goods_paise,
    sale_count, units_removed)
  SELECT u.store_id, (u.occurred_at AT TIME ZONE s.timezone)::date, sum(u.sold)::int8,
    sum(u.revenue), sum(u.cost), sum(u.sales)::int8, sum(u.removed)::int8
  FROM UNNEST(:sale_store::int8[], :sale_product::int8[], :sale_at::timestamptz[], :sold::int8[],
    :revenue::int8[], :cost::int8[], :sales::int8[], :removed::int8[])
    AS u(store_id, product_id, occurred_at, sold, revenue, cost, sales, removed)
  JOIN stores s ON s.id = u.store_id
  GROUP BY 1, 2
  ON CONFLICT (store_id, day) DO UPDATE SET units_sold = d.units_sold + excluded.units_sold,
    revenue_paise = d.revenue_paise + excluded.revenue_paise,
    cost_of_goods_paise = d.cost_of_goods_paise + excluded.cost_of_goods_paise,
    sale_count = d.sale_count + excluded.sale_count,
    units_removed = d.units_removed + excluded.units_removed
), sourcing AS (
  INSERT INTO supplier_daily AS d (store_id, day, supplier_id, product_id, units_received, cost_paise,
    units_uncosted, stock_in_count)
  SELECT u.store_id, (u.occurred_at AT TIME ZONE s.timezone)::date, u.supplier_id, u.product_id,
    sum(u.units)::int8, sum(u.cost), sum(u.uncosted)::int8, sum(u.count)::int8
  FROM UNNEST(:in_store::int8[], :in_supplier::int8[], :in_product::int8[], :in_at::timestamptz[],
    :in_units::int8[], :in_cost::int8[], :in_uncosted::int8[], :in_count::int8[])
    AS u(store_id, supplier_id, product_id, occurred_at, units, cost, uncosted, count)
  JOIN stores s ON s.id = u.store_id
  GROUP BY 1, 2, 3, 4
  ON CONFLICT (store_id, day, supplier_id, product_id) DO UPDATE SET
    units_received = d.units_received + excluded.units_received,
    cost_paise = d.cost_paise + excluded.cost_paise,
    units_uncosted = d.units_uncosted + excluded.units_uncosted,
    stock_in_count = d.stock_in_count + excluded.stock_in_count
), changes AS (
  INSERT INTO stock_changes_daily AS d (store_id, day, change, reason, product_id, units, value_paise,
    units_without_cost, movements)
  SELECT u.store_id, (u.occurred_at AT TIME ZONE s.timezone)::date, u.change, u.reason, u.product_id,
    sum(u.units)::int8, sum(u.value), sum(u.uncosted)::int8, sum(u.count)::int8
  FROM (
    SELECT * FROM UNNEST(:change_store::int8[], :change_product::int8[], :change_at::timestamptz[],
      :change::text[], :change_reason::text[], :change_units::int8[], :change_value::int8[],
      :change_uncosted::int8[], :change_count::int8[])
    -- What transfers received short lost on the way, at the cost they were sent at.
    UNION ALL
    SELECT to_store_id, product_id, received_at, 'transit_loss', 'in_transit', lost,
      lost::numeric * COALESCE(unit_cost_paise, 0), CASE WHEN unit_cost_paise IS NULL THEN lost ELSE 0 END, 1
    FROM received WHERE lost > 0
  ) AS u(store_id, product_id, occurred_at, change, reason, units, value, uncosted, count)
  JOIN stores s ON s.id = u.store_id
  GROUP BY 1, 2, 3, 4, 5
  ON CONFLICT (store_id, day, change, reason, product_id) DO UPDATE SET
    units = d.units + excluded.units,
    value_paise = d.value_paise + excluded.value_paise,
    units_without_cost = d.units_without_cost + excluded.units_without_cost,
    movements = d.movements + excluded.movements
), deltas AS (
  INSERT INTO stock_deltas_daily AS d (store_id, product_id, occurred_day, recorded_day, delta)
  SELECT u.store_id, u.product_id, (u.occurred_at AT TIME ZONE 'UTC')::date,
    (u.recorded_at AT TIME ZONE 'UTC')::date, sum(u.delta)
  FROM UNNEST(:store_id::int8[], :product_id::int8[], :occurred_at::timestamptz[],
    :recorded_at::timestamptz[], :status::text[], :delta::int8[])
    AS u(store_id, product_id, occurred_at, recorded_at, status, delta)
  WHERE u.status = 'applied' AND u.delta <> 0
  GROUP BY 1, 2, 3, 4
  ON CONFLICT (store_id, occurred_day, recorded_day, product_id) DO UPDATE SET
    delta = d.delta + excluded.delta
), resolved AS (
  UPDATE alerts a SET resolved_at = u.at
  FROM UNNEST(:resolve_store::int8[], :resolve_product::int8[], :resolve_at::timestamptz[])
    AS u(store_id, product_id, at)
  WHERE a.store_id = u.store_id AND a.product_id = u.product_id AND a.resolved_at IS NULL
), raised AS (
  INSERT INTO alerts (store_id, product_id, kind, quantity, reorder_point, movement_id, raised_at, resolved_at)
  SELECT * FROM UNNEST(:alert_store::int8[], :alert_product::int8[], :alert_kind::text[],
    :alert_quantity::int8[], :alert_reorder_point::int8[], :alert_movement::uuid[],
    :alert_raised_at::timestamptz[], :alert_resolved_at::timestamptz[])
), moved AS (
  UPDATE processor_offsets o SET next_offset = u.next,
    published_offset = GREATEST(o.published_offset, u.published), updated_at = now()
  FROM UNNEST(:offset_partition::int4[], :offset_expected::int8[], :offset_next::int8[],
    :offset_published::int8[]) AS u(partition, expected, next, published)
  WHERE o.consumer_group = :group AND o.topic = :topic AND o.partition = u.partition
    AND o.next_offset = u.expected
  RETURNING 1
)
SELECT bazaar_require_offsets(cardinality(:offset_partition::int4[])::int8, (SELECT count(*) FROM moved))
