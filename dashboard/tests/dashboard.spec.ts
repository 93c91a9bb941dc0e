// The dashboard as a store's people use it, in Debian's Chromium against the real
// pipeline (ingest, the processors, query-api, Kafka, PostgreSQL, Redis), at a desktop's
// and a phone's size.

import { test, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { env, row, screenshot, signIn, stockAt, till } from './fixtures';

// The test catalog's products in the store (reorder point 10 each).
const RICE = 1;
const ATTA = 2;
const DAL = 3;
const SUGAR = 4;

test('a manager signs in and sees only their own stores', async ({ page }, info) => {
  await signIn(page, env.manager());
  const picker = page.getByRole('combobox', { name: 'Store' });
  await expect(picker.locator('option')).toHaveCount(1);
  await expect(picker).not.toContainText(env.otherStoreName());
  await screenshot(page, info, 'signed-in');
});

test('low and out of stock are highlighted', async ({ page }, info) => {
  await stockAt(ATTA, 4);
  await stockAt(RICE, 0);
  await signIn(page, env.manager());
  await expect(row(page, ATTA)).toHaveClass(/low/);
  await expect(row(page, ATTA).getByText('Low')).toBeVisible();
  await expect(row(page, RICE)).toHaveClass(/out/);
  await expect(row(page, RICE).getByText('Out of stock')).toBeVisible();
  await page.getByLabel('Status').selectOption('low');
  await expect(row(page, RICE)).toHaveCount(0);
  await expect(page.locator('tbody tr').getByText('Low')).toHaveCount(await page.locator('tbody tr').count());
  await screenshot(page, info, 'low-stock');
});

test('a sale recorded here changes the stock without a reload', async ({ page }, info) => {
  await stockAt(DAL, 20);
  await signIn(page, env.manager());
  await expect(row(page, DAL).locator('[data-quantity]')).toHaveText('20');
  // Set on this document: a reload would lose it.
  await page.evaluate(() => ((window as any).sameDocument = true));
  await page.getByRole('link', { name: 'Record' }).click();
  await page.getByLabel('Kind').selectOption('sale');
  await page.getByLabel('Product').selectOption(String(DAL));
  await page.getByLabel('Quantity').fill('3');
  await page.getByLabel('Unit price (₹)').fill('45.50');
  await page.getByRole('button', { name: 'Record' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Applied' })).toContainText('New balance: 17');
  await screenshot(page, info, 'sale-applied');
  await page.getByRole('link', { name: 'Back to the stock' }).click();
  await expect(row(page, DAL).locator('[data-quantity]')).toHaveText('17');
  expect(await page.evaluate(() => (window as any).sameDocument)).toBe(true);
});

test('a sale larger than the stock shows why it was rejected', async ({ page }, info) => {
  await stockAt(SUGAR, 5);
  await signIn(page, env.manager());
  await page.getByRole('link', { name: 'Record' }).click();
  await page.getByLabel('Product').selectOption(String(SUGAR));
  await page.getByLabel('Quantity').fill('8');
  await page.getByRole('button', { name: 'Record' }).click();
  const outcome = page.getByRole('status').filter({ hasText: 'Rejected' });
  await expect(outcome).toContainText('insufficient stock');
  await expect(outcome).toContainText('Only 5 in stock');
  // The API's validation messages stand next to the field they name.
  await page.getByLabel('Quantity').fill('0');
  await page.getByRole('button', { name: 'Record' }).click();
  await expect(page.locator('#quantity-error')).toBeVisible();
  await expect(page.getByLabel('Quantity')).toHaveAttribute('aria-invalid', 'true');
  await screenshot(page, info, 'sale-rejected');
});

test('a movement another client records appears live', async ({ page }, info) => {
  await stockAt(DAL, 30);
  await signIn(page, env.manager());
  await expect(row(page, DAL).locator('[data-quantity]')).toHaveText('30');
  await expect(page.getByText('Live', { exact: true })).toBeVisible();
  await till(DAL, 'sale', 7);
  await expect(row(page, DAL).locator('[data-quantity]')).toHaveText('23');
  // And on the product page, with the movement in its history.
  await row(page, DAL).getByRole('link').click();
  await expect(page.locator('[data-quantity]')).toHaveText('23');
  await till(DAL, 'sale', 2);
  await expect(page.locator('[data-quantity]')).toHaveText('21');
  await expect(page.getByRole('table', { name: 'Movements, newest first' }).locator('tbody tr').first()).toContainText('-2');
  await screenshot(page, info, 'product-live');
});

test('a manager voids a sale from the product history and the stock comes back', async ({ page }, info) => {
  await stockAt(RICE, 12);
  const sale = await till(RICE, 'sale', 5);
  await signIn(page, env.manager(), `/app/stores/${env.store()}/products/${RICE}`);
  await expect(page.locator('[data-quantity]')).toContainText('7');
  const history = page.getByRole('table', { name: 'Movements, newest first' });
  const saleRow = history.locator(`tr[data-movement="${sale.movement_id}"]`);
  // The count before it is not voidable: no button on its row.
  await expect(history.locator('tbody tr').filter({ hasText: 'count' }).first().getByRole('button')).toHaveCount(0);
  page.once('dialog', (dialog) => dialog.accept());
  await saleRow.getByRole('button', { name: /^Void the sale/ }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Voided the sale of 5' })).toContainText('New balance: 12');
  await expect(page.locator('[data-quantity]')).toContainText('12');
  await expect(history.locator('tbody tr').first()).toContainText('void');
  await expect(saleRow).toContainText('voided');
  await expect(saleRow.getByRole('button')).toHaveCount(0);
  await screenshot(page, info, 'sale-voided');
});

test('a purchase order goes from suggestion to received, each button for its roles', async ({ page }, info) => {
  await stockAt(SUGAR, 2);
  await signIn(page, env.manager());
  await page.getByRole('link', { name: 'Orders' }).click();
  await page.getByRole('button', { name: /Draft an order/ }).first().click();
  await expect(page.getByRole('status')).toContainText('Draft created');
  const draft = page.locator('article[data-order]').first();
  await expect(draft).toContainText('draft');
  const id = await draft.getAttribute('data-order');
  const order = page.locator(`article[data-order="${id}"]`);
  await order.getByRole('button', { name: 'Submit' }).click();
  await expect(order).toContainText('submitted');
  // Only admins approve.
  await expect(order.getByRole('button', { name: 'Approve' })).toHaveCount(0);
  await screenshot(page, info, 'order-submitted');

  // Staff: no step of a manager's or an admin's.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(page, env.staff());
  await page.getByRole('link', { name: 'Orders' }).click();
  await expect(order).toContainText('submitted');
  await expect(order.getByRole('button')).toHaveCount(0);
  await expect(page.getByRole('button', { name: /Draft an order/ })).toHaveCount(0);
  await expect(page.getByRole('link', { name: 'Reports' })).toHaveCount(0);

  // An admin approves (or could reject).
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(page, env.admin(), `/app/stores/${env.store()}/orders`);
  await expect(order.getByRole('button')).toHaveText(['Approve', 'Reject', 'Cancel']);
  await order.getByRole('button', { name: 'Approve' }).click();
  await expect(order).toContainText('approved');
  await screenshot(page, info, 'order-approved');

  // Staff receive the delivery.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(page, env.staff(), `/app/stores/${env.store()}/orders`);
  await expect(order).toContainText('approved');
  await expect(order.getByRole('button')).toHaveText(['Receive all']);
  await order.getByRole('button', { name: 'Receive all' }).click();
  await expect(order).toContainText('received');
  await page.getByRole('link', { name: 'Stock' }).click();
  await expect(row(page, SUGAR).locator('[data-quantity]')).not.toHaveText('2');
  await screenshot(page, info, 'order-received');
});

test('a transfer sent here is received at the other store, its shortfall lost on the way', async ({ page }, info) => {
  await stockAt(RICE, 12);
  await signIn(page, env.manager());
  await page.getByRole('link', { name: 'Record' }).click();
  await page.getByLabel('Kind').selectOption('transfer_out');
  await page.getByLabel('Product').selectOption(String(RICE));
  await page.getByLabel('Quantity').fill('5');
  await page.getByLabel('To store (its number)').fill(String(env.otherStore()));
  await page.getByRole('button', { name: 'Record' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Applied' })).toContainText('New balance: 7');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(page, env.admin(), `/app/stores/${env.otherStore()}/transfers`);
  const transfer = page.locator('article[data-transfer]').first();
  await expect(transfer).toContainText(`5 × `);
  await transfer.getByLabel('Arrived').fill('4');
  await transfer.getByLabel('If less: why').selectOption('damaged');
  await transfer.getByRole('button', { name: 'Receive' }).click();
  await expect(page.getByRole('status')).toContainText('Received 4');
  await expect(page.getByRole('region', { name: 'Transfers, newest first' }).locator('tbody tr').first()).toContainText('received');
  await screenshot(page, info, 'transfer-received');
});

test('a manager reads sales by day and by product, and the valuation', async ({ page }, info) => {
  await stockAt(DAL, 10);
  await till(DAL, 'sale', 1);
  await signIn(page, env.manager());
  await page.getByRole('link', { name: 'Reports' }).click();
  await expect(page.getByRole('img', { name: 'Revenue by day' }).locator('canvas')).toHaveCount(1);
  await expect(page.getByRole('region', { name: 'Sales by product' }).locator('tbody tr')).not.toHaveCount(0);
  // The range ends today in the store's timezone (Asia/Kolkata), not on the browser's UTC
  // date: from 18:30 UTC the two differ, and today's sale was missing from the report.
  const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Kolkata' }).format(new Date());
  await expect(page.getByLabel('To', { exact: true })).toHaveValue(today);
  await expect(page.getByRole('region', { name: 'Valuation by category' }).locator('tbody tr')).not.toHaveCount(0);
  await screenshot(page, info, 'reports');
});

test('an admin sees every store and the users', async ({ page }, info) => {
  await signIn(page, env.admin(), '/app/');
  await expect(page.getByRole('heading', { name: 'Your stores' })).toBeVisible();
  await expect(page.getByRole('combobox', { name: 'Store' })).toContainText(env.otherStoreName());
  await page.getByRole('link', { name: 'Users' }).click();
  const users = page.getByRole('region', { name: 'Users' });
  await expect(users).toContainText(env.manager());
  await expect(users).toContainText(env.staff());
  const results = await new AxeBuilder({ page }).analyze();
  expect(results.violations.filter((violation) => ['serious', 'critical'].includes(violation.impact ?? ''))).toEqual([]);
  await screenshot(page, info, 'users');
});

test('staff may record but see no manager pages', async ({ page }, info) => {
  await signIn(page, env.staff());
  await expect(page.getByRole('link', { name: 'Record' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Reports' })).toHaveCount(0);
  await expect(page.getByRole('link', { name: 'Users' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: /approve/i })).toHaveCount(0);
  // Nor a void: staff record movements but do not undo them.
  await page.goto(`/app/stores/${env.store()}/products/${RICE}`);
  await expect(page.getByRole('table', { name: 'Movements, newest first' }).locator('tbody tr')).not.toHaveCount(0);
  await expect(page.getByRole('button', { name: /^Void/ })).toHaveCount(0);
  for (const [path, heading] of [
    [`/app/stores/${env.store()}/reports`, 'Reports'],
    ['/app/users', 'Users'],
  ]) {
    await page.goto(path);
    await expect(page.getByRole('heading', { name: 'Stock' }).or(page.getByRole('heading', { name: 'Your stores' }))).toBeVisible();
    await expect(page.getByRole('heading', { name: heading })).toHaveCount(0);
  }
  await screenshot(page, info, 'staff');
});

test('after signing out, every page asks to sign in', async ({ page }, info) => {
  await signIn(page, env.manager());
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/app\/sign-in/);
  for (const path of [`/app/stores/${env.store()}`, `/app/stores/${env.store()}/record`, `/app/stores/${env.store()}/products/${DAL}`]) {
    await page.goto(path);
    await expect(page).toHaveURL(/\/app\/sign-in\?next=/);
    await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  }
  await screenshot(page, info, 'signed-out');
});

test('no serious accessibility violation on any page', async ({ page }) => {
  const check = async (name: string) => {
    const results = await new AxeBuilder({ page }).analyze();
    const serious = results.violations.filter((violation) => ['serious', 'critical'].includes(violation.impact ?? ''));
    // Nothing wider than the screen (a phone would hide it): only tables scroll, in their region.
    const width = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    expect(width[0], `${name} is wider than the screen`).toBeLessThanOrEqual(width[1]);
    const found = serious.map(
      (violation) => `${name}: ${violation.id} ${violation.help} at ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`,
    );
    expect(found).toEqual([]);
  };
  await page.goto('/app/');
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await check('sign-in');
  await signIn(page, env.manager());
  await expect(row(page, DAL)).toBeVisible();
  await check('stock');
  await row(page, DAL).getByRole('link').click();
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await check('product');
  await page.getByRole('link', { name: 'Record' }).click();
  await check('record');
  await page.getByRole('link', { name: 'Alerts' }).click();
  await expect(page.getByRole('heading', { name: 'Alerts' })).toBeVisible();
  await check('alerts');
  await page.getByRole('link', { name: 'Reports' }).click();
  await expect(page.getByRole('region', { name: 'Sales by product' })).toBeVisible();
  await check('reports');
  await page.getByRole('link', { name: 'Orders' }).click();
  await expect(page.getByRole('heading', { name: 'Purchase orders' })).toBeVisible();
  await check('orders');
  await page.getByRole('link', { name: 'Transfers' }).click();
  await expect(page.getByRole('heading', { name: 'Transfers' })).toBeVisible();
  await check('transfers');
});
