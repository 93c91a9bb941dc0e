// The users (admins only): who may sign in, with which role, for which stores. Changes
// are made through ingest's API (docs/api.md); this page shows them.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { call } from '../session';
import { when } from '../format';
import { ScrollTable, type Column } from './table';

const USER_COLUMNS: Column[] = [
  { text: 'Username' },
  { text: 'Role' },
  { text: 'Stores' },
  { text: 'Since', wide: true },
];

interface User {
  id: number;
  username: string;
  role: string;
  stores: number[];
  disabled: boolean;
  created_at: string;
}

export function Users() {
  const [users, setUsers] = useState<User[]>();
  useEffect(() => {
    call<{ items: User[] }>('query', 'GET', '/v1/users?limit=500').then((page) => setUsers(page.items));
  }, []);
  if (!users) return html`<p aria-busy="true">Loading users…</p>`;
  return html`
    <h1>Users</h1>
    <${ScrollTable} label="Users" columns=${USER_COLUMNS}>
          ${users.map(
            (user) => html`<tr>
              <td>${user.username}${user.disabled && html` <small>(disabled)</small>`}</td>
              <td>${user.role}</td>
              <td>${user.stores.length === 0 ? 'all' : user.stores.join(', ')}</td>
              <td class="hide-small">${when(user.created_at)}</td>
            </tr>`,
          )}
        <//>
  `;
}
