import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Browser, chromium } from 'playwright-core';
import { request } from 'undici';
import { type RunningModelServer, startModelServer } from '../../model-servers/server.js';
import { eventually, untilRouted } from '../helpers/servers.js';
import { irisTraffic, startWholeStack, type WholeStack } from '../helpers/stack.js';

/**
 * Approving from the alert: the approval_requested webhook carries a link; the page it opens in
 * Chromium shows the evidence and approves on its button's POST only; the link then works no
 * more, and a tampered link, a bare POST, a foreign page's POST or a superseded link are refused.
 */

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

let stack: WholeStack;
let browser: Browser;
let v1: RunningModelServer;
let v2: RunningModelServer;
const alerts: { event: string; approve?: string; deployment: string; receivedAt: number }[] = [];

before(async () => {
  v1 = await startModelServer({ model: 'v1' });
  v2 = await startModelServer({ model: 'v1', version: 'v2' });
  // Long enough for a person (or a loaded machine) to open and press; short enough to see one expire.
  stack = await startWholeStack({ CANARY_APPROVAL_LINK_TTL: '60s' });
  // The webhook receiver: every alert's body is kept.
  const hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      alerts.push({ ...JSON.parse(body), receivedAt: Date.now() });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-background-networking'],
  });
  cleanups.push(
    () => v1.close(),
    () => v2.close(),
    () => new Promise((r) => hook.close(r)),
    () => stack.shutdown(),
    () => browser.close(),
  );
  const sink = await api('POST', '/v1/alerts/sinks', {
    url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
    events: ['approval_requested'],
  });
  assert.equal(sink.status, 201, JSON.stringify(sink.body));
});

async function api(method: string, path: string, body?: unknown) {
  const r = await request(`${stack.controlPlane.url}${path}`, {
    method: method as 'GET',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? (method === 'GET' ? undefined : '{}') : JSON.stringify(body),
  });
  return { status: r.statusCode, body: (await r.body.json()) as any };
}

/** A deployment with traffic and a canary of v2 that waits for approval, and the alert's link. */
async function waitingCanary(name: string, approvals: string[], steps: number[]) {
  await api('POST', '/v1/deployments', { name, baseline: { version: 'v1', url: v1.url } });
  await untilRouted(stack.proxy.adminUrl, name);
  const load = irisTraffic(`${stack.proxy.url}/${name}/predict`, 3);
  cleanups.push(() => load.stop());
  await sleep(300);
  const started = await api('POST', `/v1/deployments/${name}/canary`, {
    version: 'v2',
    url: v2.url,
    weight: steps[0],
    policy: { interval: '1s', stepDuration: '1s', minRequests: 20, warmup: null, steps, approvals },
  });
  assert.equal(started.status, 201, JSON.stringify(started.body));
  return eventually(
    () => {
      const a = alerts.find((x) => x.deployment === name && x.event === 'approval_requested');
      assert.ok(a?.approve, 'the approval_requested alert arrived with its link');
      return a.approve!;
    },
    120_000,
    100,
  );
}

test('the alert links to a page that shows the evidence; opening it changes nothing; its button approves once; the link is then used', async () => {
  const link = await waitingCanary('linked', ['promote'], [50]);
  assert.ok(link.startsWith(`${stack.controlPlane.url}/approve/`), link);
  const page = await browser.newPage();
  cleanups.push(() => page.close());
  const opened = await page.goto(link);
  assert.equal(opened?.status(), 200);
  assert.match((await page.textContent('body')) ?? '', /ready to promote/);
  assert.match((await page.textContent('table')) ?? '', /error_rate_max/);
  assert.equal(opened?.headers()['x-frame-options'], 'DENY');
  // A GET (a preview, a scanner, this page) approves nothing.
  await sleep(1500);
  const still = (await api('GET', '/v1/deployments/linked')).body;
  assert.equal(still.canary?.awaitingApproval, 'promote');

  await page.fill('input[name=reason]', 'checked the numbers');
  await Promise.all([page.waitForNavigation(), page.click('#approve')]);
  assert.match((await page.textContent('#result')) ?? '', /Approved: v2 is now the baseline of linked/);
  const d = (await api('GET', '/v1/deployments/linked')).body;
  assert.equal(d.canary, null);
  assert.equal(d.baseline.version, 'v2');
  const approved = (await api('GET', '/v1/deployments/linked/events?limit=50')).body.events.find(
    (e: { type: string }) => e.type === 'approved',
  );
  assert.equal(approved.actor, 'link');
  assert.equal(approved.reason, 'checked the numbers');

  // Used: the page says so, and its form posted again is refused.
  const reopened = await page.goto(link);
  assert.equal(reopened?.status(), 409);
  assert.match((await page.textContent('#result')) ?? '', /LINK_USED: this approval link has already been used/);
});

test('a tampered link, a bare POST, a foreign page and a superseded link are refused with a clear message', async () => {
  const link = await waitingCanary('guarded', ['steps', 'promote'], [20, 100]);
  const page = await browser.newPage();
  cleanups.push(() => page.close());
  // Tampered: one character of the signature changed (the last one, whose spare bits base64
  // decoding ignores: compared as bytes, some such changes would pass).
  const last = link.at(-1) === 'A' ? 'B' : 'A';
  const tampered = await page.goto(link.slice(0, -1) + last);
  assert.equal(tampered?.status(), 400);
  assert.match((await page.textContent('#result')) ?? '', /LINK_INVALID/);
  // A POST that did not come from the page: no Origin (a script), or another site's page.
  const bare = await request(link, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'reason=x',
  });
  assert.equal(bare.statusCode, 403);
  await bare.body.dump();
  const foreign = await request(link, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
    body: 'reason=x',
  });
  assert.equal(foreign.statusCode, 403);
  await foreign.body.dump();
  // Our own origin but without the page's form value: still not from the page.
  const forged = await request(link, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: stack.controlPlane.url },
    body: 'reason=x&confirm=abc',
  });
  assert.equal(forged.statusCode, 403);
  await forged.body.dump();
  assert.equal((await api('GET', '/v1/deployments/guarded')).body.canary.weight, 20);

  // Superseded: the step was approved another way; the link no longer applies.
  assert.equal((await api('POST', '/v1/deployments/guarded/approve', {})).status, 200);
  const stale = await page.goto(link);
  assert.equal(stale?.status(), 409);
  assert.match((await page.textContent('#result')) ?? '', /LINK_SUPERSEDED: .*no longer waits/);
});

test('the dashboard shows what waits beside the evidence, and its Approve button carries it out (actor "dashboard")', async () => {
  await waitingCanary('dashed', ['promote'], [50]);
  const page = await browser.newPage();
  cleanups.push(() => page.close());
  page.on('dialog', (d) => void d.accept());
  await page.goto(`${stack.controlPlane.url}/#/d/dashed`);
  const waiting = page.locator('#awaiting');
  await waiting.waitFor({ timeout: 30_000 });
  assert.match(await waiting.innerText(), /Waiting for approval to promote.*ready on [\d,]+ canary requests/s);
  await page.click('#approve');
  await page.locator('#canary-version', { hasText: 'none' }).waitFor({ timeout: 30_000 });
  const d = (await api('GET', '/v1/deployments/dashed')).body;
  assert.equal(d.baseline.version, 'v2');
  const approved = (await api('GET', '/v1/deployments/dashed/events?limit=50')).body.events.find(
    (e: { type: string }) => e.type === 'approved',
  );
  assert.equal(approved.actor, 'dashboard');
});

test('an expired link is refused and says what to do instead', async () => {
  const first = alerts.find((a) => a.deployment === 'guarded' && a.approve);
  assert.ok(first?.approve);
  // The link was made before its alert arrived; 60 s (the TTL) after that, and a little more, it has expired.
  await sleep(Math.max(0, first.receivedAt + 62_000 - Date.now()));
  const page = await browser.newPage();
  cleanups.push(() => page.close());
  const opened = await page.goto(first.approve);
  assert.equal(opened?.status(), 410);
  assert.match(
    (await page.textContent('#result')) ?? '',
    /LINK_EXPIRED: this approval link expired at .*canary approve guarded/,
  );
});
