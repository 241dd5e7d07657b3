import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type http from 'node:http';
import { after, test } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import { startLlmServer } from '../../model-servers/llm.js';
import { eventually, route, startTestProxy, startUpstream } from '../helpers/servers.js';

// Streamed answers through the proxy, as clients see them: the official openai client, raw
// bytes of every framing, and what the admin port's /metrics reports for each.

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** One series' value from the admin port's /metrics (0 when absent). */
async function metric(adminUrl: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

async function proxyFor(baselineUrl: string, config: Record<string, unknown> = {}) {
  const proxy = await startTestProxy({ version: 1, deployments: { llm: route('llm', baselineUrl, null) } }, { config });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** A scripted upstream: writes `parts` in order, each after the previous write has been flushed. */
async function scripted(contentType: string, parts: (string | Buffer)[], opts: { end?: boolean } = {}) {
  const up = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': contentType });
    let i = 0;
    const next = () => {
      if (i < parts.length) res.write(parts[i++], () => setImmediate(next));
      else if (opts.end !== false) res.end();
    };
    next();
  });
  cleanups.push(() => up.close());
  return up;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const strip = (c: unknown) => {
  const { id: _i, created: _c, ...rest } = c as Record<string, unknown>;
  return rest;
};

test('the openai client streams through the proxy (gateway and sidecar) and yields the chunks it gets directly', async () => {
  const llm = await startLlmServer({ version: 'v1' });
  cleanups.push(() => llm.close());
  const gateway = await proxyFor(llm.url);
  const sidecar = await proxyFor(llm.url, { deployment: 'llm' });
  const chunks = async (baseURL: string) => {
    const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: 'v1',
      messages: [{ role: 'user', content: 'tell me about canaries' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const out: unknown[] = [];
    for await (const c of stream) out.push(strip(c));
    return out;
  };
  const direct = await chunks(`${llm.url}/v1`);
  assert.ok(direct.length > 5, 'the server streamed several chunks');
  assert.deepEqual(await chunks(`${gateway.url}/llm/v1`), direct, 'gateway mode');
  assert.deepEqual(await chunks(`${sidecar.url}/v1`), direct, 'sidecar mode');
  // Completions too, and a non-streamed answer is an ordinary one (no stream series).
  const client = new OpenAI({ baseURL: `${gateway.url}/llm/v1`, apiKey: 'unused', maxRetries: 0 });
  const plain = await client.completions.create({ model: 'v1', prompt: 'hi' });
  assert.ok(plain.choices[0].text.length > 0);
  const labels = { deployment: 'llm', version: 'v1', role: 'baseline' };
  await eventually(async () => {
    assert.equal(await metric(gateway.adminUrl, 'canary_proxy_streams_total', { ...labels, end: 'complete' }), 1);
    const tokens = await metric(gateway.adminUrl, 'canary_proxy_tokens_total', { ...labels, kind: 'output' });
    assert.ok(tokens >= 10, `output tokens ${tokens}`);
    const ttft = await metric(gateway.adminUrl, 'canary_proxy_time_to_first_token_seconds_count', labels);
    assert.equal(ttft, 1, 'one TTFT observation');
  });
});

test('every framing passes byte for byte, unbuffered: vLLM, TGI (no space, CRLF), comments, multi-line data, NDJSON', async () => {
  const openaiChunk = (content: string) =>
    JSON.stringify({
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
    });
  const framings: [string, string, (string | Buffer)[], number][] = [
    [
      'vLLM',
      'text/event-stream',
      [`data: ${openaiChunk('')}\n\n`, `data: ${openaiChunk('a')}\n\n`, 'data: [DONE]\n\n'],
      1,
    ],
    [
      'TGI',
      'text/event-stream',
      [`data:${openaiChunk('a')}\r\n\r\n`, `data:${openaiChunk('b')}\r\n\r\ndata:[DONE]\r\n\r\n`],
      2,
    ],
    [
      'comments',
      'text/event-stream',
      [': keep-alive\n\n', `data: ${openaiChunk('x')}\n`, '\n:ping\n\ndata: [DONE]\n\n'],
      1,
    ],
    ['multi-line', 'text/event-stream', ['data: line one\ndata: line two\n\n', 'data: three\n\n'], 2],
    [
      'NDJSON',
      'application/x-ndjson',
      [
        `${JSON.stringify({ message: { content: 'hi' }, done: false })}\n`,
        `${JSON.stringify({ message: { content: '' }, done: true, eval_count: 1 })}\n`,
      ],
      1,
    ],
  ];
  for (const [name, type, parts, tokens] of framings) {
    const up = await scripted(type, parts);
    const proxy = await proxyFor(up.url);
    const res = await request(`${proxy.url}/llm/stream`);
    const body = Buffer.from(await res.body.arrayBuffer());
    assert.equal(body.toString(), parts.join(''), `${name}: bytes unchanged`);
    await eventually(async () => {
      const labels = { deployment: 'llm', version: 'v1', role: 'baseline' };
      assert.equal(await metric(proxy.adminUrl, 'canary_proxy_streams_total', { ...labels, end: 'complete' }), 1, name);
      assert.equal(
        await metric(proxy.adminUrl, 'canary_proxy_tokens_total', { ...labels, kind: 'output' }),
        tokens,
        name,
      );
    });
  }
});

test('the first token reaches the client while the model is still generating (no buffering)', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  const up = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: {"choices":[{"index":0,"delta":{"content":"first"}}]}\n\n');
    // The rest only once the client has the first token: a buffering proxy never gets here.
    void released.then(() => res.end('data: [DONE]\n\n'));
  });
  cleanups.push(() => up.close());
  const proxy = await proxyFor(up.url);
  const res = await request(`${proxy.url}/llm/v1/chat/completions`, { method: 'POST', body: '{}' });
  const it = res.body[Symbol.asyncIterator]();
  const first = await it.next();
  assert.match(Buffer.from(first.value).toString(), /first/);
  release();
  let rest = '';
  for (let r = await it.next(); !r.done; r = await it.next()) rest += Buffer.from(r.value).toString();
  assert.match(rest, /\[DONE\]/);
});

test('a 5 MB event and a line that never ends pass intact, and what follows the big event is still measured', async () => {
  const big = `data: ${'x'.repeat(5 * 1024 * 1024)}\n\n`;
  const after = 'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
  const up = await scripted('text/event-stream', [Buffer.from(big), after]);
  const proxy = await proxyFor(up.url);
  const body = Buffer.from(await (await request(`${proxy.url}/llm/s`)).body.arrayBuffer());
  assert.equal(sha(body), sha(Buffer.from(big + after)));
  const labels = { deployment: 'llm', version: 'v1', role: 'baseline' };
  await eventually(async () => {
    assert.equal(await metric(proxy.adminUrl, 'canary_proxy_tokens_total', { ...labels, kind: 'output' }), 1);
  });
  const endless = Buffer.alloc(8 * 1024 * 1024, 'y');
  const up2 = await scripted('text/event-stream', [endless]);
  const proxy2 = await proxyFor(up2.url);
  const body2 = Buffer.from(await (await request(`${proxy2.url}/llm/s`)).body.arrayBuffer());
  assert.equal(sha(body2), sha(endless));
});

test('errors inside a stream and cut streams are the model’s failures; a client that leaves is not', async () => {
  const errorStream = await scripted('text/event-stream', [
    'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
    'data: {"error":{"message":"CUDA out of memory","code":500}}\n\n',
  ]);
  const p1 = await proxyFor(errorStream.url);
  const r1 = await request(`${p1.url}/llm/s`);
  assert.equal(r1.statusCode, 200, 'the status went out before the error');
  assert.match(await r1.body.text(), /CUDA/);
  const labels = { deployment: 'llm', version: 'v1', role: 'baseline' };
  await eventually(async () => {
    assert.equal(await metric(p1.adminUrl, 'canary_proxy_streams_total', { ...labels, end: 'error_event' }), 1);
    assert.equal(await metric(p1.adminUrl, 'canary_proxy_requests_total', { ...labels, outcome: 'server_error' }), 1);
  });

  let upstreamClosed!: () => void;
  const closed = new Promise<void>((r) => {
    upstreamClosed = r;
  });
  const sockets = new Set<http.ServerResponse>();
  const endlessTokens = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    sockets.add(res);
    const timer = setInterval(() => res.write('data: {"choices":[{"index":0,"delta":{"content":"t"}}]}\n\n'), 5);
    res.on('close', () => {
      clearInterval(timer);
      upstreamClosed();
    });
  });
  cleanups.push(() => endlessTokens.close());
  const p2 = await proxyFor(endlessTokens.url);
  const ac = new AbortController();
  const r2 = await request(`${p2.url}/llm/s`, { signal: ac.signal });
  const it = r2.body[Symbol.asyncIterator]();
  await it.next();
  ac.abort();
  await closed; // the model's work stops when the client leaves
  await eventually(async () => {
    assert.equal(await metric(p2.adminUrl, 'canary_proxy_streams_total', { ...labels, end: 'client_gone' }), 1);
    assert.equal(await metric(p2.adminUrl, 'canary_proxy_requests_total', { ...labels, outcome: 'server_error' }), 0);
    assert.equal(await metric(p2.adminUrl, 'canary_proxy_requests_total', { ...labels, outcome: 'aborted' }), 1);
  });

  const cutter = await startUpstream((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n', () => req.socket.destroy());
  });
  cleanups.push(() => cutter.close());
  const p3 = await proxyFor(cutter.url);
  await request(`${p3.url}/llm/s`)
    .then((r) => r.body.text())
    .catch(() => 'cut');
  await eventually(async () => {
    assert.equal(await metric(p3.adminUrl, 'canary_proxy_streams_total', { ...labels, end: 'cut' }), 1);
  });
});
