// Numbers as a shopkeeper reads them: rupees from paise, Indian digit grouping.

const rupees = new Intl.NumberFormat('en-IN', { style: 'currency', currency: 'INR' });
const count = new Intl.NumberFormat('en-IN');

export function money(paise: number | null | undefined): string {
  return paise === null || paise === undefined ? '—' : rupees.format(paise / 100);
}

export function quantity(value: number | null | undefined, unit?: string): string {
  if (value === null || value === undefined) return '—';
  return unit && unit !== 'pc' ? `${count.format(value)} ${unit}` : count.format(value);
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString('en-IN', { dateStyle: 'medium', timeStyle: 'short' }) : '—';
}

export function label(code: string): string {
  return code.replaceAll('_', ' ');
}
