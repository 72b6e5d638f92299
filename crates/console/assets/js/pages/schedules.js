// Schedules: list with cron, time zone, next fires (the next five, in the
// schedule's time zone, computed by the server: GET /v2/cron/next), last
// state; create with the publish options; pause, resume, delete.

import { api, seg } from '../api.js';
import { h, badge, fmtTime, field, table, values, headerLines, confirmDialog, notice, failed, statusRegion, uid } from '../dom.js';
import { optionHeaders, optionFields } from './publish.js';

export const title = 'Schedules';

const PAGE = 25;

/** The next five fires as wall-clock times in the schedule's zone. */
async function nextFires(cron, into) {
  try {
    const next = await api('GET', '/v2/cron/next', { params: { cron, count: 5 } });
    into.replaceChildren(
      h('p', { class: 'hint' }, `Time zone ${next.timeZone}`),
      h('ol', {}, next.next.map((t) => h('li', {}, h('span', { class: 'mono' }, t.local)))));
  } catch (e) {
    into.replaceChildren(h('p', { class: 'notice error' }, e.message));
  }
}

function lastState(s) {
  const states = Object.values(s.lastScheduleStates || {});
  if (!s.lastScheduleTime) return 'never fired';
  const summary = states.length === 0 ? null
    : states.every((x) => x === 'SUCCESS') ? 'SUCCESS'
      : states.some((x) => x === 'FAIL') ? 'FAIL' : 'IN_PROGRESS';
  return h('span', {}, fmtTime(s.lastScheduleTime), ' ', summary ? badge(summary) : null, s.error ? ` ${s.error}` : '');
}

function createForm(region, created) {
  const preview = h('div', { 'aria-live': 'polite' });
  const cron = h('input', { name: 'cron', required: true, autocomplete: 'off', value: '*/5 * * * *', spellcheck: 'false' });
  let timer = null;
  cron.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => cron.value.trim() && nextFires(cron.value.trim(), preview), 300);
  });
  const form = h('form', { class: 'panel', 'aria-labelledby': 'new-schedule' },
    h('h2', { id: 'new-schedule' }, 'New schedule'),
    h('div', { class: 'grid' },
      field('Destination', h('input', { name: 'destination', required: true, autocomplete: 'off', placeholder: 'https://example.com/job or a URL group' })),
      field('Cron', cron, 'minute hour day month weekday; prefix CRON_TZ=Area/City for a time zone'),
      field('Schedule id', h('input', { name: 'scheduleId', autocomplete: 'off' }), 'optional; an existing id is replaced'),
      field('Queue', h('input', { name: 'queueName', autocomplete: 'off' }), 'optional'),
      optionFields()),
    h('div', { class: 'panel' }, h('h3', {}, 'Next fires'), preview),
    h('p', {}, h('button', { type: 'submit' }, 'Create schedule')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = values(form);
    let headers;
    try {
      headers = optionHeaders(v, headerLines(v.headers));
    } catch (err) { return failed(region, err); }
    headers['Upstash-Cron'] = v.cron;
    if (v.scheduleId) headers['Upstash-Schedule-Id'] = v.scheduleId;
    if (v.queueName) headers['Upstash-Queue-Name'] = v.queueName;
    try {
      const res = await api('POST', `/v2/schedules/${v.destination}`, { headers, body: v.body || undefined });
      notice(region, 'ok', `Created schedule ${res.scheduleId}.`);
      created();
    } catch (err) { failed(region, err); }
  });
  nextFires(cron.value, preview);
  return form;
}

export async function render(main) {
  const region = statusRegion();
  const list = h('div', {});
  const pageInfo = h('span', { class: 'hint' });
  let all = [];
  let page = 0;

  const act = async (fn, text) => {
    try { await fn(); notice(region, 'ok', text); await load(); } catch (e) { failed(region, e); }
  };
  const row = (s) => {
    const id = s.scheduleId;
    const fires = h('div', {});
    const more = h('details', {}, h('summary', {}, 'Next five'), fires);
    more.addEventListener('toggle', () => { if (more.open && !fires.firstChild) nextFires(s.cron, fires); });
    const pause = h('button', { type: 'button', class: 'secondary small', 'aria-label': `${s.isPaused ? 'Resume' : 'Pause'} ${id}` }, s.isPaused ? 'Resume' : 'Pause');
    pause.addEventListener('click', () => act(() => api('POST', `/v2/schedules/${seg(id)}/${s.isPaused ? 'resume' : 'pause'}`), `${s.isPaused ? 'Resumed' : 'Paused'} ${id}.`));
    const del = h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${id}` }, 'Delete');
    del.addEventListener('click', async () => {
      if (!await confirmDialog({ title: 'Delete this schedule?', body: `${id} (${s.cron}) will not fire again. Messages it already created stay.`, confirm: 'Delete', danger: true })) return;
      act(() => api('DELETE', `/v2/schedules/${seg(id)}`), `Deleted ${id}.`);
    });
    return [
      h('span', { class: 'mono' }, id),
      h('code', {}, s.cron),
      h('td', { class: 'url' }, s.destination, s.queueName ? ` (queue ${s.queueName})` : ''),
      badge(s.isPaused ? 'PAUSED' : 'RUNNING'),
      lastState(s),
      h('div', {}, s.nextScheduleTime ? h('span', { class: 'mono' }, fmtTime(s.nextScheduleTime)) : '—', s.isPaused ? null : more),
      h('div', { class: 'actions' }, pause, del),
    ];
  };
  const show = () => {
    const pages = Math.max(1, Math.ceil(all.length / PAGE));
    page = Math.min(page, pages - 1);
    const slice = all.slice(page * PAGE, page * PAGE + PAGE);
    list.replaceChildren(table('Schedules', ['Id', 'Cron', 'Destination', 'State', 'Last fire', 'Next fire (your time)', 'Actions'], slice.map(row), 'No schedules yet.'));
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    pageInfo.textContent = `Page ${page + 1} of ${pages} (${all.length} schedules)`;
  };
  const load = async () => {
    all = await api('GET', '/v2/schedules');
    all.sort((a, b) => b.createdAt - a.createdAt);
    show();
  };
  const prev = h('button', { type: 'button', class: 'secondary small', onclick: () => { page -= 1; show(); } }, 'Previous');
  const next = h('button', { type: 'button', class: 'secondary small', onclick: () => { page += 1; show(); } }, 'Next');
  const listId = uid('sched');
  main.append(h('h1', {}, 'Schedules'), region,
    createForm(region, () => load().catch((e) => failed(region, e))),
    h('h2', { id: listId }, 'All schedules'),
    h('div', { class: 'pager', role: 'group', 'aria-labelledby': listId }, prev, next, pageInfo),
    list);
  await load().catch((e) => failed(region, e));
}
