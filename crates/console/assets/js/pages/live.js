// Messages in flight: pending, delayed, retrying and in-flight messages
// (GET /v2/messages, newest first, paged). Cancel one, the selected ones,
// or every message matching the filters after a confirmation that says
// how many (GET /v2/messages?withTotal=true, then DELETE /v2/messages).

import { api, seg } from '../api.js';
import { h, badge, fmtTime, relative, fmtCount, field, table, values, pager, confirmDialog, notice, failed, statusRegion } from '../dom.js';

export const title = 'In flight';

const PAGE = 25;
const FILTERS = [
  ['url', 'URL'], ['queueName', 'Queue'], ['topicName', 'URL group'], ['scheduleId', 'Schedule id'],
  ['label', 'Label'], ['flowControlKey', 'Flow-control key'],
];

function describe(filters) {
  const parts = FILTERS.filter(([k]) => filters[k]).map(([k, label]) => `${label.toLowerCase()} = ${filters[k]}`);
  return parts.length ? `matching ${parts.join(', ')}` : 'of yours (no filter: every live message)';
}

export async function render(main) {
  const region = statusRegion();
  const list = h('div', {});
  let filters = {};
  const selected = new Set();
  const cancelSelected = h('button', { type: 'button', class: 'danger small', disabled: true }, 'Cancel selected');
  const cancelMatching = h('button', { type: 'button', class: 'danger small' }, 'Cancel all matching…');
  const syncSelection = () => {
    cancelSelected.disabled = selected.size === 0;
    cancelSelected.textContent = `Cancel selected (${selected.size})`;
  };

  const row = (m, now) => {
    const box = h('input', { type: 'checkbox', 'aria-label': `Select ${m.messageId}`, checked: selected.has(m.messageId) });
    box.addEventListener('change', () => {
      if (box.checked) selected.add(m.messageId); else selected.delete(m.messageId);
      syncSelection();
    });
    const cancel = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Cancel ${m.messageId}` }, 'Cancel');
    cancel.addEventListener('click', async () => {
      if (!await confirmDialog({ title: 'Cancel this message?', body: `${m.messageId} to ${m.url} will not be delivered.`, confirm: 'Cancel message', danger: true })) return;
      try {
        await api('DELETE', `/v2/messages/${seg(m.messageId)}`);
        selected.delete(m.messageId);
        notice(region, 'ok', `Cancelled ${m.messageId}.`);
        await paging.reload();
      } catch (e) { failed(region, e); }
    });
    const where = [m.queueName && `queue ${m.queueName}`, m.flowControlKey && `key ${m.flowControlKey}`, m.topicName && `group ${m.topicName}`].filter(Boolean).join(', ');
    return [
      box,
      h('a', { href: `#/message/${encodeURIComponent(m.messageId)}`, class: 'mono' }, m.messageId),
      badge(m.state),
      h('td', { class: 'url' }, m.url),
      where,
      h('span', { title: fmtTime(m.nextDeliveryTime) }, m.state === 'IN_FLIGHT' ? 'now' : relative(m.nextDeliveryTime, now)),
      h('td', { class: 'num' }, `${m.retried}/${m.maxRetries}`),
      cancel,
    ];
  };

  const paging = pager('Message pages', async (cursor) => {
    const page = await api('GET', '/v2/messages', { params: { ...filters, count: PAGE, cursor } });
    const now = Date.now();
    list.replaceChildren(table('Live messages, newest first',
      ['Select', 'Message', 'State', 'URL', 'Queue / key', 'Next attempt', ['Retried', 'num'], 'Action'],
      page.messages.map((m) => row(m, now)), 'No live messages match.'));
    return page.cursor;
  });
  const load = async (fn) => {
    try { await fn(); } catch (e) { failed(region, e); }
  };

  cancelSelected.addEventListener('click', async () => {
    const ids = [...selected];
    if (!await confirmDialog({ title: `Cancel ${ids.length} messages?`, body: 'The selected messages will not be delivered.', confirm: `Cancel ${ids.length}`, danger: true })) return;
    try {
      const res = await api('DELETE', '/v2/messages', { params: { messageIds: ids } });
      selected.clear();
      syncSelection();
      notice(region, 'ok', `Cancelled ${res.cancelled}.`);
      await paging.reload();
    } catch (e) { failed(region, e); }
  });

  cancelMatching.addEventListener('click', async () => {
    let total;
    try {
      total = (await api('GET', '/v2/messages', { params: { ...filters, count: 1, withTotal: true } })).total;
    } catch (e) { return failed(region, e); }
    if (total.all === 0) return notice(region, '', 'No live messages match: nothing to cancel.');
    const n = fmtCount(total.all, total.capped);
    const ok = await confirmDialog({
      title: `Cancel ${n} messages?`,
      body: [`This cancels ${n} live messages ${describe(filters)}: ${total.waiting} waiting, ${total.delayed} delayed, ${total.retrying} retrying, ${total.inFlight} in flight${total.capped ? ' (counted up to the cap; more will be cancelled)' : ''}.`,
        'Messages that arrive meanwhile and match are cancelled too.'],
      confirm: `Cancel ${n}`,
      danger: true,
    });
    if (!ok) return;
    try {
      const res = await api('DELETE', '/v2/messages', { params: filters });
      notice(region, 'ok', `Cancelled ${res.cancelled}.`);
      await paging.first();
    } catch (e) { failed(region, e); }
  });

  const form = h('form', { class: 'panel', 'aria-label': 'Message filters' },
    h('div', { class: 'grid' }, FILTERS.map(([name, label]) => field(label, h('input', { name, autocomplete: 'off' })))),
    h('p', { class: 'actions' }, h('button', { type: 'submit' }, 'Apply filters'), h('button', { type: 'reset', class: 'secondary' }, 'Clear')));
  const apply = () => { filters = values(form); selected.clear(); syncSelection(); load(paging.first); };
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  form.addEventListener('reset', () => setTimeout(apply));

  main.append(h('h1', {}, 'Messages in flight'),
    h('p', { class: 'hint' }, 'Pending (waiting for a slot, their queue or rate limit), delayed, retrying and in-flight messages. Finished ones are in the logs.'),
    form, region,
    h('div', { class: 'actions' }, cancelSelected, cancelMatching, h('button', { type: 'button', class: 'secondary small', onclick: () => load(paging.reload) }, 'Refresh')),
    paging.bar, list);
  syncSelection();
  await load(paging.first);
}
