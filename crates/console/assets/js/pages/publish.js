// Publish: a request builder (destination, method, headers, body, delay,
// retries, callbacks, ...) that publishes through POST /v2/publish (or
// /v2/enqueue into a queue) and then follows the message's log live.

import { api, seg } from '../api.js';
import { h, field, values, headerLines, failed, statusRegion, notice } from '../dom.js';
import { timeline } from './message.js';

export const title = 'Publish';

/** The delivery options shared with the schedule form. */
export function optionFields() {
  return [
    field('Method', h('select', { name: 'method' }, ['POST', 'GET', 'PUT', 'PATCH', 'DELETE'].map((m) => h('option', { value: m }, m)))),
    field('Content-Type', h('input', { name: 'contentType', value: 'application/json', autocomplete: 'off' })),
    field('Delay', h('input', { name: 'delay', autocomplete: 'off', placeholder: '10s, 5m, 1h' }), 'optional'),
    field('Retries', h('input', { name: 'retries', type: 'number', min: '0', max: '100', autocomplete: 'off' }), 'default 3'),
    field('Retry delay', h('input', { name: 'retryDelay', autocomplete: 'off', placeholder: 'pow(2, retried) * 1000' }), 'optional: ms expression'),
    field('Timeout', h('input', { name: 'timeout', autocomplete: 'off', placeholder: '30s' }), 'optional'),
    field('Callback URL', h('input', { name: 'callback', type: 'url', autocomplete: 'off' }), 'optional'),
    field('Failure callback URL', h('input', { name: 'failureCallback', type: 'url', autocomplete: 'off' }), 'optional'),
    field('Label', h('input', { name: 'label', autocomplete: 'off' }), 'optional'),
    h('div', { class: 'wide' }, field('Headers to forward', h('textarea', { name: 'headers', rows: 3, spellcheck: 'false', placeholder: 'X-Api-Key: secret' }), 'one "Name: value" per line; sent as Upstash-Forward-Name')),
    h('div', { class: 'wide' }, field('Body', h('textarea', { name: 'body', rows: 5, spellcheck: 'false' }))),
  ];
}

/** The Upstash-* headers of the options in `v`. */
export function optionHeaders(v, forward) {
  const headers = {};
  const set = (k, x) => { if (x !== undefined && x !== '') headers[k] = String(x); };
  set('Content-Type', v.contentType);
  set('Upstash-Method', v.method);
  set('Upstash-Delay', v.delay);
  set('Upstash-Retries', v.retries);
  set('Upstash-Retry-Delay', v.retryDelay);
  set('Upstash-Timeout', v.timeout);
  set('Upstash-Callback', v.callback);
  set('Upstash-Failure-Callback', v.failureCallback);
  set('Upstash-Label', v.label);
  set('Upstash-Deduplication-Id', v.dedupId);
  set('Upstash-Flow-Control-Key', v.flowKey);
  set('Upstash-Flow-Control-Value', v.flowValue);
  for (const [name, value] of forward) headers[`Upstash-Forward-${name}`] = value;
  return headers;
}

function target(v) {
  return v.queue ? `/v2/enqueue/${seg(v.queue)}/${v.destination}` : `/v2/publish/${v.destination}`;
}

/** The same request as a curl command (the token stays a variable). */
function curl(v) {
  let headers;
  try { headers = optionHeaders(v, headerLines(v.headers)); } catch (e) { return `# ${e.message}`; }
  const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
  const lines = [`curl -X POST ${q(location.origin + target(v))}`, `  -H "Authorization: Bearer $QSTASH_TOKEN"`];
  for (const [k, x] of Object.entries(headers)) lines.push(`  -H ${q(`${k}: ${x}`)}`);
  if (v.body) lines.push(`  -d ${q(v.body)}`);
  return lines.join(' \\\n');
}

export async function render(main) {
  const region = statusRegion();
  const result = h('div', {});
  const preview = h('pre', { tabindex: '0', 'aria-label': 'The request as curl' });
  const form = h('form', { class: 'panel', 'aria-labelledby': 'builder' },
    h('h2', { id: 'builder' }, 'Request'),
    h('div', { class: 'grid' },
      h('div', { class: 'wide' }, field('Destination', h('input', { name: 'destination', required: true, autocomplete: 'off', placeholder: 'https://example.com/api/hook or a URL group name' }))),
      field('Queue', h('input', { name: 'queue', autocomplete: 'off' }), 'optional: enqueue into this queue'),
      field('Deduplication id', h('input', { name: 'dedupId', autocomplete: 'off' }), 'optional'),
      field('Flow-control key', h('input', { name: 'flowKey', autocomplete: 'off' }), 'optional'),
      field('Flow-control value', h('input', { name: 'flowValue', autocomplete: 'off', placeholder: 'parallelism=2, rate=10, period=1m' }), 'optional'),
      optionFields()),
    h('details', {}, h('summary', {}, 'As curl'), preview),
    h('p', {}, h('button', { type: 'submit' }, 'Publish')));
  const update = () => { preview.textContent = curl(values(form)); };
  form.addEventListener('input', update);
  let stop = null;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = values(form);
    let headers;
    try { headers = optionHeaders(v, headerLines(v.headers)); } catch (err) { return failed(region, err); }
    let res;
    try {
      res = await api('POST', target(v), { headers, body: v.body || undefined });
    } catch (err) { return failed(region, err); }
    const published = Array.isArray(res) ? res : [res];
    notice(region, 'ok', `Published ${published.length} message${published.length === 1 ? '' : 's'}.`);
    if (stop) stop();
    stop = null;
    result.replaceChildren(h('h2', {}, 'Published'));
    const links = h('ul', {}, published.map((p) => h('li', {},
      h('a', { href: `#/message/${encodeURIComponent(p.messageId)}`, class: 'mono' }, p.messageId),
      p.url ? ` to ${p.url}` : '', p.deduplicated ? ' (deduplicated: an earlier message)' : '')));
    result.append(links);
    if (published.length === 1) {
      const box = h('section', { 'aria-label': 'Live log of the published message' });
      result.append(box);
      stop = timeline(box, published[0].messageId, { withRequest: false, headingLevel: 'h3' });
    }
  });
  main.append(h('h1', {}, 'Publish a message'), region, form, result);
  update();
  return () => { if (stop) stop(); };
}
