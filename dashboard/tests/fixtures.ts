// What the system test hands the browser tests: where the pipeline is, who may sign in,
// and a token of another client (a till) that records movements through the API.

import { expect, type Page, type TestInfo } from '@playwright/test';
import { randomUUID } from 'node:crypto';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through the system test \`dashboard\``);
  return value;
}

export const env = {
  ingest: () => required('INGEST_URL'),
  password: () => required('DASHBOARD_PASSWORD'),
  manager: () => required('DASHBOARD_MANAGER'),
  staff: () => required('DASHBOARD_STAFF'),
  admin: () => required('DASHBOARD_ADMIN'),
  tillToken: () => required('TILL_TOKEN'),
  store: () => Number(required('DASHBOARD_STORE')),
  otherStoreName: () => required('OTHER_STORE_NAME'),
  otherStore: () => Number(required('OTHER_STORE')),
};

/** Signs in at `path` (by default the store's stock, where a user of one store lands). */
export async function signIn(page: Page, username: string, path = `/app/stores/${env.store()}`): Promise<void> {
  await page.goto(path);
  await expect(page).toHaveURL(/\/app\/sign-in/);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(env.password());
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(new RegExp(`${path}$`));
}

/** A movement the till sends, with `fields`; asserts it was applied (`?wait`). */
async function record(product: number, kind: string, quantity: number, fields: Record<string, unknown>): Promise<any> {
  const body = { movement_id: randomUUID(), store_id: env.store(), product_id: product, kind, quantity, ...fields };
  const response = await fetch(`${env.ingest()}/v1/movements?wait=5s`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.tillToken()}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  expect(answer.status, JSON.stringify(answer)).toBe('applied');
  return answer;
}

/** A sale or stock-in the till records. */
export function till(product: number, kind: 'sale' | 'stock_in', quantity: number): Promise<any> {
  return record(product, kind, quantity, kind === 'sale' ? { unit_price_paise: 3000 } : { unit_cost_paise: 2500 });
}

/** Brings `product` to exactly `quantity` (a count). */
export async function stockAt(product: number, quantity: number): Promise<void> {
  await record(product, 'count', quantity, { count_id: randomUUID() });
}

/** What a person sees, saved for a reviewer (git-ignored). */
export async function screenshot(page: Page, info: TestInfo, name: string): Promise<void> {
  await page.screenshot({ path: `screenshots/${info.project.name}-${name}.png`, fullPage: true });
}

export function row(page: Page, product: number) {
  return page.locator(`tr[data-product="${product}"]`);
}
