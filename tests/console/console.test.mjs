// The web console in real headless Chromium against the real binary:
// sign in, publish and follow a message to DELIVERED, fail one into the
// DLQ and retry it, cancel a delayed message, create and pause a
// schedule, pause a queue, rotate keys, per-user isolation, a 390-px
// phone screen, `qstash serve`'s token sign-in; axe-core on every page
// and a screenshot of each under target/console-screenshots/.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startSink, launch, axe, shotPath, watchErrors, DEV_TOKENS } from './helpers.mjs';

const WAIT = 15000;
const PAGES = ['', 'logs', 'messages', 'dlq', 'schedules', 'queues', 'publish', 'keys'];

let server;
let sink;
let browser;
let page;
let errors;

async function accessible(name) {
  const violations = await axe(page);
  assert.deepEqual(violations, [], `axe on ${name}`);
}

async function shot(name) {
  await page.screenshot({ path: shotPath(name), fullPage: true });
}

async function open(hash, heading) {
  await page.goto(`${server.url}/#/${hash}`);
  await page.locator('h1', { hasText: heading }).waitFor();
}

/** The API as the signed-in user would call it, for checks behind the UI. */
async function apiAs(token, method, path) {
  const res = await fetch(`${server.url}${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
  return res.json();
}

async function publishFromBuilder(fields) {
  await open('publish', 'Publish a message');
  for (const [label, value] of Object.entries(fields)) await page.getByLabel(label, { exact: true }).fill(value);
  await page.getByRole('button', { name: 'Publish', exact: true }).click();
  const link = page.locator('main ul a.mono').first();
  await link.waitFor();
  return link.textContent();
}

async function waitTimeline(state) {
  await page.locator(`.timeline .badge:text-is("${state}")`).first().waitFor({ timeout: WAIT });
}

async function confirm(name) {
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await dialog.getByRole('button', { name, exact: true }).click();
  await dialog.waitFor({ state: 'detached' });
}

describe('console (qstash dev)', () => {
  before(async () => {
    [server, sink, browser] = await Promise.all([startServer('dev'), startSink(), launch()]);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    errors = watchErrors(page);
  });

  after(async () => {
    await browser?.close();
    server?.stop();
    await sink?.stop();
  });

  test('sign in as a dev user; the token stays out of the URL', async () => {
    await page.goto(server.url);
    const pick = page.getByRole('button', { name: 'Sign in as defaultUser' });
    await pick.waitFor();
    await accessible('sign-in');
    await shot('sign-in');
    await pick.click();
    await page.locator('h1', { hasText: 'Overview' }).waitFor();
    await page.locator('.card').first().waitFor();
    const stored = await page.evaluate(() => sessionStorage.getItem('qstash.console.token'));
    assert.equal(stored, DEV_TOKENS.defaultUser);
    assert.ok(!page.url().includes(stored), page.url());
    const persisted = await page.evaluate(() => JSON.stringify(localStorage));
    assert.ok(!persisted.includes(stored), 'nothing in localStorage');
  });

  test('publish from the builder, follow it to DELIVERED, find it in the logs', async () => {
    const id = await publishFromBuilder({
      Destination: `${sink.url}/ok/builder`,
      'Headers to forward': 'X-Console-Test: yes',
      Body: '{"hello":"console"}',
      Label: 'console-label',
    });
    await waitTimeline('DELIVERED');
    assert.equal(sink.hits('/ok/builder'), 1);
    await accessible('publish');
    await shot('publish');

    await open('logs', 'Logs');
    const row = page.locator('tr', { has: page.locator(`a:text-is("${id}")`) });
    await row.locator('.badge:text-is("DELIVERED")').waitFor();
    await accessible('logs');
    await shot('logs');

    await row.locator(`a:text-is("${id}")`).first().click();
    await page.locator('h1', { hasText: id }).waitFor();
    await waitTimeline('DELIVERED');
    await page.getByText('X-Console-Test').first().waitFor();
    await page.getByText('{"hello":"console"}').waitFor();
    await accessible('message');
    await shot('message');

    // Redacted fields stay redacted.
    const secret = await apiPublish(`${sink.url}/ok/secret`, {
      'Upstash-Forward-X-Secret': 'hunter2',
      'Upstash-Redact-Fields': 'body, header[X-Secret]',
    }, 'top secret body');
    await page.goto(`${server.url}/#/message/${secret}`);
    await waitTimeline('DELIVERED');
    await page.getByText('X-Secret').first().waitFor();
    const text = await page.locator('main').textContent();
    assert.ok(!text.includes('hunter2') && !text.includes('top secret'), 'redacted');

    // The logs filter by label through the API's own filter.
    await open('logs', 'Logs');
    await page.getByLabel('Label', { exact: true }).fill('console-label');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    // The page keeps the unfiltered table until the filtered one arrives,
    // so wait for the new table (a wrong filter never produces it).
    await page.waitForFunction((labelled) => {
      const ids = [...document.querySelectorAll('tbody tr a.mono')].map((a) => a.textContent);
      return ids.length > 0 && ids.every((x) => x === labelled);
    }, id);
    const others = await page.locator('tbody tr a.mono').evaluateAll((as) => as.map((a) => a.textContent));
    assert.ok(others.length > 0 && others.every((x) => x === id), others.join(','));
  });

  test('a failed message lands in the DLQ and is retried from there', async () => {
    sink.failing.add('dlq');
    const id = await publishFromBuilder({ Destination: `${sink.url}/flaky/dlq`, Retries: '1', 'Retry delay': '100' });
    await waitTimeline('FAILED');
    // The timeline shows each attempt's answer and the retry's delay.
    await page.getByText('Next attempt after 100 ms').waitFor();
    assert.equal(await page.locator('.timeline .badge:text-is("ERROR")').count(), 2);

    await open('dlq', 'Dead-letter queue');
    const row = page.locator('tr', { has: page.locator(`a:text-is("${id}")`) });
    await row.waitFor();
    await row.getByRole('button', { name: /^Response of/ }).click();
    await page.getByText('the sink says no').waitFor();
    await accessible('dlq');
    await shot('dlq');

    sink.failing.delete('dlq');
    await row.getByRole('button', { name: /^Retry / }).click();
    await page.getByText(/Retried as msg_/).waitFor();
    await page.getByText('The DLQ is empty').waitFor();
    const deadline = Date.now() + WAIT;
    while (sink.hits('/flaky/dlq') < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(sink.hits('/flaky/dlq'), 3, 'the retried message arrives');
  });

  test('a delayed message is listed in flight and cancelled after a confirmation', async () => {
    const id = await publishFromBuilder({ Destination: `${sink.url}/ok/later`, Delay: '1h' });
    await open('messages', 'Messages in flight');
    const row = page.locator('tr', { has: page.locator(`a:text-is("${id}")`) });
    await row.locator('.badge:text-is("DELAYED")').waitFor();
    await accessible('messages');
    await shot('messages');
    await row.getByRole('button', { name: `Cancel ${id}` }).click();
    await confirm('Cancel message');
    await page.getByText(`Cancelled ${id}.`).waitFor();
    await row.waitFor({ state: 'detached' });

    // Cancel-all-matching says how many before it acts.
    for (let i = 0; i < 3; i += 1) await apiPublish(`${sink.url}/ok/bulk`, { 'Upstash-Delay': '1h', 'Upstash-Label': 'bulk' });
    await page.getByLabel('Label', { exact: true }).fill('bulk');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByRole('button', { name: 'Cancel all matching…' }).click();
    await page.getByRole('dialog').getByText('This cancels 3 live messages matching label = bulk').waitFor();
    await confirm('Cancel 3');
    await page.getByText('Cancelled 3.').waitFor();
  });

  test('create a schedule (next fires in its zone) and pause it', async () => {
    await open('schedules', 'Schedules');
    await page.getByLabel('Destination', { exact: true }).fill(`${sink.url}/ok/cron`);
    const cron = page.getByLabel(/^Cron/);
    await cron.fill('CRON_TZ=Europe/Berlin 0 9 * * 1-5');
    await page.getByText('Time zone Europe/Berlin').waitFor();
    await page.getByRole('button', { name: 'Create schedule' }).click();
    const created = page.getByText(/Created schedule scd_/);
    await created.waitFor();
    const id = (await created.textContent()).match(/(scd_\S+?)\.$/)[1];
    const row = page.locator('tr', { has: page.locator(`span:text-is("${id}")`) });
    await row.locator('.badge:text-is("RUNNING")').waitFor();
    await row.getByText('Next five').click();
    const fires = row.locator('li');
    await fires.nth(4).waitFor();
    assert.match(await fires.first().textContent(), / 09:00 CES?T$/);
    await accessible('schedules');
    await shot('schedules');
    await row.getByRole('button', { name: `Pause ${id}` }).click();
    await row.locator('.badge:text-is("PAUSED")').waitFor();
    const stored = await apiAs(DEV_TOKENS.defaultUser, 'GET', `/v2/schedules/${id}`);
    assert.equal(stored.isPaused, true);
  });

  test('create and pause a queue, add a URL group endpoint', async () => {
    await open('queues', 'Queues, URL groups and flow control');
    await page.getByLabel('Queue name').fill('console-q');
    await page.getByLabel('Parallelism', { exact: true }).fill('2');
    await page.getByRole('button', { name: 'Create or update queue' }).click();
    const row = page.locator('tr', { has: page.locator('span:text-is("console-q")') });
    await row.locator('.badge:text-is("RUNNING")').waitFor();
    await row.getByRole('button', { name: 'Pause queue console-q' }).click();
    await row.locator('.badge:text-is("PAUSED")').waitFor();
    const q = await apiAs(DEV_TOKENS.defaultUser, 'GET', '/v2/queues/console-q');
    assert.equal(q.paused, true);
    assert.equal(q.parallelism, 2);

    await page.getByLabel('URL group', { exact: true }).fill('console-g');
    await page.getByLabel('Endpoint URL').fill(`${sink.url}/ok/group`);
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await page.locator('tr', { has: page.locator('span:text-is("console-g")') }).waitFor();
    await apiPublish(`${sink.url}/ok/flow`, { 'Upstash-Flow-Control-Key': 'console-key', 'Upstash-Flow-Control-Value': 'parallelism=1' });
    await page.reload();
    await page.locator('tr', { has: page.locator('span:text-is("console-key")') }).waitFor();
    await accessible('queues');
    await shot('queues');
  });

  test('rotate the signing keys after a confirmation', async () => {
    await open('keys', 'Signing keys');
    const codes = page.locator('dl.kv code');
    await codes.nth(1).waitFor();
    const [, next] = await codes.allTextContents();
    await accessible('keys');
    await shot('keys');
    await page.getByRole('button', { name: 'Rotate keys…' }).click();
    await confirm('Rotate');
    await page.getByText('Rotated.').waitFor();
    assert.equal(await codes.first().textContent(), next);
  });

  test('the overview counts what happened', async () => {
    await open('', 'Overview');
    await page.locator('figure.chart svg polyline').first().waitFor({ state: 'attached' });
    const legend = await page.locator('.legend').textContent();
    assert.match(legend, /Delivered: [1-9]/);
    assert.match(legend, /Failed: [1-9]/);
    await accessible('overview');
    await shot('overview');
  });

  test('another user never sees the first user\'s data', async () => {
    const mine = await apiAs(DEV_TOKENS.defaultUser, 'GET', '/v2/events?count=1');
    const id = mine.events[0].messageId;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in as testUser1' }).click();
    await page.locator('h1', { hasText: 'Overview' }).waitFor();
    await open('logs', 'Logs');
    await page.getByText('No log entries match.').waitFor();
    await open('dlq', 'Dead-letter queue');
    await page.getByText('The DLQ is empty').waitFor();
    await open('messages', 'Messages in flight');
    await page.getByText('No live messages match.').waitFor();
    await open('schedules', 'Schedules');
    await page.getByText('No schedules yet.').waitFor();
    await open('queues', 'Queues, URL groups and flow control');
    await page.getByText('No queues yet.').waitFor();
    await page.getByText('No URL groups yet.').waitFor();
    await page.getByText('No flow-control keys yet').waitFor();
    await page.goto(`${server.url}/#/message/${id}`);
    await page.getByText('No log entries for this message').waitFor();
    const legend = await (await open('', 'Overview'), page.locator('.legend').textContent());
    assert.match(legend, /Published: 0/);
  });

  test('every page works on a 390-px-wide phone screen', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    p.setDefaultTimeout(WAIT);
    const phoneErrors = watchErrors(p);
    await p.goto(server.url);
    await p.getByRole('button', { name: 'Sign in as defaultUser' }).click();
    for (const hash of PAGES) {
      await p.goto(`${server.url}/#/${hash}`);
      await p.locator('h1').waitFor();
      await p.waitForLoadState('networkidle');
      const width = await p.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `#/${hash} is ${width}px wide on a 390-px screen`);
      const saved = page;
      page = p;
      try {
        await accessible(`${hash || 'overview'} (phone)`);
        await shot(`${hash || 'overview'}-phone`);
      } finally {
        page = saved;
      }
    }
    await phone.close();
    assert.deepEqual(phoneErrors, []);
  });

  test('no script error and no CSP violation on any page', () => {
    assert.deepEqual(errors, []);
  });
});

async function apiPublish(url, headers, body = 'x') {
  const res = await fetch(`${server.url}/v2/publish/${url}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${DEV_TOKENS.defaultUser}`, ...headers },
    body,
  });
  const answer = await res.json();
  assert.ok(res.ok, JSON.stringify(answer));
  return answer.messageId;
}

describe('console (qstash serve)', () => {
  const TOKEN = 'console-serve-token';
  let serve;
  let b;

  before(async () => {
    [serve, b] = await Promise.all([
      startServer('serve', {
        env: { QSTASH_TOKEN: TOKEN, QSTASH_CURRENT_SIGNING_KEY: 'sig_console_current', QSTASH_NEXT_SIGNING_KEY: 'sig_console_next' },
      }),
      launch(),
    ]);
  });

  after(async () => {
    await b?.close();
    serve?.stop();
  });

  test('asks for a token, refuses a wrong one, keeps the right one for the tab only', async () => {
    const context = await b.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await context.newPage();
    p.setDefaultTimeout(WAIT);
    const errs = watchErrors(p, [/status of 40[14]/]);
    await p.goto(serve.url);
    const token = p.getByLabel(/^API token/);
    await token.waitFor();
    assert.equal(await p.getByRole('button', { name: /^Sign in as/ }).count(), 0);
    await token.fill('wrong');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByText('That token was refused').waitFor();
    await token.fill(TOKEN);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.locator('h1', { hasText: 'Overview' }).waitFor();
    assert.ok(!p.url().includes(TOKEN));
    assert.equal(await p.evaluate(() => sessionStorage.getItem('qstash.console.token')), TOKEN);
    await p.goto(`${serve.url}/#/keys`);
    await p.getByText('sig_console_current').waitFor();
    // A new tab (a new session) asks again.
    const other = await context.newPage();
    await other.goto(serve.url);
    await other.getByLabel(/^API token/).waitFor();
    await context.close();
    assert.deepEqual(errs, []);
  });
});
