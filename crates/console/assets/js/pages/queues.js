// Queues, URL groups and flow control: lists with lag, endpoints, limits
// and waiting counts; pause, resume, parallelism, endpoints add/remove,
// pin/unpin and resetRate.

import { api, seg } from '../api.js';
import { h, badge, field, table, values, confirmDialog, notice, failed, statusRegion } from '../dom.js';

export const title = 'Queues & flow';

export async function render(main) {
  const region = statusRegion();
  const queues = h('div', {});
  const groups = h('div', {});
  const keys = h('div', {});
  const act = async (fn, text) => {
    try { await fn(); notice(region, 'ok', text); await load(); } catch (e) { failed(region, e); }
  };

  // --- queues ---
  const queueRow = (q) => {
    const par = h('input', { type: 'number', min: '1', value: String(q.parallelism), 'aria-label': `Parallelism of ${q.name}`, class: 'narrow' });
    const save = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Set parallelism of ${q.name}` }, 'Set');
    save.addEventListener('click', () => act(() => api('POST', '/v2/queues', { json: { queueName: q.name, parallelism: Number(par.value), paused: q.paused } }), `Queue ${q.name}: parallelism ${par.value}.`));
    const pause = h('button', { type: 'button', class: 'secondary small', 'aria-label': `${q.paused ? 'Resume' : 'Pause'} queue ${q.name}` }, q.paused ? 'Resume' : 'Pause');
    pause.addEventListener('click', () => act(() => api('POST', `/v2/queues/${seg(q.name)}/${q.paused ? 'resume' : 'pause'}`), `Queue ${q.name} ${q.paused ? 'resumed' : 'paused'}.`));
    const del = h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete queue ${q.name}` }, 'Delete');
    del.addEventListener('click', async () => {
      if (!await confirmDialog({ title: `Delete queue ${q.name}?`, body: `Its ${q.lag} undelivered messages are cancelled.`, confirm: 'Delete queue', danger: true })) return;
      act(() => api('DELETE', `/v2/queues/${seg(q.name)}`), `Deleted queue ${q.name}.`);
    });
    return [h('span', { class: 'mono' }, q.name), badge(q.paused ? 'PAUSED' : 'RUNNING'), h('td', { class: 'num' }, String(q.lag)),
      h('div', { class: 'actions' }, par, save), h('div', { class: 'actions' }, pause, del)];
  };
  const queueForm = h('form', { class: 'panel', 'aria-label': 'Create or update a queue' },
    h('div', { class: 'grid' },
      field('Queue name', h('input', { name: 'queueName', required: true, autocomplete: 'off' })),
      field('Parallelism', h('input', { name: 'parallelism', type: 'number', min: '1', value: '1' })),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'paused' }), 'Paused')),
    h('p', {}, h('button', { type: 'submit' }, 'Create or update queue')));
  queueForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = values(queueForm);
    act(() => api('POST', '/v2/queues', { json: { queueName: v.queueName, parallelism: Number(v.parallelism || 1), paused: v.paused } }), `Queue ${v.queueName} saved.`);
  });

  // --- URL groups ---
  const groupRow = (g) => {
    const endpoints = h('ul', {}, g.endpoints.map((ep) => {
      const remove = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Remove ${ep.name || ep.url} from ${g.name}` }, 'Remove');
      remove.addEventListener('click', () => act(() => api('DELETE', `/v2/topics/${seg(g.name)}/endpoints`, { json: { endpoints: [ep.name ? { name: ep.name } : { url: ep.url }] } }), `Removed an endpoint from ${g.name}.`));
      return h('li', {}, h('span', { class: 'mono' }, ep.url), ep.name ? ` (${ep.name}) ` : ' ', remove);
    }));
    const del = h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete URL group ${g.name}` }, 'Delete');
    del.addEventListener('click', async () => {
      if (!await confirmDialog({ title: `Delete URL group ${g.name}?`, body: 'Publishing to its name will fail from then on.', confirm: 'Delete group', danger: true })) return;
      act(() => api('DELETE', `/v2/topics/${seg(g.name)}`), `Deleted URL group ${g.name}.`);
    });
    return [h('span', { class: 'mono' }, g.name), endpoints, del];
  };
  const groupForm = h('form', { class: 'panel', 'aria-label': 'Add an endpoint to a URL group' },
    h('div', { class: 'grid' },
      field('URL group', h('input', { name: 'group', required: true, autocomplete: 'off' }), 'created if missing'),
      field('Endpoint URL', h('input', { name: 'url', type: 'url', required: true, autocomplete: 'off' })),
      field('Endpoint name', h('input', { name: 'name', autocomplete: 'off' }), 'optional')),
    h('p', {}, h('button', { type: 'submit' }, 'Add endpoint')));
  groupForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = values(groupForm);
    const ep = v.name ? { url: v.url, name: v.name } : { url: v.url };
    act(() => api('POST', `/v2/topics/${seg(v.group)}/endpoints`, { json: { endpoints: [ep] } }), `Added ${v.url} to ${v.group}.`);
  });

  // --- flow control ---
  const keyRow = (k) => {
    const name = k.flowControlKey;
    const pause = h('button', { type: 'button', class: 'secondary small', 'aria-label': `${k.isPaused ? 'Resume' : 'Pause'} key ${name}` }, k.isPaused ? 'Resume' : 'Pause');
    pause.addEventListener('click', () => act(() => api('POST', `/v2/flowControl/${seg(name)}/${k.isPaused ? 'resume' : 'pause'}`), `Key ${name} ${k.isPaused ? 'resumed' : 'paused'}.`));
    const reset = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Reset rate of ${name}` }, 'Reset rate');
    reset.addEventListener('click', () => act(() => api('POST', `/v2/flowControl/${seg(name)}/resetRate`), `Rate window of ${name} reset.`));
    const pinned = k.isPinnedParallelism || k.isPinnedRate;
    const unpin = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Unpin ${name}`, disabled: !pinned }, 'Unpin');
    unpin.addEventListener('click', () => act(() => api('POST', `/v2/flowControl/${seg(name)}/unpin`, { params: { parallelism: true, rate: true } }), `Key ${name} unpinned.`));
    const pinPar = h('input', { type: 'number', min: '1', placeholder: 'parallelism', 'aria-label': `Pin parallelism of ${name}`, class: 'medium' });
    const pinRate = h('input', { type: 'number', min: '1', placeholder: 'rate', 'aria-label': `Pin rate of ${name}`, class: 'narrow' });
    const pinPeriod = h('input', { type: 'number', min: '1', placeholder: 'period s', 'aria-label': `Pin period (seconds) of ${name}`, class: 'narrow' });
    const pin = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Pin limits of ${name}` }, 'Pin');
    pin.addEventListener('click', () => act(() => api('POST', `/v2/flowControl/${seg(name)}/pin`, { params: { parallelism: pinPar.value, rate: pinRate.value, period: pinPeriod.value } }), `Key ${name} pinned.`));
    const limits = `${k.parallelismCount}/${k.parallelismMax || '∞'} in flight; ${k.rateCount}/${k.rateMax || '∞'} per ${k.ratePeriod} s`;
    return [h('span', { class: 'mono' }, name),
      h('div', {}, badge(k.isPaused ? 'PAUSED' : 'RUNNING'), pinned ? ' pinned' : ''),
      h('td', { class: 'num' }, String(k.waitListSize)), limits,
      h('div', { class: 'actions' }, pause, reset, unpin), h('div', { class: 'actions' }, pinPar, pinRate, pinPeriod, pin)];
  };
  const global = h('p', {});

  const load = async () => {
    const [qs, gs, ks, gp] = await Promise.all([
      api('GET', '/v2/queues'), api('GET', '/v2/topics'), api('GET', '/v2/flowControl'), api('GET', '/v2/globalParallelism'),
    ]);
    queues.replaceChildren(table('Queues', ['Name', 'State', ['Lag', 'num'], 'Parallelism', 'Actions'], qs.map(queueRow), 'No queues yet.'));
    groups.replaceChildren(table('URL groups', ['Name', 'Endpoints', 'Actions'], gs.map(groupRow), 'No URL groups yet.'));
    keys.replaceChildren(table('Flow-control keys', ['Key', 'State', ['Waiting', 'num'], 'Limits', 'Actions', 'Pin limits'], ks.map(keyRow), 'No flow-control keys yet: publish with Upstash-Flow-Control-Key.'));
    global.textContent = `Global parallelism: ${gp.parallelismCount} of ${gp.parallelismMax} queued or flow-controlled deliveries in flight.`;
  };

  main.append(h('h1', {}, 'Queues, URL groups and flow control'), region,
    // Plain sections: the tables inside are the named regions.
    h('section', {}, h('h2', {}, 'Queues'), queueForm, queues),
    h('section', {}, h('h2', {}, 'URL groups'), groupForm, groups),
    h('section', {}, h('h2', {}, 'Flow control'), global, keys));
  await load().catch((e) => failed(region, e));
}
