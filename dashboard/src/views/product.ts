// One product in one store: stock, reorder point, cost and price, a chart of its stock
// over the last 30 days and its movements (paginated, filterable), live. Managers and
// admins void an applied movement from its row (the API's exact answer is shown).

import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { call, can, me } from '../session';
import { recordMovement } from '../movements';
import { follow, href } from '../router';
import { label, money, quantity, when } from '../format';
import { StatusBadge, status, type Item } from './inventory';
import { useLive } from './use-live';

interface Movement {
  movement_id: string;
  kind: string;
  quantity: number;
  voids_movement_id: string | null;
  status: string;
  reject_reason: string | null;
  balance_after: number | null;
  stock_change: number | null;
  recorded_at: string;
  actor: string;
}

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

const KINDS = ['sale', 'stock_in', 'removal', 'return', 'adjustment', 'count', 'void', 'transfer_out', 'transfer_receive'];
/** What a void may undo: not a void, a count (count again) or a transfer's movement. */
const VOIDABLE = new Set(['sale', 'stock_in', 'removal', 'return', 'adjustment']);
const DAYS = 30;
/** Most movements the chart reads. */
const CHART_MOVEMENTS = 2000;

export function Product({ store, product }: { store: number; product: number }) {
  const [item, setItem] = useState<Item>();
  const [error, setError] = useState<string>();
  const [changed, setChanged] = useState(0);
  useLive(store, {
    onStart(position) {
      const token = position ? `?consistency_token=${position}` : '';
      call<Item>('query', 'GET', `/v1/stores/${store}/inventory/${product}${token}`)
        .then(setItem)
        .catch((caught) => setError((caught as Error).message));
    },
    onBalance(event) {
      if (event.product_id !== product) return;
      setItem((current) =>
        current && { ...current, quantity: event.quantity, stock_status: status(event.quantity, current.reorder_point) },
      );
      setChanged((count) => count + 1);
    },
  });
  if (error) return html`<p role="alert">Could not load the product: ${error}</p>`;
  if (!item) return html`<p aria-busy="true">Loading…</p>`;
  return html`
    <nav aria-label="breadcrumb">
      <ul>
        <li><a href=${href(`/stores/${store}`)} onClick=${follow}>Stock</a></li>
        <li>${item.name}</li>
      </ul>
    </nav>
    <hgroup>
      <h1>${item.name}</h1>
      <p>${item.sku}${item.category && ` · ${label(item.category)}`}</p>
    </hgroup>
    <div class="grid">
      <article>
        <header>In stock</header>
        <p style="font-size: 2rem; margin: 0" data-quantity>${quantity(item.quantity, item.unit)}</p>
        <${StatusBadge} value=${item.stock_status} />
      </article>
      <article>
        <header>Reorder point</header>
        <p style="font-size: 2rem; margin: 0">${item.reorder_point === null ? 'None' : quantity(item.reorder_point, item.unit)}</p>
      </article>
      <article>
        <header>Average cost · price</header>
        <p style="margin: 0">${money(item.average_unit_cost_paise)} · ${money(item.selling_price_paise)}</p>
        <small>Stock value ${money(item.value_paise)}</small>
      </article>
    </div>
    <p><a role="button" href=${href(`/stores/${store}/record?product=${product}`)} onClick=${follow}>Record a movement</a></p>
    <h2>Stock over the last ${DAYS} days</h2>
    <${Chart} store=${store} product=${product} changed=${changed} />
    <h2>Movements</h2>
    <${History} store=${store} product=${product} changed=${changed} />
  `;
}

function Chart({ store, product, changed }: { store: number; product: number; changed: number }) {
  const target = useRef<HTMLDivElement>(null);
  const [empty, setEmpty] = useState(false);
  useEffect(() => {
    let plot: uPlot | undefined;
    let cancelled = false;
    (async () => {
      const from = new Date(Date.now() - DAYS * 86_400_000).toISOString();
      const points: [number, number][] = [];
      let cursor: string | null = null;
      do {
        const params = new URLSearchParams({ store_id: String(store), product_id: String(product), status: 'applied', from, limit: '500' });
        if (cursor) params.set('cursor', cursor);
        const page: Page<Movement> = await call<Page<Movement>>('query', 'GET', `/v1/movements?${params}`);
        for (const movement of page.items) {
          if (movement.balance_after !== null) points.push([Date.parse(movement.recorded_at) / 1000, movement.balance_after]);
        }
        cursor = page.next_cursor;
      } while (cursor && points.length < CHART_MOVEMENTS);
      if (cancelled || !target.current) return;
      points.sort((a, b) => a[0] - b[0]);
      setEmpty(points.length === 0);
      if (points.length === 0) return;
      const width = target.current.clientWidth || 600;
      plot = new uPlot(
        {
          width,
          height: 220,
          series: [{}, { label: 'Quantity', stroke: '#1d5e8f', width: 2, paths: uPlot.paths.stepped!({ align: 1 }) }],
          axes: [{}, { label: 'Quantity' }],
          legend: { show: false },
        },
        [points.map((point) => point[0]), points.map((point) => point[1])],
        target.current,
      );
    })().catch(() => setEmpty(true));
    return () => {
      cancelled = true;
      plot?.destroy();
    };
  }, [store, product, changed]);
  return html`
    <figure>
      <div class="chart" ref=${target} role="img" aria-label=${`Stock of the product over the last ${DAYS} days`}></div>
      ${empty && html`<figcaption>No movement in the last ${DAYS} days.</figcaption>`}
    </figure>
  `;
}

function History({ store, product, changed }: { store: number; product: number; changed: number }) {
  const [kind, setKind] = useState('');
  const [pages, setPages] = useState<string[]>(['']);
  const [page, setPage] = useState<Page<Movement>>();
  const [message, setMessage] = useState<string>();
  const [voiding, setVoiding] = useState<string>();
  const cursor = pages[pages.length - 1];
  const mayVoid = can(me.value?.role, 'admin', 'manager');
  // Voided on this page: the voids it shows name them (the API refuses any other again).
  const voided = new Set((page?.items ?? []).filter((row) => row.kind === 'void' && row.status === 'applied').map((row) => row.voids_movement_id));
  useEffect(() => setPages(['']), [kind, product]);
  useEffect(() => {
    const params = new URLSearchParams({ store_id: String(store), product_id: String(product), limit: '20' });
    if (kind) params.set('kind', kind);
    if (cursor) params.set('cursor', cursor);
    call<Page<Movement>>('query', 'GET', `/v1/movements?${params}`).then(setPage);
  }, [store, product, kind, cursor, cursor === '' ? changed : 0]);

  async function undo(movement: Movement) {
    const what = `${label(movement.kind)} of ${Math.abs(movement.quantity)} (${when(movement.recorded_at)})`;
    if (!window.confirm(`Void the ${what}? Its stock change is reversed.`)) return;
    setVoiding(movement.movement_id);
    setMessage(undefined);
    try {
      const decision = await recordMovement({
        movement_id: crypto.randomUUID(),
        store_id: store,
        product_id: product,
        kind: 'void',
        quantity: Math.abs(movement.quantity),
        voids_movement_id: movement.movement_id,
      });
      if (decision.status === 'applied') {
        setMessage(`Voided the ${what}. New balance: ${quantity(decision.balance_after)}`);
      } else if (decision.status === 'rejected') {
        setMessage(`Not voided: ${label(decision.code)}.`);
      } else if (decision.status === 'refused') {
        setMessage(`Not voided: ${decision.detail}`);
      } else {
        setMessage('The void is on its way; its outcome is not known yet.');
      }
    } catch (caught) {
      setMessage(`Not voided: ${(caught as Error).message}`);
    } finally {
      setVoiding(undefined);
    }
  }

  return html`
    <label>
      Kind
      <select value=${kind} onChange=${(e: Event) => setKind((e.target as HTMLSelectElement).value)}>
        <option value="">All</option>
        ${KINDS.map((name) => html`<option value=${name}>${label(name)}</option>`)}
      </select>
    </label>
    ${message && html`<p role="status">${message}</p>`}
    <div class="table-scroll" tabindex="0" role="region" aria-label="Movements table">
      <table class="striped" aria-label="Movements, newest first">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Kind</th>
            <th scope="col" class="numeric">Change</th>
            <th scope="col">Outcome</th>
            <th scope="col" class="numeric">Balance</th>
            <th scope="col" class="hide-small">By</th>
            ${mayVoid && html`<th scope="col">Void</th>`}
          </tr>
        </thead>
        <tbody>
          ${(page?.items ?? []).map(
            (movement) => html`<tr data-movement=${movement.movement_id}>
              <td>${when(movement.recorded_at)}</td>
              <td>${label(movement.kind)}</td>
              <td class="numeric">${movement.stock_change === null ? '—' : movement.stock_change > 0 ? `+${movement.stock_change}` : movement.stock_change}</td>
              <td>${movement.status === 'rejected' ? `rejected: ${label(movement.reject_reason ?? '')}` : movement.status}</td>
              <td class="numeric">${quantity(movement.balance_after)}</td>
              <td class="hide-small">${movement.actor}</td>
              ${mayVoid &&
              html`<td>
                ${voided.has(movement.movement_id)
                  ? 'voided'
                  : movement.status === 'applied' &&
                    VOIDABLE.has(movement.kind) &&
                    html`<button
                      class="secondary outline"
                      disabled=${voiding !== undefined}
                      aria-busy=${voiding === movement.movement_id}
                      aria-label=${`Void the ${label(movement.kind)} of ${when(movement.recorded_at)}`}
                      onClick=${() => undo(movement)}
                    >
                      Void
                    </button>`}
              </td>`}
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
    <div role="group">
      <button class="secondary" disabled=${pages.length === 1} onClick=${() => setPages(pages.slice(0, -1))}>Newer</button>
      <button class="secondary" disabled=${!page?.next_cursor} onClick=${() => page?.next_cursor && setPages([...pages, page.next_cursor])}>
        Older
      </button>
    </div>
  `;
}
