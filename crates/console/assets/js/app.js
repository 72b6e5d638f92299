// The console shell: sign-in, navigation and the hash router. Each page is
// a module exporting `title` and `render(main, params)`; render may answer
// a function that stops its timers when the page is left.

import { api, session, ApiError } from './api.js';
import { h, notice, field } from './dom.js';
import * as overview from './pages/overview.js';
import * as logs from './pages/logs.js';
import * as message from './pages/message.js';
import * as live from './pages/live.js';
import * as dlq from './pages/dlq.js';
import * as schedules from './pages/schedules.js';
import * as queues from './pages/queues.js';
import * as publish from './pages/publish.js';
import * as keys from './pages/keys.js';

const PAGES = {
  '': overview,
  logs,
  message,
  messages: live,
  dlq,
  schedules,
  queues,
  publish,
  keys,
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let leave = null;
let signInReason = '';

/** `#/logs?messageId=x` → { page: 'logs', rest: [], params: {messageId: 'x'} } */
function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  const [path, search] = hash.split('?');
  const [page, ...rest] = path.split('/');
  return { page, rest, params: Object.fromEntries(new URLSearchParams(search || '')) };
}

let shown = 0;

async function show() {
  if (leave) { leave(); leave = null; }
  main.replaceChildren();
  // A page renders into its own box; one still loading when another is
  // shown fills a box that is no longer in the page.
  const view = document.createElement('div');
  main.append(view);
  const mine = ++shown;
  if (!session.token) return signIn(view);
  nav.hidden = false;
  who.hidden = false;
  document.getElementById('who-name').textContent = session.label;
  const { page, rest, params } = route();
  const module = PAGES[page] ?? overview;
  const section = module === message ? 'logs' : page in PAGES ? page : '';
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${section}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${module.title} · QStash console`;
  try {
    const stop = (await module.render(view, { rest, params })) || null;
    if (mine === shown) leave = stop;
    else if (stop) stop();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      view.append(h('div', { class: 'notice error', role: 'alert' }, e.message || String(e)));
    }
  }
}

async function devUsers() {
  try {
    const res = await fetch('/console/dev-users.json', { cache: 'no-store', credentials: 'omit' });
    return res.ok ? await res.json() : [];
  } catch {
    return [];
  }
}

/** Checks a token against the API before keeping it for the session. */
async function start(token, label, region) {
  try {
    await api('GET', '/v2/keys', { token });
  } catch (e) {
    notice(region, 'error', e.status === 401 ? `That token was refused: ${e.message}` : e.message);
    return;
  }
  session.start(token, label);
  signInReason = '';
  if (location.hash.startsWith('#/login') || !location.hash) location.hash = '#/';
  else show();
}

async function signIn(view) {
  nav.hidden = true;
  who.hidden = true;
  document.title = 'Sign in · QStash console';
  const region = h('div', { class: 'notice', role: 'alert' });
  const users = await devUsers();
  const token = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = h('form', { class: 'panel', onsubmit: (e) => { e.preventDefault(); start(token.value.trim(), 'token user', region); } },
    field('API token', token, 'A QSTASH_TOKEN of this server. Kept in this tab only, sent as an Authorization header.'),
    h('p', {}, h('button', { type: 'submit' }, 'Sign in')));
  const box = h('div', { class: 'login' },
    h('h1', {}, 'Sign in to the QStash console'),
    region,
    users.length
      ? h('section', { 'aria-labelledby': 'dev-users' },
        h('h2', { id: 'dev-users' }, 'Dev server users'),
        h('p', { class: 'hint' }, 'qstash dev has four users with public, documented tokens. Pick one:'),
        h('div', { class: 'users' }, users.map((u) => h('button', {
          type: 'button', class: 'secondary', onclick: () => start(u.token, u.id, region),
        }, `Sign in as ${u.id}`))),
        h('h2', {}, 'Or use a token'))
      : null,
    form);
  view.replaceChildren(box);
  if (signInReason) notice(region, 'error', `Signed out: ${signInReason}`);
  (users.length ? box.querySelector('.users button') : token).focus();
}

document.getElementById('sign-out').addEventListener('click', () => {
  session.end();
  location.hash = '#/';
  show();
});

window.addEventListener('console:signed-out', (e) => {
  signInReason = e.detail;
  show();
});

window.addEventListener('hashchange', async () => {
  await show();
  // Move focus to the new page's heading, for keyboard and screen reader users.
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
});

show();
