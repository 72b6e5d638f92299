// One message's whole life from the log (GET /v2/events?messageId=…):
// created, each attempt with its answer, retries with their delays, and
// the end; and its request (headers and body, redacted as the API shows
// them). Follows the message live until it is finished.

import { api, seg } from '../api.js';
import { h, badge, fmtTime, relative, span, decodeBase64, kv, headersTable, bodyBlock, confirmDialog, notice, statusRegion, failed } from '../dom.js';

export const title = 'Message';

const FINAL = new Set(['DELIVERED', 'FAILED', 'CANCELED']);
const FOLLOW_MS = 1500;
const TONE = { DELIVERED: 'ok', FAILED: 'bad', ERROR: 'warn', RETRY: 'warn' };
const WORDS = {
  CREATED: 'Created', ACTIVE: 'Attempt started', ERROR: 'Attempt failed', RETRY: 'Retry scheduled',
  DELIVERED: 'Delivered', FAILED: 'Failed: moved to the DLQ', CANCEL_REQUESTED: 'Cancel requested', CANCELED: 'Cancelled',
};

/** Every log entry of the message, oldest first (it has few; pages of 100). */
async function entries(id) {
  const all = [];
  let cursor;
  do {
    const page = await api('GET', '/v2/events', { params: { messageId: id, count: 100, cursor } });
    all.push(...page.events);
    cursor = page.cursor;
  } while (cursor && all.length < 1000);
  return all.reverse();
}

function step(e, now) {
  const detail = [];
  if (e.error) detail.push(h('p', {}, e.error));
  if (e.state === 'RETRY' && e.nextDeliveryTime) {
    const delay = span(e.nextDeliveryTime - e.time);
    detail.push(h('p', {}, `Next attempt after ${delay}, at ${fmtTime(e.nextDeliveryTime)} (${relative(e.nextDeliveryTime, now)}).`));
  }
  if (e.responseStatus !== undefined) {
    const { text, binary } = decodeBase64(e.responseBody);
    detail.push(h('details', {},
      h('summary', {}, `Response ${e.responseStatus === 0 ? '(no answer)' : e.responseStatus}`),
      headersTable('Response headers', e.responseHeader),
      bodyBlock('Response body', text, binary)));
  }
  return h('li', { class: TONE[e.state] || '' },
    badge(e.state), h('span', { class: 'when' }, fmtTime(e.time)), ' ', h('strong', {}, WORDS[e.state] || e.state),
    detail);
}

function request(first) {
  const { text, binary } = decodeBase64(first.body);
  return h('section', { 'aria-label': 'Request' },
    h('h2', {}, 'Request'),
    kv([
      ['Method', first.method], ['URL', first.url], ['URL group', first.topicName], ['Endpoint', first.endpointName],
      ['Queue', first.queueName], ['Schedule', first.scheduleId], ['Flow-control key', first.flowControlKey],
      ['Label', first.label], ['Retries', first.maxRetries], ['Retry delay', first.retryDelayExpression || first.retryDelayExpr],
      ['Callback', first.callback], ['Failure callback', first.failureCallback], ['Not before', first.notBefore ? fmtTime(first.notBefore) : ''],
      ['Created', fmtTime(first.createdAt)], ['Caller IP', first.callerIP],
    ]),
    headersTable('Request headers (forwarded to the destination)', first.header),
    bodyBlock('Request body', text, binary));
}

/**
 * Renders the message's timeline into `box` and keeps it current while the
 * message is live. Answers a function that stops following.
 */
export function timeline(box, id, { withRequest = true, headingLevel = 'h2' } = {}) {
  const region = statusRegion();
  const state = h('p', {});
  const list = h('ol', { class: 'timeline', 'aria-label': `Timeline of ${id}` });
  const req = h('div', {});
  const cancel = h('button', { type: 'button', class: 'danger small', hidden: true }, 'Cancel this message');
  box.append(state, region, h('div', { class: 'actions' }, cancel), h(headingLevel, {}, 'Timeline'), list, req);
  let timer = null;
  let stopped = false;
  cancel.addEventListener('click', async () => {
    const ok = await confirmDialog({ title: 'Cancel this message?', body: `${id} will not be delivered (an attempt in flight finishes, but is not retried).`, confirm: 'Cancel message', danger: true });
    if (!ok) return;
    try {
      await api('DELETE', `/v2/messages/${seg(id)}`);
      notice(region, 'ok', 'Cancelled.');
    } catch (e) {
      failed(region, e);
    }
    refresh();
  });
  const refresh = async () => {
    let all;
    try {
      all = await entries(id);
    } catch (e) {
      failed(region, e);
      return;
    }
    if (stopped) return;
    if (!all.length) {
      state.replaceChildren('No log entries for this message (yet, or it belongs to another user, or the retention dropped them).');
    } else {
      const last = all[all.length - 1];
      state.replaceChildren('State: ', badge(last.state), ` since ${fmtTime(last.time)}`);
      const now = Date.now();
      list.replaceChildren(...all.map((e) => step(e, now)));
      if (withRequest && !req.firstChild) req.append(request(all[0]));
      cancel.hidden = FINAL.has(last.state);
      if (FINAL.has(last.state)) return;
    }
    timer = setTimeout(refresh, FOLLOW_MS);
  };
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

export async function render(main, { rest }) {
  const id = rest.join('/');
  main.append(h('h1', {}, 'Message ', h('code', {}, id)),
    h('p', {}, h('a', { href: `#/logs?messageId=${encodeURIComponent(id)}` }, 'Show in the logs table')));
  const box = h('div', {});
  main.append(box);
  return timeline(box, id);
}
