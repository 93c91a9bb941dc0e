// Paths under /app/ (query-api answers index.html for each of them): a signal of the
// current one, and links that change it without a reload.

import { signal } from '@preact/signals';

const BASE = import.meta.env.BASE_URL.replace(/\/$/, '');

function current(): string {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : '/';
  return (path || '/') + location.search;
}

export const route = signal(current());

addEventListener('popstate', () => {
  route.value = current();
});

export function href(path: string): string {
  return `${BASE}${path}`;
}

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, '', href(path));
  else history.pushState(null, '', href(path));
  route.value = path;
  scrollTo(0, 0);
}

/** For `<a href=… onClick=${follow}>`: an in-app link, unless the user asked for a new tab. */
export function follow(event: MouseEvent): void {
  const link = event.currentTarget as HTMLAnchorElement;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.pathname.slice(BASE.length) + link.search);
}

/** The path's parts and query, e.g. `/stores/1/products/3?kind=sale`. */
export function parse(path: string): { parts: string[]; query: URLSearchParams } {
  const [pathname, search = ''] = path.split('?');
  return { parts: pathname.split('/').filter(Boolean), query: new URLSearchParams(search) };
}
