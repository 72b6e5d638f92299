// Overview: the last hour per minute as a chart, and how many messages
// wait, are in flight and sit in the DLQ. Polls GET /v2/stats.

import { api } from '../api.js';
import { h, fmtCount, fmtTime, table, failed, statusRegion } from '../dom.js';

export const title = 'Overview';

const SERIES = [
  ['published', 'Published'],
  ['delivered', 'Delivered'],
  ['failed', 'Failed'],
  ['retried', 'Retried'],
];
const POLL_MS = 5000;
const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

/** A line per series over the minutes; y from 0 to the largest count. */
function chart(minutes) {
  const W = 640, H = 220, L = 40, R = 10, T = 10, B = 26;
  const max = Math.max(1, ...minutes.flatMap((m) => SERIES.map(([k]) => m[k])));
  const x = (i) => L + (i * (W - L - R)) / Math.max(1, minutes.length - 1);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'chart-title chart-desc', focusable: 'false' });
  const totals = Object.fromEntries(SERIES.map(([k]) => [k, minutes.reduce((s, m) => s + m[k], 0)]));
  g.append(
    svg('title', { id: 'chart-title' }, 'Messages per minute, last hour'),
    svg('desc', { id: 'chart-desc' }, SERIES.map(([k, label]) => `${label}: ${totals[k]}`).join(', ') + ' in the last hour.'),
  );
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    g.append(svg('line', { class: 'grid-line', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  const labels = [[0, '60 min ago'], [30, '30 min ago'], [minutes.length - 1, 'now']];
  for (const [i, text] of labels) {
    const anchor = i === 0 ? 'start' : i === minutes.length - 1 ? 'end' : 'middle';
    g.append(svg('text', { x: x(i), y: H - 6, 'text-anchor': anchor }, text));
  }
  for (const [k] of SERIES) {
    const points = minutes.map((m, i) => `${x(i).toFixed(1)},${y(m[k]).toFixed(1)}`).join(' ');
    g.append(svg('polyline', { class: `l-${k}`, points, fill: 'none', 'stroke-width': 2.5, 'stroke-linejoin': 'round' }));
  }
  const legend = h('ul', { class: 'legend' }, SERIES.map(([k, label]) =>
    h('li', {}, h('span', { class: `swatch s-${k}`, 'aria-hidden': 'true' }), `${label}: ${totals[k]}`)));
  return h('figure', { class: 'chart' }, h('figcaption', {}, 'Messages per minute, last hour'), g, legend);
}

function cards(stats) {
  const m = stats.messages;
  const card = (label, value) => h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
  return h('div', { class: 'cards' },
    card('Deliveries in flight', fmtCount(m.inFlight, m.capped)),
    card('Waiting', fmtCount(m.waiting, m.capped)),
    card('Delayed', fmtCount(m.delayed, m.capped)),
    card('Retrying', fmtCount(m.retrying, m.capped)),
    card('In the DLQ', fmtCount(stats.dlq.all, stats.dlq.capped)));
}

function minuteTable(minutes) {
  const busy = minutes.filter((m) => SERIES.some(([k]) => m[k] > 0)).reverse();
  const rows = busy.map((m) => [fmtTime(m.time), ...SERIES.map(([k]) => h('td', { class: 'num' }, String(m[k])))]);
  return table('Busy minutes, newest first', ['Minute', ...SERIES.map(([, l]) => [l, 'num'])], rows, 'Nothing happened in the last hour.');
}

export async function render(main) {
  const region = statusRegion();
  const body = h('div', {});
  const updated = h('p', { class: 'hint' });
  main.append(h('h1', {}, 'Overview'), region, body, updated);
  let open = false;
  const tick = async () => {
    let stats;
    try {
      stats = await api('GET', '/v2/stats');
    } catch (e) {
      return failed(region, e);
    }
    const details = h('details', { open }, h('summary', {}, 'Per-minute numbers'), minuteTable(stats.minutes));
    details.addEventListener('toggle', () => { open = details.open; });
    body.replaceChildren(
      h('section', { 'aria-labelledby': 'now-h' }, h('h2', { id: 'now-h' }, 'Right now'), cards(stats)),
      h('section', { 'aria-labelledby': 'hour-h' }, h('h2', { id: 'hour-h' }, 'Last hour'), chart(stats.minutes), details),
    );
    updated.textContent = `Updated ${fmtTime(Date.now())}; refreshes every ${POLL_MS / 1000} s. Per-minute counts are kept in memory since ${fmtTime(stats.since)}.`;
    return true;
  };
  await tick();
  const timer = setInterval(tick, POLL_MS);
  return () => clearInterval(timer);
}
