// A table that scrolls sideways in its own region on a narrow screen (keyboard-reachable:
// axe's scrollable-region-focusable), the page itself never wider than the screen.

import { html } from 'htm/preact';
import type { ComponentChildren } from 'preact';

export interface Column {
  text: string;
  /** Right-aligned figures. */
  numeric?: boolean;
  /** Left out on a phone's screen. */
  wide?: boolean;
}

function classes(column: Pick<Column, 'numeric' | 'wide'>): string {
  return [column.numeric && 'numeric', column.wide && 'hide-small'].filter(Boolean).join(' ');
}

export function ScrollTable({ label, columns, children }: { label: string; columns: Column[]; children: ComponentChildren }) {
  return html`<div class="table-scroll" tabindex="0" role="region" aria-label=${label}>
    <table>
      <thead>
        <tr>
          ${columns.map((column) => html`<th scope="col" class=${classes(column)}>${column.text}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${children}
      </tbody>
    </table>
  </div>`;
}
