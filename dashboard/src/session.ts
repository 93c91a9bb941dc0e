// The signed-in user. The access token lives in memory only; the refresh token in this
// tab's sessionStorage (never localStorage), so a reload signs in again silently and
// closing the tab forgets it. Tokens are refreshed a minute before they expire; signing
// out ends the session on the server (its refresh token and access tokens stop working).

import { signal } from '@preact/signals';
import { ApiError, expectOk, send, type Service } from './api';

export type Role = 'admin' | 'manager' | 'staff' | 'pos' | 'analyst';

export interface Me {
  username: string;
  role: Role;
  stores: number[];
  all_stores: boolean;
}

interface TokenAnswer {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

const REFRESH_KEY = 'bazaar.refresh';
const REFRESH_EARLY_SECONDS = 60;

let access: string | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let refreshing: Promise<boolean> | undefined;

/** Who is signed in (undefined: nobody). */
export const me = signal<Me | undefined>(undefined);

export function token(): string | undefined {
  return access;
}

async function adopt(answer: TokenAnswer): Promise<void> {
  access = answer.access_token;
  sessionStorage.setItem(REFRESH_KEY, answer.refresh_token);
  clearTimeout(timer);
  const wait = Math.max(5, answer.expires_in - REFRESH_EARLY_SECONDS);
  timer = setTimeout(() => void refresh(), wait * 1000);
  me.value = expectOk<Me>(await send('query', 'GET', '/v1/me', access));
}

function forget(): void {
  access = undefined;
  clearTimeout(timer);
  sessionStorage.removeItem(REFRESH_KEY);
  me.value = undefined;
}

export async function signIn(username: string, password: string): Promise<void> {
  await adopt(expectOk(await send('ingest', 'POST', '/v1/auth/token', undefined, { username, password })));
}

/** Trades the refresh token for new tokens; false (and signed out) if it is no good. */
export function refresh(): Promise<boolean> {
  refreshing ??= (async () => {
    const refresh_token = sessionStorage.getItem(REFRESH_KEY);
    if (!refresh_token) {
      forget();
      return false;
    }
    try {
      const answer = await send('ingest', 'POST', '/v1/auth/refresh', undefined, { refresh_token });
      if (answer.status !== 200) {
        forget();
        return false;
      }
      await adopt(answer.body);
      return true;
    } catch {
      return false;
    } finally {
      refreshing = undefined;
    }
  })();
  return refreshing;
}

export async function signOut(): Promise<void> {
  const current = access;
  forget();
  if (current) await send('ingest', 'POST', '/v1/auth/logout', current).catch(() => undefined);
}

/** A call with the session's token; one refresh on 401, then signed out. */
export async function call<T>(service: Service, method: string, path: string, body?: unknown): Promise<T> {
  let answer = await send(service, method, path, access, body);
  if (answer.status === 401 && (await refresh())) {
    answer = await send(service, method, path, access, body);
  }
  if (answer.status === 401) forget();
  return expectOk<T>(answer);
}

/** Like `call`, but the answer whatever its status (a movement's 409 is an outcome). */
export async function attempt(service: Service, method: string, path: string, body?: unknown) {
  let answer = await send(service, method, path, access, body);
  if (answer.status === 401 && (await refresh())) {
    answer = await send(service, method, path, access, body);
  }
  if (answer.status === 401) {
    forget();
    throw new ApiError({ status: 401, detail: 'Signed out' });
  }
  return answer;
}

export function can(role: Role | undefined, ...roles: Role[]): boolean {
  return role !== undefined && roles.includes(role);
}
