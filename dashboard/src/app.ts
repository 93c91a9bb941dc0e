// The page frame (top bar with the store picker and sign-out) and the routes.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { call, can, me, signOut } from './session';
import { follow, href, navigate, parse, route } from './router';
import { SignIn } from './views/signin';
import { Inventory } from './views/inventory';
import { Product } from './views/product';
import { Record } from './views/record';
import { Alerts } from './views/alerts';
import { Reports } from './views/reports';
import { Orders } from './views/orders';
import { Users } from './views/users';
import { Transfers } from './views/transfers';

export interface Store {
  id: number;
  code: string;
  name: string;
  city: string | null;
}

const STORE_KEY = 'bazaar.store';

/** The stores the signed-in user may see (`/v1/stores` is scoped by the token). */
function useStores(): Store[] | undefined {
  const [stores, setStores] = useState<Store[]>();
  const user = me.value;
  useEffect(() => {
    if (!user) return;
    call<{ items: Store[] }>('query', 'GET', '/v1/stores?limit=200').then((page) => setStores(page.items));
  }, [user?.username]);
  return stores;
}

export function App() {
  const user = me.value;
  const path = route.value;
  const { parts, query } = parse(path);
  const stores = useStores();

  if (!user) {
    if (parts[0] !== 'sign-in') {
      queueMicrotask(() => navigate(`/sign-in?next=${encodeURIComponent(path)}`, true));
      return null;
    }
    return html`<main class="container"><${SignIn} next=${query.get('next') ?? '/'} /></main>`;
  }
  if (parts[0] === 'sign-in') {
    queueMicrotask(() => navigate(query.get('next') ?? '/', true));
    return null;
  }
  const store = parts[0] === 'stores' && parts[1] ? Number(parts[1]) : undefined;
  if (store !== undefined) localStorage.setItem(STORE_KEY, String(store));

  let page;
  if (parts[0] === 'users' && user.role === 'admin') {
    page = html`<${Users} />`;
  } else if (store === undefined) {
    page = html`<${StorePicker} stores=${stores} />`;
  } else if (parts[2] === 'products' && parts[3]) {
    page = html`<${Product} store=${store} product=${Number(parts[3])} />`;
  } else if (parts[2] === 'record') {
    page = html`<${Record} store=${store} product=${query.get('product')} />`;
  } else if (parts[2] === 'alerts') {
    page = html`<${Alerts} store=${store} />`;
  } else if (parts[2] === 'transfers') {
    page = html`<${Transfers} store=${store} />`;
  } else if (parts[2] === 'reports' && can(user.role, 'admin', 'manager', 'analyst')) {
    page = html`<${Reports} store=${store} />`;
  } else if (parts[2] === 'orders' && can(user.role, 'admin', 'manager', 'staff', 'analyst')) {
    page = html`<${Orders} store=${store} />`;
  } else {
    page = html`<${Inventory} store=${store} />`;
  }
  return html`
    <header class="container">
      <nav class="top">
        <ul>
          <li><a class="brand" href=${href('/')} onClick=${follow}>Bazaar</a></li>
        </ul>
        <ul>
          ${user.role === 'admin' && html`<li><a href=${href('/users')} onClick=${follow}>Users</a></li>`}
          <li><small>${user.username}</small></li>
          <li>
            <button
              class="secondary outline compact"
              onClick=${async () => {
                await signOut();
                navigate('/sign-in', true);
              }}
            >
              Sign out
            </button>
          </li>
        </ul>
      </nav>
      <nav class="sections" aria-label="Sections">
        ${stores && stores.length > 0 &&
        html`<select
          aria-label="Store"
          value=${store ?? ''}
          onChange=${(event: Event) => navigate(`/stores/${(event.target as HTMLSelectElement).value}`)}
        >
          ${store === undefined && html`<option value="" disabled>Choose a store</option>`}
          ${stores.map((item) => html`<option value=${item.id}>${item.name}</option>`)}
        </select>`}
        ${store !== undefined &&
        html`<ul>
          <li><a href=${href(`/stores/${store}`)} onClick=${follow}>Stock</a></li>
          <li><a href=${href(`/stores/${store}/alerts`)} onClick=${follow}>Alerts</a></li>
          ${can(user.role, 'admin', 'manager', 'staff') &&
          html`<li><a href=${href(`/stores/${store}/record`)} onClick=${follow}>Record</a></li>`}
          ${can(user.role, 'admin', 'manager', 'analyst') &&
          html`<li><a href=${href(`/stores/${store}/reports`)} onClick=${follow}>Reports</a></li>`}
          <li><a href=${href(`/stores/${store}/transfers`)} onClick=${follow}>Transfers</a></li>
          <li><a href=${href(`/stores/${store}/orders`)} onClick=${follow}>Orders</a></li>
        </ul>`}
      </nav>
    </header>
    <main class="container">${page}</main>
  `;
}

function StorePicker({ stores }: { stores?: Store[] }) {
  const remembered = Number(localStorage.getItem(STORE_KEY));
  useEffect(() => {
    if (stores?.some((store) => store.id === remembered)) navigate(`/stores/${remembered}`, true);
    else if (stores?.length === 1) navigate(`/stores/${stores[0].id}`, true);
  }, [stores]);
  if (!stores) return html`<p aria-busy="true">Loading your stores…</p>`;
  return html`
    <h1>Your stores</h1>
    ${stores.length === 0 && html`<p>No store is assigned to you yet. Ask an administrator.</p>`}
    <ul>
      ${stores.map(
        (store) => html`<li>
          <a href=${href(`/stores/${store.id}`)} onClick=${follow}>${store.name}</a>
          ${store.city && html` — ${store.city}`} (${store.code})
        </li>`,
      )}
    </ul>
  `;
}
