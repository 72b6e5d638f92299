// Logs: every state change, newest first (GET /v2/events), with every
// filter the API has, paged with its cursor. A message id opens its
// timeline.

import { api } from '../api.js';
import { h, badge, fmtTime, field, table, values, toMillis, pager, failed, statusRegion } from '../dom.js';

export const title = 'Logs';

const PAGE = 25;
const STATES = ['', 'CREATED', 'ACTIVE', 'RETRY', 'ERROR', 'IN_PROGRESS', 'DELIVERED', 'FAILED', 'CANCEL_REQUESTED', 'CANCELED'];
const TEXT_FILTERS = [
  ['messageId', 'Message id'], ['url', 'URL'], ['queueName', 'Queue'], ['topicName', 'URL group'],
  ['scheduleId', 'Schedule id'], ['label', 'Label'], ['flowControlKey', 'Flow-control key'],
];

function filterForm(initial, apply) {
  const inputs = TEXT_FILTERS.map(([name, label]) => field(label, h('input', { name, value: initial[name] || '', autocomplete: 'off' })));
  const state = h('select', { name: 'state' }, STATES.map((s) => h('option', { value: s, selected: s === (initial.state || '') }, s || 'Any')));
  const form = h('form', { class: 'panel', 'aria-label': 'Log filters' },
    h('div', { class: 'grid' },
      inputs,
      field('State', state),
      field('From', h('input', { type: 'datetime-local', name: 'fromDate', step: '1' })),
      field('To', h('input', { type: 'datetime-local', name: 'toDate', step: '1' }))),
    h('p', { class: 'actions' },
      h('button', { type: 'submit' }, 'Apply filters'),
      h('button', { type: 'reset', class: 'secondary' }, 'Clear')));
  const read = () => {
    const v = values(form);
    return { ...v, fromDate: toMillis(v.fromDate), toDate: toMillis(v.toDate) };
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(read()); });
  form.addEventListener('reset', () => setTimeout(() => apply(read())));
  return form;
}

function row(e) {
  const status = e.responseStatus !== undefined ? String(e.responseStatus || 'no answer') : '';
  return [
    h('span', { class: 'mono' }, fmtTime(e.time)),
    badge(e.state),
    h('a', { href: `#/message/${encodeURIComponent(e.messageId)}`, class: 'mono' }, e.messageId),
    h('td', { class: 'url' }, e.url),
    [e.queueName ? `queue ${e.queueName}` : '', e.topicName ? ` group ${e.topicName}` : ''].join('').trim(),
    [status, e.error ? ` ${e.error}` : ''].join('').trim(),
  ];
}

export async function render(main, { params }) {
  const region = statusRegion();
  const list = h('div', {});
  let filters = { ...params };
  const paging = pager('Log pages', async (cursor) => {
    const page = await api('GET', '/v2/events', { params: { ...filters, count: PAGE, cursor } });
    list.replaceChildren(table('Log entries, newest first',
      ['Time', 'State', 'Message', 'URL', 'Queue / group', 'Response'],
      page.events.map(row), 'No log entries match.'));
    return page.cursor;
  });
  const load = async (fn) => {
    try {
      await fn();
      region.textContent = '';
    } catch (e) {
      failed(region, e);
    }
  };
  const refresh = h('button', { type: 'button', class: 'secondary small', onclick: () => load(paging.reload) }, 'Refresh');
  main.append(h('h1', {}, 'Logs'),
    filterForm(params, (f) => { filters = f; load(paging.first); }),
    region, h('div', { class: 'actions' }, refresh), paging.bar, list);
  await load(paging.first);
}
