// The dead-letter queue (GET /v2/dlq, newest first, paged): filters, the
// failed response, retry or delete one or the selected entries.

import { api, seg } from '../api.js';
import { h, fmtTime, field, table, values, toMillis, pager, confirmDialog, notice, failed, statusRegion, headersTable, bodyBlock } from '../dom.js';

export const title = 'DLQ';

const PAGE = 25;
const FILTERS = [
  ['messageId', 'Message id'], ['url', 'URL'], ['queueName', 'Queue'], ['topicName', 'URL group'],
  ['scheduleId', 'Schedule id'], ['label', 'Label'], ['responseStatus', 'Response status'],
];

/** DLQ ids start with the time the message failed. */
const failedAt = (dlqId) => Number(String(dlqId).split('-')[0]);

export async function render(main) {
  const region = statusRegion();
  const list = h('div', {});
  let filters = {};
  const selected = new Set();
  const retrySelected = h('button', { type: 'button', class: 'small', disabled: true }, 'Retry selected');
  const deleteSelected = h('button', { type: 'button', class: 'danger small', disabled: true }, 'Delete selected');
  const sync = () => {
    retrySelected.disabled = deleteSelected.disabled = selected.size === 0;
    retrySelected.textContent = `Retry selected (${selected.size})`;
    deleteSelected.textContent = `Delete selected (${selected.size})`;
  };
  const act = async (fn, done) => {
    try {
      const res = await fn();
      notice(region, 'ok', done(res));
      await paging.reload();
    } catch (e) { failed(region, e); }
  };

  const rows = (m) => {
    const id = m.dlqId;
    const box = h('input', { type: 'checkbox', 'aria-label': `Select ${id}`, checked: selected.has(id) });
    box.addEventListener('change', () => { if (box.checked) selected.add(id); else selected.delete(id); sync(); });
    const detailsRow = h('tr', { class: 'details', hidden: true });
    const toggle = h('button', { type: 'button', class: 'secondary small', 'aria-expanded': 'false', 'aria-label': `Response of ${id}` }, 'Response');
    toggle.addEventListener('click', () => {
      const open = detailsRow.hidden;
      detailsRow.hidden = !open;
      toggle.setAttribute('aria-expanded', String(open));
      if (open && !detailsRow.firstChild) {
        detailsRow.append(h('td', { colspan: 7 },
          m.error ? h('p', {}, m.error) : null,
          headersTable('Response headers', m.responseHeader),
          bodyBlock('Response body', m.responseBody ?? m.responseBodyBase64 ?? '', m.responseBodyBase64 !== undefined)));
      }
    });
    const retry = h('button', { type: 'button', class: 'small', 'aria-label': `Retry ${id}` }, 'Retry');
    retry.addEventListener('click', () => act(() => api('POST', `/v2/dlq/retry/${seg(id)}`), (r) => `Retried as ${r.messageId}.`));
    const del = h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${id}` }, 'Delete');
    del.addEventListener('click', async () => {
      if (!await confirmDialog({ title: 'Delete this DLQ entry?', body: `${id} (message ${m.messageId}) will be gone for good.`, confirm: 'Delete', danger: true })) return;
      selected.delete(id);
      sync();
      act(() => api('DELETE', `/v2/dlq/${seg(id)}`), () => `Deleted ${id}.`);
    });
    const main = h('tr', {},
      h('td', {}, box),
      h('td', {}, h('span', { class: 'mono' }, fmtTime(failedAt(id)))),
      h('td', {}, h('a', { href: `#/message/${encodeURIComponent(m.messageId)}`, class: 'mono' }, m.messageId)),
      h('td', { class: 'url' }, m.url),
      h('td', {}, String(m.responseStatus || 'no answer')),
      h('td', {}, m.queueName ? `queue ${m.queueName}` : m.topicName ? `group ${m.topicName}` : ''),
      h('td', {}, h('div', { class: 'actions' }, toggle, retry, del)));
    return [main, detailsRow];
  };

  const paging = pager('DLQ pages', async (cursor) => {
    const page = await api('GET', '/v2/dlq', { params: { ...filters, count: PAGE, cursor, order: 'latestFirst' } });
    const t = table('Failed messages, newest first', ['Select', 'Failed at', 'Message', 'URL', 'Status', 'Queue / group', 'Actions'], [], 'The DLQ is empty (or nothing matches).');
    if (page.messages.length) t.querySelector('tbody').replaceChildren(...page.messages.flatMap(rows));
    list.replaceChildren(t);
    return page.cursor;
  });

  retrySelected.addEventListener('click', async () => {
    const ids = [...selected];
    if (!await confirmDialog({ title: `Retry ${ids.length} messages?`, body: 'Each becomes a new message with the same settings; its DLQ entry is removed.', confirm: `Retry ${ids.length}` })) return;
    selected.clear();
    sync();
    act(() => api('POST', '/v2/dlq/retry', { params: { dlqIds: ids } }), (r) => `Retried ${r.responses.length}.`);
  });
  deleteSelected.addEventListener('click', async () => {
    const ids = [...selected];
    if (!await confirmDialog({ title: `Delete ${ids.length} DLQ entries?`, body: 'They will be gone for good.', confirm: `Delete ${ids.length}`, danger: true })) return;
    selected.clear();
    sync();
    act(() => api('DELETE', '/v2/dlq', { params: { dlqIds: ids } }), (r) => `Deleted ${r.deleted}.`);
  });

  const form = h('form', { class: 'panel', 'aria-label': 'DLQ filters' },
    h('div', { class: 'grid' },
      FILTERS.map(([name, label]) => field(label, h('input', { name, autocomplete: 'off', inputmode: name === 'responseStatus' ? 'numeric' : null }))),
      field('Failed from', h('input', { type: 'datetime-local', name: 'fromDate', step: '1' })),
      field('Failed until', h('input', { type: 'datetime-local', name: 'toDate', step: '1' }))),
    h('p', { class: 'actions' }, h('button', { type: 'submit' }, 'Apply filters'), h('button', { type: 'reset', class: 'secondary' }, 'Clear')));
  const apply = () => {
    const v = values(form);
    filters = { ...v, fromDate: toMillis(v.fromDate), toDate: toMillis(v.toDate) };
    selected.clear();
    sync();
    paging.first().catch((e) => failed(region, e));
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  form.addEventListener('reset', () => setTimeout(apply));

  main.append(h('h1', {}, 'Dead-letter queue'), form, region,
    h('div', { class: 'actions' }, retrySelected, deleteSelected,
      h('button', { type: 'button', class: 'secondary small', onclick: () => paging.reload().catch((e) => failed(region, e)) }, 'Refresh')),
    paging.bar, list);
  sync();
  await paging.first().catch((e) => failed(region, e));
}
