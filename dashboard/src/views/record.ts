// Record a movement (staff, managers, admins): the API's exact answer (`?wait`) is shown —
// applied with the new balance, or rejected with the reason — and its validation
// messages stand next to the field they name.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { call } from '../session';
import { type Decision, recordMovement } from '../movements';
import { follow, href } from '../router';
import { label, quantity } from '../format';

type Kind = 'sale' | 'stock_in' | 'removal' | 'return' | 'adjustment' | 'count' | 'transfer_out';

const KINDS: { value: Kind; text: string }[] = [
  { value: 'sale', text: 'Sale' },
  { value: 'stock_in', text: 'Stock in (purchase)' },
  { value: 'removal', text: 'Removal (damaged, expired, lost…)' },
  { value: 'return', text: 'Customer return' },
  { value: 'adjustment', text: 'Adjustment (+ or −, with a reason)' },
  { value: 'count', text: 'Count (what the shelf holds now)' },
  { value: 'transfer_out', text: 'Transfer to another store' },
];

const REASONS: Partial<Record<Kind, string[]>> = {
  removal: ['damaged', 'expired', 'lost', 'theft', 'other'],
  adjustment: ['correction', 'found', 'damaged', 'expired', 'theft', 'other'],
};

/** The form's fields, and the API fields each one answers for. */
const FIELDS: Record<string, string[]> = {
  product: ['product_id', 'sku'],
  quantity: ['quantity'],
  price: ['unit_price_paise'],
  cost: ['unit_cost_paise'],
  reason: ['reason'],
  destination: ['to_store_id'],
  kind: ['kind'],
};

/** What the pipeline decided (a refusal is shown at the fields instead). */
type Outcome = Exclude<Decision, { status: 'refused' }>;

interface Product {
  id: number;
  name: string;
  sku: string;
  unit: string;
}

function paise(rupees: FormDataEntryValue | null): number | undefined {
  const text = String(rupees ?? '').trim();
  return text === '' ? undefined : Math.round(Number(text) * 100);
}

export function Record({ store, product }: { store: number; product: string | null }) {
  const [products, setProducts] = useState<Product[]>();
  const [kind, setKind] = useState<Kind>('sale');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [outcome, setOutcome] = useState<Outcome>();
  const [failure, setFailure] = useState<string>();
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    call<{ items: Product[] }>('query', 'GET', '/v1/products?limit=1000').then((page) => setProducts(page.items));
  }, []);

  async function submit(event: SubmitEvent) {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    const body: Record<string, unknown> = {
      movement_id: crypto.randomUUID(),
      store_id: store,
      product_id: Number(form.get('product')),
      kind,
      quantity: Number(form.get('quantity')),
    };
    if (kind === 'sale' || kind === 'return') body.unit_price_paise = paise(form.get('price'));
    if (kind === 'stock_in') body.unit_cost_paise = paise(form.get('cost'));
    if (REASONS[kind]) body.reason = form.get('reason');
    if (kind === 'count') body.count_id = crypto.randomUUID();
    if (kind === 'transfer_out') {
      body.transfer_id = crypto.randomUUID();
      body.to_store_id = Number(form.get('destination'));
    }
    setBusy(true);
    setErrors({});
    setOutcome(undefined);
    setFailure(undefined);
    try {
      const decision = await recordMovement(body);
      if (decision.status !== 'refused') {
        setOutcome(decision);
      } else if (decision.errors.length > 0) {
        const found: Record<string, string> = {};
        for (const error of decision.errors) {
          const field = Object.keys(FIELDS).find((name) => FIELDS[name].includes(error.field)) ?? 'form';
          found[field] = found[field] ? `${found[field]}; ${error.message}` : error.message;
        }
        setErrors(found);
      } else {
        setFailure(decision.detail);
      }
    } catch (caught) {
      setFailure((caught as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const chosen = products?.find((item) => String(item.id) === product);
  const field = (name: string) =>
    errors[name] ? html`<small class="field-error" id=${`${name}-error`}>${errors[name]}</small>` : null;
  const invalid = (name: string) => (errors[name] ? { 'aria-invalid': 'true', 'aria-describedby': `${name}-error` } : {});
  return html`
    <h1>Record a movement</h1>
    <form onSubmit=${submit} novalidate>
      <label>
        Kind
        <select name="kind" value=${kind} onChange=${(e: Event) => setKind((e.target as HTMLSelectElement).value as Kind)}>
          ${KINDS.map((item) => html`<option value=${item.value}>${item.text}</option>`)}
        </select>
      </label>
      ${field('kind')}
      <label>
        Product
        <select name="product" required ...${invalid('product')}>
          ${!chosen && html`<option value="">Choose a product</option>`}
          ${(products ?? []).map(
            (item) => html`<option value=${item.id} selected=${item.id === chosen?.id}>${item.name} (${item.sku})</option>`,
          )}
        </select>
      </label>
      ${field('product')}
      <label>
        Quantity
        <input
          name="quantity"
          type="number"
          inputmode="numeric"
          min=${kind === 'adjustment' ? undefined : kind === 'count' ? 0 : 1}
          step="1"
          required
          ...${invalid('quantity')}
        />
      </label>
      ${field('quantity')}
      ${(kind === 'sale' || kind === 'return') &&
      html`<label>
          Unit price (₹)
          <input name="price" type="number" inputmode="decimal" min="0" step="0.01" ...${invalid('price')} />
        </label>
        ${field('price')}`}
      ${kind === 'stock_in' &&
      html`<label>
          Unit cost (₹)
          <input name="cost" type="number" inputmode="decimal" min="0" step="0.01" required ...${invalid('cost')} />
        </label>
        ${field('cost')}`}
      ${REASONS[kind] &&
      html`<label>
          Reason
          <select name="reason" required ...${invalid('reason')}>
            ${REASONS[kind]!.map((reason) => html`<option value=${reason}>${label(reason)}</option>`)}
          </select>
        </label>
        ${field('reason')}`}
      ${kind === 'transfer_out' &&
      html`<label>
          To store (its number)
          <input name="destination" type="number" inputmode="numeric" min="1" step="1" required ...${invalid('destination')} />
        </label>
        ${field('destination')}`}
      ${errors.form && html`<p class="field-error" role="alert">${errors.form}</p>`}
      <button type="submit" aria-busy=${busy} disabled=${busy}>Record</button>
    </form>
    ${failure && html`<p role="alert">${failure}</p>`}
    ${outcome && html`<${OutcomeView} outcome=${outcome} store=${store} />`}
  `;
}

function OutcomeView({ outcome, store }: { outcome: Outcome; store: number }) {
  const applied = outcome.status === 'applied' || outcome.status === 'duplicate';
  return html`
    <article class=${`outcome ${applied ? 'applied' : 'rejected'}`} role="status" aria-live="polite">
      ${outcome.status === 'applied' && html`<strong>Applied.</strong> New balance: ${quantity(outcome.balance_after)}.`}
      ${outcome.status === 'duplicate' && html`<strong>Already recorded</strong> (a repeat of an earlier movement).`}
      ${outcome.status === 'rejected' &&
      html`<strong>Rejected: ${label(outcome.code)}.</strong>
        ${outcome.available_quantity !== undefined && outcome.available_quantity !== null &&
        html` Only ${quantity(outcome.available_quantity)} in stock.`}`}
      ${outcome.status === 'pending' && html`<strong>Accepted</strong>; the outcome is not known yet. Check the stock page.`}
      <br /><a href=${href(`/stores/${store}`)} onClick=${follow}>Back to the stock</a>
    </article>
  `;
}
