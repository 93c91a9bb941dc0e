// Purchase orders: reorder suggestions → a draft (managers, admins) → submitted →
// approved or rejected (admins) → received (staff too) or cancelled. A button is shown only
// to the roles that may press it, and only in the states it applies to; the API decides.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../api';
import { call, can, me, type Role } from '../session';
import { label, money, quantity, when } from '../format';

interface Order {
  id: number;
  supplier_id: number;
  state: string;
  created_by: string;
  created_at: string;
  ordered_cost_paise: number | string;
  lines: { product_id: number; quantity: number; received_quantity?: number }[];
}

interface Suggestion {
  supplier_id: number;
  product_id: number;
  name: string;
  sku: string;
  on_hand: number;
  on_order: number;
  reorder_point: number | null;
  suggested_quantity: number;
  unit_cost_paise: number | null;
}

type Action = 'submit' | 'approve' | 'reject' | 'receive' | 'cancel';

/** Who may press what, and from which states (as ingest decides: transitions.rs). */
const ACTIONS: { action: Action; text: string; roles: Role[]; from: string[] }[] = [
  { action: 'submit', text: 'Submit', roles: ['admin', 'manager'], from: ['draft'] },
  { action: 'approve', text: 'Approve', roles: ['admin'], from: ['submitted'] },
  { action: 'reject', text: 'Reject', roles: ['admin'], from: ['submitted'] },
  { action: 'receive', text: 'Receive all', roles: ['admin', 'manager', 'staff'], from: ['approved', 'partially_received'] },
  { action: 'cancel', text: 'Cancel', roles: ['admin', 'manager'], from: ['draft', 'submitted', 'approved', 'partially_received'] },
];

export function Orders({ store }: { store: number }) {
  const role = me.value?.role;
  const [orders, setOrders] = useState<Order[]>();
  const [suggestions, setSuggestions] = useState<Suggestion[]>();
  const [message, setMessage] = useState<string>();
  const [version, setVersion] = useState(0);
  const [suppliers, setSuppliers] = useState<Map<number, string>>(new Map());
  useEffect(() => {
    call<{ items: { id: number; name: string }[] }>('query', 'GET', '/v1/suppliers?limit=500').then((page) =>
      setSuppliers(new Map(page.items.map((supplier) => [supplier.id, supplier.name]))),
    );
  }, []);
  const supplierName = (id: number) => suppliers.get(id) ?? `supplier ${id}`;
  useEffect(() => {
    call<{ items: Order[] }>('query', 'GET', `/v1/purchase-orders?store_id=${store}&limit=50`).then((page) => setOrders(page.items));
    call<{ items: Suggestion[] }>('query', 'GET', `/v1/stores/${store}/reorder-suggestions`).then((answer) => setSuggestions(answer.items));
  }, [store, version]);

  async function act(what: () => Promise<unknown>, done: string) {
    setMessage(undefined);
    try {
      await what();
      setMessage(done);
      setVersion((count) => count + 1);
    } catch (caught) {
      setMessage(caught instanceof ApiError ? caught.message : String(caught));
    }
  }

  const suggested = [...new Set((suggestions ?? []).map((item) => item.supplier_id))];
  return html`
    <h1>Purchase orders</h1>
    ${message && html`<p role="status">${message}</p>`}
    <h2>Reorder suggestions</h2>
    ${suggestions?.length === 0 && html`<p>Nothing needs ordering: every product is above its reorder point.</p>`}
    ${suggested.map(
      (supplier) => html`
        <div class="table-scroll" tabindex="0" role="region" aria-label=${`Suggestions for ${supplierName(supplier)}`}>
          <table>
            <caption>${supplierName(supplier)}</caption>
            <thead>
              <tr>
                <th scope="col">Product</th>
                <th scope="col" class="numeric">On hand</th>
                <th scope="col" class="numeric">On order</th>
                <th scope="col" class="numeric">Suggested</th>
              </tr>
            </thead>
            <tbody>
              ${suggestions!
                .filter((item) => item.supplier_id === supplier)
                .map(
                  (item) => html`<tr>
                    <td>${item.name}<br /><small>${item.sku}</small></td>
                    <td class="numeric">${quantity(item.on_hand)}</td>
                    <td class="numeric">${quantity(item.on_order)}</td>
                    <td class="numeric">${quantity(item.suggested_quantity)}</td>
                  </tr>`,
                )}
            </tbody>
          </table>
        </div>
        ${can(role, 'admin', 'manager') &&
        html`<button
          onClick=${() =>
            act(
              () => call('ingest', 'POST', '/v1/purchase-orders/from-suggestions', { store_id: store, supplier_id: supplier }),
              'Draft created from the suggestions.',
            )}
        >
          Draft an order for ${supplierName(supplier)}
        </button>`}
      `,
    )}
    <h2>Orders</h2>
    ${orders?.length === 0 && html`<p>No purchase order yet.</p>`}
    ${(orders ?? []).map(
      (order) => html`
        <article data-order=${order.id}>
          <header>
            <strong>Order ${order.id}</strong>${` · ${supplierName(order.supplier_id)} · `}<span class="badge"
              >${label(order.state)}</span
            >
          </header>
          <p>
            ${`${order.lines.length} lines · ${money(Number(order.ordered_cost_paise))} · by ${order.created_by}, ${when(order.created_at)}`}
          </p>
          <div role="group" aria-label=${`Actions on order ${order.id}`}>
            ${ACTIONS.filter((item) => can(role, ...item.roles) && item.from.includes(order.state)).map(
              (item) => html`<button
                class=${item.action === 'cancel' || item.action === 'reject' ? 'secondary' : ''}
                onClick=${() =>
                  act(
                    () =>
                      item.action === 'receive'
                        ? call('ingest', 'POST', `/v1/purchase-orders/${order.id}/receipts`, { receipt_id: crypto.randomUUID() })
                        : call('ingest', 'POST', `/v1/purchase-orders/${order.id}/${item.action}`),
                    `Order ${order.id}: ${item.text.toLowerCase()} done.`,
                  )}
              >
                ${item.text}
              </button>`,
            )}
          </div>
        </article>
      `,
    )}
  `;
}
