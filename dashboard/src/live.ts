// A store's live changes: query-api's server-sent events (GET /v1/stores/{id}/events),
// read with fetch so that the token travels in Authorization, never in a URL. A dropped
// stream reconnects with the last event id (Last-Event-ID), so nothing is missed; a
// `reset` says the page should read the inventory again.

import { refresh, token } from './session';

export interface BalanceEvent {
  product_id: number;
  quantity: number;
  movement_id: string;
  kind: string;
  moved: number;
  recorded_at: string;
}

export interface AlertEvent {
  product_id: number;
  kind: string;
  quantity: number;
  reorder_point: number | null;
  movement_id: string;
  raised_at: string;
}

export interface Handlers {
  /** The stream's start (`ready`) or a skip ahead (`reset`): read again at `position`. */
  onStart(position: string | null, reset: boolean): void;
  onBalance(event: BalanceEvent): void;
  onAlert(event: AlertEvent): void;
  onState?(connected: boolean): void;
}

const RETRY_MS = 1000;

/** Follows `store` until `signal` aborts. */
export async function follow(store: number, handlers: Handlers, signal: AbortSignal): Promise<void> {
  let lastId: string | undefined;
  while (!signal.aborted) {
    let wait = RETRY_MS;
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      const current = token();
      if (current) headers.authorization = `Bearer ${current}`;
      if (lastId) headers['last-event-id'] = lastId;
      const response = await fetch(`/v1/stores/${store}/events`, { headers, signal });
      if (response.status === 401) {
        if (!(await refresh())) return;
        continue;
      }
      if (!response.ok || !response.body) {
        // Too many streams open (429) or no processor yet (503): as long as the server says.
        wait = Math.max(RETRY_MS, Number(response.headers.get('retry-after') ?? 0) * 1000);
        throw new Error(`HTTP ${response.status}`);
      }
      handlers.onState?.(true);
      for await (const event of events(response.body)) {
        if (event.id) lastId = event.id;
        if (!event.data) continue;
        const data = JSON.parse(event.data);
        switch (event.type) {
          case 'ready':
          case 'reset':
            handlers.onStart(data.position ?? null, event.type === 'reset');
            break;
          case 'balance':
            handlers.onBalance(data);
            break;
          case 'alert':
            handlers.onAlert(data);
            break;
        }
      }
    } catch {
      // Dropped: try again below.
    }
    handlers.onState?.(false);
    if (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

interface RawEvent {
  id?: string;
  type: string;
  data: string;
}

/** The events of a text/event-stream body (the WHATWG parsing rules, trimmed to ours). */
async function* events(body: ReadableStream<Uint8Array>): AsyncGenerator<RawEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event: RawEvent = { type: 'message', data: '' };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        yield event;
        event = { type: 'message', data: '' };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') event.id = text;
      else if (field === 'event') event.type = text;
      else if (field === 'data') event.data = event.data ? `${event.data}\n${text}` : text;
    }
  }
}
