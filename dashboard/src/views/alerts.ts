// The store's alerts, newest first, live.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { call } from '../session';
import { follow, href } from '../router';
import { label, quantity, when } from '../format';
import { useLive } from './use-live';
import type { AlertEvent } from '../live';

/** As `GET /v1/alerts` lists them and the event stream sends them. */
type Alert = AlertEvent;

const SHOWN = 50;

export function Alerts({ store }: { store: number }) {
  const [alerts, setAlerts] = useState<Alert[]>();
  const [names, setNames] = useState<Map<number, string>>(new Map());
  useEffect(() => {
    call<{ items: { id: number; name: string }[] }>('query', 'GET', '/v1/products?limit=1000').then((page) =>
      setNames(new Map(page.items.map((product) => [product.id, product.name]))),
    );
  }, []);
  const connected = useLive(store, {
    onStart() {
      call<{ items: Alert[] }>('query', 'GET', `/v1/alerts?store_id=${store}&limit=${SHOWN}`).then((page) =>
        setAlerts(page.items),
      );
    },
    onAlert(alert) {
      setAlerts((current) =>
        current?.some((seen) => seen.movement_id === alert.movement_id && seen.kind === alert.kind)
          ? current
          : [alert, ...(current ?? [])].slice(0, SHOWN),
      );
    },
  });
  if (!alerts) return html`<p aria-busy="true">Loading alerts…</p>`;
  return html`
    <hgroup>
      <h1>Alerts</h1>
      <p><span class="live" role="status">${connected ? 'Live' : 'Reconnecting…'}</span></p>
    </hgroup>
    ${alerts.length === 0 && html`<p>No alerts. Stock is above every reorder point.</p>`}
    <ul class="alerts" aria-label="Alerts, newest first">
      ${alerts.map(
        (alert) => html`<li>
          <strong>${label(alert.kind)}</strong>:
          <a href=${href(`/stores/${store}/products/${alert.product_id}`)} onClick=${follow}
            >${names.get(alert.product_id) ?? `product ${alert.product_id}`}</a
          >
          at ${quantity(alert.quantity)}${alert.reorder_point !== null && ` (reorder point ${alert.reorder_point})`}
          <br /><small>${when(alert.raised_at)}</small>
        </li>`,
      )}
    </ul>
  `;
}
