import '@picocss/pico/css/pico.min.css';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { html } from 'htm/preact';
import { loadConfig } from './api';
import { refresh } from './session';
import { App } from './app';

async function start(): Promise<void> {
  await loadConfig();
  // A reload in a signed-in tab: sign in again with its refresh token.
  await refresh();
  render(html`<${App} />`, document.getElementById('app')!);
}

void start();
