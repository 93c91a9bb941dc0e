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
  tillToken: () => required('TILL_TOKEN'),
  adminToken: () => required('ADMIN_TOKEN'),
  store: () => Number(required('DASHBOARD_STORE')),
  otherStoreName: () => required('OTHER_STORE_NAME'),
};

export async function signIn(page: Page, username: string): Promise<void> {
  await page.goto('/app/');
  await expect(page).toHaveURL(/\/app\/sign-in/);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(env.password());
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(new RegExp(`/app/stores/${env.store()}$`));
}

/** A movement sent by the till, with the exact answer. */
export async function till(product: number, kind: string, quantity: number): Promise<any> {
  const body: Record<string, unknown> = {
    movement_id: randomUUID(),
    store_id: env.store(),
    product_id: product,
    kind,
    quantity,
  };
  if (kind === 'stock_in') body.unit_cost_paise = 2500;
  if (kind === 'sale') body.unit_price_paise = 3000;
  const response = await fetch(`${env.ingest()}/v1/movements?wait=5s`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.tillToken()}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  expect(answer.status, JSON.stringify(answer)).toBe('applied');
  return answer;
}

/** Brings `product` to exactly `quantity` (a count). */
export async function stockAt(product: number, quantity: number): Promise<void> {
  const body = {
    movement_id: randomUUID(),
    store_id: env.store(),
    product_id: product,
    kind: 'count',
    quantity,
    count_id: randomUUID(),
  };
  const response = await fetch(`${env.ingest()}/v1/movements?wait=5s`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.tillToken()}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  expect(answer.status, JSON.stringify(answer)).toBe('applied');
}

/** What a person sees, saved for a reviewer (git-ignored). */
export async function screenshot(page: Page, info: TestInfo, name: string): Promise<void> {
  await page.screenshot({ path: `screenshots/${info.project.name}-${name}.png`, fullPage: true });
}

export function row(page: Page, product: number) {
  return page.locator(`tr[data-product="${product}"]`);
}

/** An admin's step on a purchase order, through ingest's API. */
export async function asAdmin(path: string): Promise<void> {
  const response = await fetch(`${env.ingest()}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.adminToken()}` },
  });
  expect(response.status, await response.text()).toBe(200);
}
