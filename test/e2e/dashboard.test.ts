import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadControlPlaneConfig, loadProxyConfig } from '../../common/config.js';
import { startStack, type RunningStack } from '../../control-plane/main.js';
import { startModelServer, type RunningModelServer } from '../../model-servers/server.js';
import { freshSchema, silent } from '../helpers/servers.js';

// Screenshots land here for a person to look at; the folder is ignored by git.
const SHOTS = 'test-results/dashboard';
const TOKEN = 'dash-token';
let stack: RunningStack, browser: Browser, page: Page, models: RunningModelServer[], drop: () => Promise<void>;

before(async () => {
  const schema = await freshSchema();
  drop = schema.drop;
  models = await Promise.all([startModelServer({ model: 'v1' }), startModelServer({ model: 'v3', version: 'v2' })]);
  stack = await startStack(
    loadControlPlaneConfig({ DATABASE_URL: schema.url, CANARY_API_PORT: '0', CANARY_XDS_PORT: '0', CANARY_API_TOKEN: TOKEN }),
    loadProxyConfig({ CANARY_PROXY_PORT: '0', CANARY_ADMIN_PORT: '0', CANARY_PROXY_HOST: '127.0.0.1' }),
    { logger: silent },
  );
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  await fetch(`${stack.controlPlane.url}/v1/deployments`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'iris', baseline: { version: 'v1', url: models[0].url } }) });
  await fetch(`${stack.controlPlane.url}/v1/deployments/iris/versions`, { method: 'POST', headers: auth, body: JSON.stringify({ version: 'v2', url: models[1].url }) });
  await mkdir(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu'] });
  page = await browser.newPage();
  // The dashboard asks for the token with prompt(): answer it like a person would.
  page.on('dialog', (d) => void (d.type() === 'prompt' ? d.accept(TOKEN) : d.accept()));
});
after(async () => {
  await browser?.close();
  await stack?.close();
  await Promise.all(models.map((m) => m.close()));
  await drop();
});

test('the deployments page lists each deployment with status, versions and split', async () => {
  await page.goto(`${stack.controlPlane.url}/`);
  const row = page.locator('#deployments tr[data-name="iris"]');
  await row.waitFor();
  assert.match(await row.innerText(), /iris\s+stable\s+v1\s+none/);
  await page.screenshot({ path: `${SHOTS}/deployments.png`, fullPage: true });
});

test('a canary started from the form shows up with its split; the token is asked for and sent', async () => {
  await page.click('#deployments a');
  await page.locator('#start-form').waitFor();
  await page.selectOption('#start-form select[name=version]', 'v2');
  await page.fill('#start-form input[name=weight]', '20');
  await page.fill('#start-form input[name=interval]', '1h');
  await page.click('#start-form button[type=submit]');
  await page.locator('#canary-version', { hasText: 'v2' }).waitFor();
  assert.equal(await page.locator('#canary-weight').innerText(), '20%');
  const d = await (await fetch(`${stack.controlPlane.url}/v1/deployments/iris`)).json();
  assert.equal(d.canary.version, 'v2');
  assert.equal(d.canary.weight, 20);
  assert.equal(d.policy.interval, '1h');
});

test('+10% changes the split, and the route table the proxy serves', async () => {
  await page.click('#plus10');
  await page.locator('#canary-weight', { hasText: '30%' }).waitFor();
  assert.equal(await page.locator('#baseline-weight').innerText(), '70%');
  assert.equal(stack.proxy.table().deployments.iris.canary?.weight, 30);
  await page.locator('#events tr[data-type="traffic_adjusted"]').first().waitFor();
});

test('evaluate shows the verdict and why; charts draw from the analyses', async () => {
  for (let i = 0; i < 60; i++) {
    const r = await fetch(`${stack.proxy.url}/iris/predict`, { method: 'POST', body: JSON.stringify({ features: { sepal_length: 6, sepal_width: 3, petal_length: 4.5, petal_width: 1.4 } }) });
    await r.arrayBuffer();
  }
  await stack.proxy.flushStats();
  await page.click('#evaluate');
  await page.locator('#reasons li').first().waitFor();
  assert.match(await page.locator('#reasons').innerText(), /canary requests|within thresholds|baseline/);
  assert.ok(await page.locator('svg.chart').count() >= 2);
  await page.screenshot({ path: `${SHOTS}/deployment.png`, fullPage: true });
});

test('rollback is confirmed, then the event appears in the history with its reason', async () => {
  await page.click('#rollback');
  const row = page.locator('#events tr[data-type="rolled_back"]');
  await row.waitFor();
  assert.match(await row.innerText(), /rolled back from the dashboard/);
  assert.equal(await page.locator('#canary-version').innerText(), 'none');
  assert.equal(stack.proxy.table().deployments.iris.canary, null);
});

test('an error from the API is shown, not swallowed', async () => {
  await page.evaluate(() => fetch('/v1/deployments/iris/promote', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${localStorage.getItem('canaryToken')}` }, body: '{}' }));
  // Promote with no canary through the page's own client:
  const message = await page.evaluate(async () => {
    try { await (window as unknown as { api: (m: string, p: string, b?: unknown) => Promise<unknown> }).api('POST', '/v1/deployments/iris/promote', {}); return 'no error'; } catch (e) { return (e as Error).message; }
  });
  assert.match(message, /NO_CANARY/);
});

test('works on a narrow phone screen', async () => {
  const phone = await browser.newPage({ viewport: { width: 375, height: 740 } });
  await phone.goto(`${stack.controlPlane.url}/#/d/iris`);
  await phone.locator('#baseline-version').waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px`);
  await phone.screenshot({ path: `${SHOTS}/phone.png`, fullPage: true });
  await phone.close();
});
