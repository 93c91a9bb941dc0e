// Stock moving between stores: what is on its way here (received with what arrived: a
// shortfall is a loss in transit) and what this store sent.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { call, can, me } from '../session';
import { type Decision, recordMovement } from '../movements';
import { label, quantity, when } from '../format';
import { ScrollTable, type Column } from './table';

const TRANSFER_COLUMNS: Column[] = [
  { text: 'Product' },
  { text: 'From → to' },
  { text: 'Sent', numeric: true },
  { text: 'Received', numeric: true },
  { text: 'Status' },
];

interface Transfer {
  transfer_id: string;
  from_store_id: number;
  to_store_id: number;
  product_id: number;
  sku: string;
  status: string;
  quantity_sent: number;
  quantity_received: number | null;
  quantity_lost: number | null;
  sent_at: string;
}

const LOSS_REASONS = ['lost', 'damaged', 'expired', 'theft', 'other'];

export function Transfers({ store }: { store: number }) {
  const [transfers, setTransfers] = useState<Transfer[]>();
  const [message, setMessage] = useState<string>();
  // Read again after a receive, with its consistency token: the list then includes it.
  const [reload, setReload] = useState<{ token?: string }>({});
  useEffect(() => {
    const consistency = reload.token ? `&consistency_token=${reload.token}` : '';
    call<{ items: Transfer[] }>('query', 'GET', `/v1/stores/${store}/transfers?limit=100${consistency}`).then((page) =>
      setTransfers(page.items),
    );
  }, [store, reload]);

  async function receive(transfer: Transfer, event: SubmitEvent) {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    const arrived = Number(form.get('arrived'));
    const body: Record<string, unknown> = {
      movement_id: crypto.randomUUID(),
      store_id: store,
      product_id: transfer.product_id,
      kind: 'transfer_receive',
      transfer_id: transfer.transfer_id,
      quantity: arrived,
    };
    if (arrived < transfer.quantity_sent) body.reason = form.get('reason');
    let decision = await recordMovement(body);
    // A transfer is announced here a moment after it was sent: until then it is unknown.
    for (let retry = 0; retry < 5 && decision.status === 'rejected' && decision.code === 'unknown_transfer'; retry++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      body.movement_id = crypto.randomUUID();
      decision = await recordMovement(body);
    }
    setMessage(receipt(decision, `${quantity(arrived)} of ${transfer.sku}`));
    setReload({ token: decision.consistency_token });
  }

  if (!transfers) return html`<p aria-busy="true">Loading transfers…</p>`;
  const incoming = transfers.filter((transfer) => transfer.to_store_id === store && transfer.status === 'in_transit');
  const others = transfers.filter((transfer) => !incoming.includes(transfer));
  const mayReceive = can(me.value?.role, 'admin', 'manager', 'staff');
  return html`
    <h1>Transfers</h1>
    ${message && html`<p role="status">${message}</p>`}
    <h2>On the way here</h2>
    ${incoming.length === 0 && html`<p>Nothing is on its way to this store.</p>`}
    ${incoming.map(
      (transfer) => html`<article data-transfer=${transfer.transfer_id}>
        <header>${`${quantity(transfer.quantity_sent)} × ${transfer.sku} from store ${transfer.from_store_id}, sent ${when(transfer.sent_at)}`}</header>
        ${mayReceive &&
        html`<form onSubmit=${(event: SubmitEvent) => receive(transfer, event)}>
          <div class="grid">
            <label>
              Arrived
              <input name="arrived" type="number" min="0" max=${transfer.quantity_sent} value=${transfer.quantity_sent} required />
            </label>
            <label>
              If less: why
              <select name="reason">
                ${LOSS_REASONS.map((reason) => html`<option value=${reason}>${label(reason)}</option>`)}
              </select>
            </label>
          </div>
          <button type="submit">Receive</button>
        </form>`}
      </article>`,
    )}
    <h2>Sent and received</h2>
    <${ScrollTable} label="Transfers, newest first" columns=${TRANSFER_COLUMNS}>
          ${others.map(
            (transfer) => html`<tr>
              <td>${transfer.sku}</td>
              <td>${`${transfer.from_store_id} → ${transfer.to_store_id}`}</td>
              <td class="numeric">${quantity(transfer.quantity_sent)}</td>
              <td class="numeric">${quantity(transfer.quantity_received)}</td>
              <td>${label(transfer.status)}</td>
            </tr>`,
          )}
        <//>
  `;
}

/** What a receipt's decision tells the person who recorded it. */
function receipt(decision: Decision, what: string): string {
  switch (decision.status) {
    case 'applied':
      return `Received ${what}; the balance is now ${quantity(decision.balance_after)}.`;
    case 'duplicate':
      return `Already received ${what}.`;
    case 'pending':
      return `The receipt of ${what} is on its way; its outcome is not known yet.`;
    case 'rejected':
      return `Not received: ${label(decision.code)}.`;
    case 'refused':
      return `Not received: ${decision.errors[0]?.message ?? decision.detail}`;
  }
}
