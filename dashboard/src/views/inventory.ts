// A store's stock: every product with its quantity, status and value; search, filters and
// sort; kept live by the store's event stream.

import { html } from 'htm/preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { call } from '../session';
import { follow as link, href } from '../router';
import { money, quantity, label } from '../format';
import { useLive } from './use-live';
import { ScrollTable, type Column } from './table';

const STOCK_COLUMNS: Column[] = [
  { text: 'Product' },
  { text: 'Category', wide: true },
  { text: 'Quantity', numeric: true },
  { text: 'Status' },
  { text: 'Value', numeric: true, wide: true },
];

export interface Item {
  product_id: number;
  sku: string;
  name: string;
  category: string | null;
  unit: string;
  quantity: number;
  average_unit_cost_paise: number | null;
  value_paise: number | null;
  selling_price_paise: number | null;
  reorder_point: number | null;
  stock_status: 'in_stock' | 'low' | 'out';
}

interface Page {
  items: Item[];
  next_cursor: string | null;
}

/** The status a quantity has against a reorder point (as query-api reckons it). */
export function status(amount: number, reorderPoint: number | null): Item['stock_status'] {
  if (amount <= 0) return 'out';
  return reorderPoint !== null && amount <= reorderPoint ? 'low' : 'in_stock';
}

const STATUS_TEXT: Record<Item['stock_status'], string> = {
  in_stock: 'In stock',
  low: 'Low',
  out: 'Out of stock',
};

export function StatusBadge({ value }: { value: Item['stock_status'] }) {
  return html`<span class=${`badge ${value}`}>${STATUS_TEXT[value]}</span>`;
}

/** Every page of the store's inventory, at least as new as `position`. */
async function loadAll(store: number, position: string | null): Promise<Item[]> {
  const items: Item[] = [];
  let cursor: string | null = null;
  do {
    const params = new URLSearchParams({ limit: '500' });
    if (cursor) params.set('cursor', cursor);
    if (position) params.set('consistency_token', position);
    const page: Page = await call<Page>('query', 'GET', `/v1/stores/${store}/inventory?${params}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

type Sort = 'name' | 'quantity' | 'value' | 'status';

export function Inventory({ store }: { store: number }) {
  const [items, setItems] = useState<Map<number, Item>>();
  const [error, setError] = useState<string>();
  const [search, setSearch] = useState('');
  const [category, setCategory] = useState('');
  const [wanted, setWanted] = useState('');
  const [sort, setSort] = useState<Sort>('status');

  const connected = useLive(store, {
    onStart(position) {
      loadAll(store, position)
        .then((loaded) => setItems(new Map(loaded.map((item) => [item.product_id, item]))))
        .catch((caught) => setError((caught as Error).message));
    },
    onBalance(event) {
      setItems((current) => {
        const item = current?.get(event.product_id);
        if (!current || !item) return current;
        const next = new Map(current);
        next.set(event.product_id, {
          ...item,
          quantity: event.quantity,
          stock_status: status(event.quantity, item.reorder_point),
          value_paise:
            item.average_unit_cost_paise === null ? item.value_paise : event.quantity * item.average_unit_cost_paise,
        });
        return next;
      });
    },
  });

  useEffect(() => setItems(undefined), [store]);

  const categories = useMemo(
    () => [...new Set([...(items?.values() ?? [])].map((item) => item.category).filter(Boolean))].sort() as string[],
    [items],
  );
  const shown = useMemo(() => {
    const needle = search.trim().toLowerCase();
    const rank = { out: 0, low: 1, in_stock: 2 };
    return [...(items?.values() ?? [])]
      .filter(
        (item) =>
          (!needle || item.name.toLowerCase().includes(needle) || item.sku.toLowerCase().includes(needle)) &&
          (!category || item.category === category) &&
          (!wanted || item.stock_status === wanted),
      )
      .sort((a, b) => {
        switch (sort) {
          case 'quantity':
            return a.quantity - b.quantity;
          case 'value':
            return (b.value_paise ?? 0) - (a.value_paise ?? 0);
          case 'status':
            return rank[a.stock_status] - rank[b.stock_status] || a.name.localeCompare(b.name);
          default:
            return a.name.localeCompare(b.name);
        }
      });
  }, [items, search, category, wanted, sort]);

  if (error) return html`<p role="alert">Could not load the stock: ${error}</p>`;
  if (!items) return html`<p aria-busy="true">Loading stock…</p>`;
  const total = [...items.values()].reduce((sum, item) => sum + (item.value_paise ?? 0), 0);
  const low = [...items.values()].filter((item) => item.stock_status !== 'in_stock').length;
  return html`
    <hgroup>
      <h1>Stock</h1>
      <p>
        ${`${items.size} products · ${low} low or out · value ${money(total)} · `}<span class="live" role="status"
          >${connected ? 'Live' : 'Reconnecting…'}</span
        >
      </p>
    </hgroup>
    <div class="filters">
      <label>
        Search
        <input type="search" placeholder="Name or SKU" value=${search} onInput=${(e: Event) => setSearch((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        Category
        <select value=${category} onChange=${(e: Event) => setCategory((e.target as HTMLSelectElement).value)}>
          <option value="">All</option>
          ${categories.map((name) => html`<option value=${name}>${label(name)}</option>`)}
        </select>
      </label>
      <label>
        Status
        <select value=${wanted} onChange=${(e: Event) => setWanted((e.target as HTMLSelectElement).value)}>
          <option value="">All</option>
          <option value="low">Low</option>
          <option value="out">Out of stock</option>
          <option value="in_stock">In stock</option>
        </select>
      </label>
      <label>
        Sort by
        <select value=${sort} onChange=${(e: Event) => setSort((e.target as HTMLSelectElement).value as Sort)}>
          <option value="status">Needs attention first</option>
          <option value="name">Name</option>
          <option value="quantity">Quantity</option>
          <option value="value">Value</option>
        </select>
      </label>
    </div>
    <${ScrollTable} label="Stock table" columns=${STOCK_COLUMNS}>
          ${shown.map(
            (item) => html`
              <tr class=${item.stock_status === 'in_stock' ? '' : item.stock_status} data-product=${item.product_id}>
                <td>
                  <a href=${href(`/stores/${store}/products/${item.product_id}`)} onClick=${link}>${item.name}</a>
                  <br /><small>${item.sku}</small>
                </td>
                <td class="hide-small">${item.category ? label(item.category) : '—'}</td>
                <td class="numeric" data-quantity>${quantity(item.quantity, item.unit)}</td>
                <td><${StatusBadge} value=${item.stock_status} /></td>
                <td class="numeric hide-small">${money(item.value_paise)}</td>
              </tr>
            `,
          )}
        <//>
    ${shown.length === 0 && html`<p>No product matches.</p>`}
  `;
}
