// The store's event stream as a hook: handlers see every change while the page is open.

import { useEffect, useRef, useState } from 'preact/hooks';
import { follow, type Handlers } from '../live';

export function useLive(store: number, handlers: Omit<Handlers, 'onAlert' | 'onBalance'> & Partial<Handlers>): boolean {
  const [connected, setConnected] = useState(false);
  const latest = useRef(handlers);
  latest.current = handlers;
  useEffect(() => {
    const stop = new AbortController();
    void follow(
      store,
      {
        onStart: (position, reset) => latest.current.onStart(position, reset),
        onBalance: (event) => latest.current.onBalance?.(event),
        onAlert: (event) => latest.current.onAlert?.(event),
        onState: setConnected,
      },
      stop.signal,
    );
    return () => stop.abort();
  }, [store]);
  return connected;
}
