// Small DOM helpers. Everything that comes from the server is put into the
// page as text (textContent, attributes), never parsed as HTML.

/** An element: h('button', { class: 'x', onclick: f }, 'text', child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let ids = 0;
/** A unique element id. */
export const uid = (prefix = 'f') => `${prefix}-${++ids}`;

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local date and time, `2025-01-31 14:05:09`. */
export function fmtTime(ms) {
  if (ms === undefined || ms === null || ms === 0) return '—';
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A length of time: `950 ms`, `12 s`, `3 min`, `2 h`, `4 d`. */
export function span(ms) {
  const abs = Math.abs(Number(ms));
  if (abs < 1000) return `${Math.round(abs)} ms`;
  const s = Math.round(abs / 1000);
  return s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
}

/** `in 5 s`, `3 min ago`. */
export function relative(ms, now = Date.now()) {
  const diff = Number(ms) - now;
  return diff >= 0 ? `in ${span(diff)}` : `${span(diff)} ago`;
}

export const fmtCount = (n, capped) => `${Number(n).toLocaleString('en-US')}${capped ? '+' : ''}`;

/** Text of a base64 body; binary bodies are shown as base64. */
export function decodeBase64(b64) {
  if (!b64) return { text: '', binary: false };
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), binary: false };
  } catch {
    return { text: b64, binary: true };
  }
}

const BADGES = {
  DELIVERED: 'ok', SUCCESS: 'ok', ACTIVE: 'info', IN_FLIGHT: 'info', CREATED: '', WAITING: '',
  RETRY: 'warn', ERROR: 'warn', RETRYING: 'warn', DELAYED: 'info', IN_PROGRESS: 'info',
  FAILED: 'bad', FAIL: 'bad', CANCELED: '', CANCEL_REQUESTED: '', PAUSED: 'warn', RUNNING: 'ok',
};

export function badge(state) {
  return h('span', { class: `badge ${BADGES[state] ?? ''}` }, state);
}

/** Shows `text` in a notice region (role=status or alert set by the caller). */
export function notice(region, kind, text) {
  region.className = `notice ${kind || ''}`;
  region.textContent = text || '';
}

export function statusRegion() {
  return h('div', { class: 'notice', role: 'status', 'aria-live': 'polite' });
}

/** Reports a failed call in `region` and, for the caller, returns false. */
export function failed(region, e) {
  notice(region, 'error', e.message || String(e));
  return false;
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const ok = h('button', { type: 'button', class: danger ? 'danger' : '' }, confirm);
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const dialog = h('dialog', { 'aria-labelledby': titleId },
      h('h2', { id: titleId }, title),
      (Array.isArray(body) ? body : [body]).map((p) => (p instanceof Node ? p : h('p', {}, p))),
      h('div', { class: 'actions' }, ok, cancel));
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/**
 * A labelled form control. The hint is outside the label (linked with
 * aria-describedby), so the control's name is the label alone.
 */
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  let help = null;
  if (hint) {
    help = h('small', { id: uid('hint') }, hint);
    control.setAttribute('aria-describedby', help.id);
  }
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, help);
}

/** A scrollable table region that keyboard users can scroll too. */
export function tableWrap(label, ...content) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, content);
}

/** A table: columns are header texts (or [text, class]); rows are arrays of cells (or {cells, class}). */
export function table(caption, columns, rows, empty = 'Nothing here.') {
  const head = h('tr', {}, columns.map((c) => {
    const [text, cls] = Array.isArray(c) ? c : [c, null];
    return h('th', { scope: 'col', class: cls }, text);
  }));
  const body = rows.length
    ? rows.map((r) => {
      const cells = Array.isArray(r) ? r : r.cells;
      if (!Array.isArray(r) && r.full) return h('tr', { class: r.class }, h('td', { colspan: columns.length }, r.full));
      return h('tr', { class: Array.isArray(r) ? null : r.class }, cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c))));
    })
    : [h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, empty))];
  return tableWrap(caption, h('table', {}, h('caption', {}, caption), h('thead', {}, head), h('tbody', {}, body)));
}

/** `Name: value` lines into pairs; throws on a line without a colon. */
export function headerLines(text) {
  const pairs = [];
  for (const [i, raw] of (text || '').split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf(':');
    if (at <= 0) throw new Error(`header line ${i + 1} needs "Name: value"`);
    pairs.push([line.slice(0, at).trim(), line.slice(at + 1).trim()]);
  }
  return pairs;
}

/** A datetime-local value as unix ms, or '' when empty. */
export function toMillis(value) {
  if (!value) return '';
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? '' : t;
}

/** A `<dl>` of the entries whose value is set. */
export function kv(entries) {
  return h('dl', { class: 'kv' }, entries
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** A header map (name → value or [values]) as a table. */
export function headersTable(caption, map) {
  const rows = Object.entries(map || {}).map(([k, v]) => [h('code', {}, k), h('code', {}, Array.isArray(v) ? v.join(', ') : String(v))]);
  return table(caption, ['Header', 'Value'], rows, 'No headers.');
}

/** A body as text, or base64 when it is not UTF-8. */
export function bodyBlock(label, text, binary) {
  return h('div', {},
    h('p', { class: 'label' }, h('strong', {}, label), binary ? ' (binary, base64)' : ''),
    text ? h('pre', { tabindex: '0', 'aria-label': label }, text) : h('p', { class: 'hint' }, 'Empty.'));
}

/** The values of a form's named controls, trimmed. */
export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'radio') { if (el.checked) out[el.name] = el.value; }
    else out[el.name] = el.value.trim();
  }
  return out;
}

/**
 * Cursor paging: `load(cursor)` renders one page and answers the next
 * page's cursor. Keeps the cursors seen so "Newer" goes back.
 */
export function pager(label, load) {
  const stack = [undefined];
  let next = null;
  const newest = h('button', { type: 'button', class: 'secondary small' }, 'Newest');
  const newer = h('button', { type: 'button', class: 'secondary small' }, 'Newer');
  const older = h('button', { type: 'button', class: 'secondary small' }, 'Older');
  const where = h('span', { class: 'hint' });
  const bar = h('div', { class: 'pager', role: 'group', 'aria-label': label }, newest, newer, older, where);
  const go = async (index) => {
    const cursor = stack[index];
    next = await load(cursor);
    stack.length = index + 1;
    if (next) stack.push(next);
    newer.disabled = index === 0;
    newest.disabled = index === 0;
    older.disabled = !next;
    where.textContent = `Page ${index + 1}`;
    current = index;
  };
  let current = 0;
  newest.addEventListener('click', () => go(0));
  newer.addEventListener('click', () => go(Math.max(0, current - 1)));
  older.addEventListener('click', () => next && go(current + 1));
  return { bar, reload: () => go(current), first: () => go(0) };
}
