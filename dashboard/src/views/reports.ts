// Sales for a chosen range (a chart by day, a table by product), the stock summary and
// the valuation by category.

import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { call } from '../session';
import { label, money, quantity } from '../format';
import { ScrollTable, type Column } from './table';

const SALES_COLUMNS: Column[] = [
  { text: 'Product' },
  { text: 'Units', numeric: true },
  { text: 'Revenue', numeric: true },
  { text: 'Margin', numeric: true, wide: true },
];
const VALUATION_COLUMNS: Column[] = [
  { text: 'Category' },
  { text: 'Products', numeric: true },
  { text: 'Units', numeric: true },
  { text: 'Value', numeric: true },
];

type Total = number | string;

interface Figures {
  units_sold: Total;
  revenue_paise: Total;
  cost_of_goods_paise: Total;
  margin_paise: Total;
  sales: number;
}

interface Sales {
  from: string;
  to: string;
  totals: Figures;
  rows: (Figures & { day?: string; product_id?: number; name?: string; sku?: string })[];
}

interface Summary {
  products: number;
  products_in_stock: number;
  units: Total;
  value_paise: Total;
  low_stock: number;
  out_of_stock: number;
}

interface Valuation {
  total_value_paise: Total;
  rows: { category: string | null; products: number; units: Total; value_paise: Total }[];
}

/** Sums past 2^53 come as strings: exact, shown as given. */
function amount(value: Total): number {
  return typeof value === 'number' ? value : Number(value);
}

export function Reports({ store }: { store: number }) {
  // The range the user chose. Until then the API's own: the 30 days to today in the store's
  // timezone — a date taken here would be the browser's clock in UTC (`toISOString`), a day
  // behind an Indian store's from midnight to 05:30 local time.
  const [chosen, setChosen] = useState<{ from: string; to: string }>();
  const [byDay, setByDay] = useState<Sales>();
  const [byProduct, setByProduct] = useState<Sales>();
  const [summary, setSummary] = useState<Summary>();
  const [valuation, setValuation] = useState<Valuation>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    const sales = (grouping: Record<string, string>) =>
      call<Sales>('query', 'GET', `/v1/stores/${store}/reports/sales?${new URLSearchParams({ ...chosen, ...grouping })}`);
    setError(undefined);
    Promise.all([sales({}), sales({ group_by: 'product' })])
      .then(([days, products]) => {
        setByDay(days);
        setByProduct(products);
      })
      .catch((caught) => setError((caught as Error).message));
  }, [store, chosen]);
  const from = chosen?.from ?? byDay?.from ?? '';
  const to = chosen?.to ?? byDay?.to ?? '';
  useEffect(() => {
    call<Summary>('query', 'GET', `/v1/stores/${store}/reports/stock-summary`).then(setSummary);
    call<Valuation>('query', 'GET', `/v1/stores/${store}/reports/valuation`).then(setValuation);
  }, [store]);
  return html`
    <h1>Reports</h1>
    <h2>Sales</h2>
    <div class="grid">
      <label>From <input type="date" value=${from} max=${to} onChange=${(e: Event) => setChosen({ from: (e.target as HTMLInputElement).value, to })} /></label>
      <label>To <input type="date" value=${to} min=${from} onChange=${(e: Event) => setChosen({ from, to: (e.target as HTMLInputElement).value })} /></label>
    </div>
    ${error && html`<p role="alert">${error}</p>`}
    ${byDay &&
    html`<p>
        ${`${byDay.totals.sales} sales · ${quantity(amount(byDay.totals.units_sold))} units · ` +
        `revenue ${money(amount(byDay.totals.revenue_paise))} · margin ${money(amount(byDay.totals.margin_paise))}`}
      </p>
      <${SalesChart} sales=${byDay} />`}
    ${byProduct &&
    html`<${ScrollTable} label="Sales by product" columns=${SALES_COLUMNS}>
          ${byProduct.rows.map(
            (row) => html`<tr>
              <td>${row.name}<br /><small>${row.sku}</small></td>
              <td class="numeric">${quantity(amount(row.units_sold))}</td>
              <td class="numeric">${money(amount(row.revenue_paise))}</td>
              <td class="numeric hide-small">${money(amount(row.margin_paise))}</td>
            </tr>`,
          )}
        <//>`}
    <h2>Stock now</h2>
    ${summary &&
    html`<p>
      ${`${summary.products_in_stock} of ${summary.products} products in stock · ${summary.low_stock} low · ` +
      `${summary.out_of_stock} out · value ${money(amount(summary.value_paise))}`}
    </p>`}
    ${valuation &&
    html`<${ScrollTable} label="Valuation by category" columns=${VALUATION_COLUMNS}>
          ${valuation.rows.map(
            (row) => html`<tr>
              <td>${row.category ? label(row.category) : 'none'}</td>
              <td class="numeric">${row.products}</td>
              <td class="numeric">${quantity(amount(row.units))}</td>
              <td class="numeric">${money(amount(row.value_paise))}</td>
            </tr>`,
          )}
        <//>`}
  `;
}

function SalesChart({ sales }: { sales: Sales }) {
  const target = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!target.current) return;
    // Every day of the range, those without sales at 0.
    const revenue = new Map(sales.rows.map((row) => [row.day, amount(row.revenue_paise) / 100]));
    const days: number[] = [];
    const values: number[] = [];
    for (let day = Date.parse(`${sales.from}T00:00:00Z`); day <= Date.parse(`${sales.to}T00:00:00Z`); day += 86_400_000) {
      days.push(day / 1000);
      values.push(revenue.get(new Date(day).toISOString().slice(0, 10)) ?? 0);
    }
    const plot = new uPlot(
      {
        width: target.current.clientWidth || 600,
        height: 220,
        series: [
          {},
          { label: 'Revenue (₹)', stroke: '#1d5e8f', fill: 'rgba(29, 94, 143, 0.25)', paths: uPlot.paths.bars!({ size: [0.6, 40] }) },
        ],
        scales: { x: { time: true, range: [days[0] - 43_200, days[days.length - 1] + 43_200] } },
        axes: [{}, { label: 'Revenue (₹)', size: 70 }],
        legend: { show: false },
      },
      [days, values],
      target.current,
    );
    return () => plot.destroy();
  }, [sales]);
  return html`<figure>
    <div class="chart" ref=${target} role="img" aria-label="Revenue by day"></div>
    ${sales.rows.length === 0 && html`<figcaption>No sales in this range.</figcaption>`}
  </figure>`;
}
