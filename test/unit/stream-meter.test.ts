import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createParser } from 'eventsource-parser';
import { GrpcMessageMeter } from '../../proxy/grpc/message-meter.js';
import { framingOf } from '../../proxy/stream/framing.js';
import { StreamMeter } from '../../proxy/stream/meter.js';
import { type SseEvent, SseParser } from '../../proxy/stream/sse.js';

const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: null }], ...extra });

/** vLLM's framing: a role-only first chunk, content chunks, a finish_reason chunk, a usage chunk, [DONE]. */
const VLLM = [
  `data: ${chunk({ role: 'assistant', content: '' })}\n\n`,
  `data: ${chunk({ content: 'Hello' })}\n\n`,
  `data: ${chunk({ content: ' wörld' })}\n\n`,
  `data: ${chunk({ content: ' again' })}\n\n`,
  `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
  `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 7, completion_tokens: 3 } })}\n\n`,
  'data: [DONE]\n\n',
].join('');

/** Feeds `text` to a meter split at the given byte offsets, each piece at time = its index. */
function meter(text: string, cuts: number[] = [], framing: 'sse' | 'ndjson' = 'sse') {
  const bytes = Buffer.from(text);
  const m = new StreamMeter(framing, 0);
  let at = 0;
  [...cuts, bytes.length].forEach((end, i) => {
    m.push(bytes.subarray(at, end), 10 * (i + 1));
    at = end;
  });
  return m;
}

test('content types: SSE and the NDJSON family are streams, JSON is not', () => {
  assert.equal(framingOf('text/event-stream; charset=utf-8'), 'sse');
  assert.equal(framingOf('Application/X-NDJSON'), 'ndjson');
  assert.equal(framingOf('application/jsonl'), 'ndjson');
  assert.equal(framingOf('application/json-seq'), 'ndjson');
  assert.equal(framingOf('application/json'), null);
  assert.equal(framingOf(undefined), null);
});

test('vLLM framing: the role-only chunk is not the first token; usage gives the tokens; [DONE] completes it', () => {
  const bytes = Buffer.from(VLLM);
  const parts = VLLM.split(/(?<=\n\n)/).map((p) => Buffer.byteLength(p));
  const cuts = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).reduce((a, b) => a + b, 0));
  const s = meter(VLLM, cuts).finish('closed', 100);
  assert.equal(bytes.length, cuts.at(-1)! + parts.at(-1)!);
  assert.equal(s.ttftMs, 20, 'first token is the second event (time 20)');
  assert.equal(s.outputTokens, 3);
  assert.equal(s.tokensEstimated, false);
  assert.equal(s.promptTokens, 7);
  assert.equal(s.tpotMs, (40 - 20) / 2);
  assert.equal(s.end, 'complete');
});

test('every split of the byte stream (each single boundary, and every byte apart) gives the same summary', () => {
  const whole = meter(VLLM).finish('closed', 100);
  const n = Buffer.byteLength(VLLM);
  for (let cut = 1; cut < n; cut++) {
    const s = meter(VLLM, [cut]).finish('closed', 100);
    assert.equal(s.outputTokens, whole.outputTokens, `cut at ${cut}`);
    assert.equal(s.end, 'complete', `cut at ${cut}`);
    assert.equal(s.promptTokens, 7, `cut at ${cut}`);
  }
  const bytewise = meter(
    VLLM,
    Array.from({ length: n - 1 }, (_, i) => i + 1),
  ).finish('closed', 1e9);
  assert.equal(bytewise.outputTokens, 3);
  assert.equal(bytewise.end, 'complete');
});

test('TGI framing (data: without the space, CRLF), comments, keep-alives and multi-line data', () => {
  const text = [
    ': keep-alive\r\n\r\n',
    `data:${JSON.stringify({ choices: [{ index: 0, text: 'a', finish_reason: null }] })}\r\n\r\n`,
    ':ping\r\n',
    `data:${JSON.stringify({ choices: [{ index: 0, text: 'b', finish_reason: 'length' }] })}\r\n\r\n`,
  ].join('');
  const s = meter(text, [5, 40, 41]).finish('closed', 100);
  assert.equal(s.outputTokens, 2);
  assert.equal(s.tokensEstimated, true);
  assert.equal(s.end, 'complete', 'finish_reason ends it');
  // Multi-line data is joined with LF (the spec): a generic stream's event count.
  const events: SseEvent[] = [];
  const p = new SseParser(1 << 20, (e) => events.push(e));
  p.push(Buffer.from('event: note\ndata: line one\ndata:line two\r\r\ndata: x\n\n'));
  assert.deepEqual(events, [
    { event: 'note', data: 'line one\nline two' },
    { event: 'message', data: 'x' },
  ]);
});

test('the SSE parser agrees with eventsource-parser on every event at every split point', () => {
  const text = `${VLLM}: comment\r\nevent: e\r\ndata: a\r\ndata: b\r\n\r\ndata:c\rdata: d\r\rdata: e\n\n`;
  const reference: string[] = [];
  const ref = createParser({ onEvent: (e) => reference.push(`${e.event ?? 'message'}|${e.data}`) });
  ref.feed(text);
  for (let cut = 1; cut < text.length; cut += 7) {
    const ours: string[] = [];
    const p = new SseParser(1 << 20, (e) => ours.push(`${e.event}|${e.data}`));
    p.push(Buffer.from(text.slice(0, cut)));
    p.push(Buffer.from(text.slice(cut)));
    assert.deepEqual(ours, reference, `split at ${cut}`);
  }
});

test('errors inside the stream: an error object or finish_reason "error" is an error event; a close before the end is a cut', () => {
  const err = meter(
    `data: ${chunk({ content: 'x' })}\n\ndata: {"error": {"message": "boom", "code": 500}}\n\ndata: [DONE]\n\n`,
  ).finish('closed', 50);
  assert.equal(err.end, 'error_event');
  const fin = meter(
    `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'x' }, finish_reason: 'error' }] })}\n\n`,
  ).finish('closed', 50);
  assert.equal(fin.end, 'error_event');
  const cut = meter(`data: ${chunk({ content: 'x' })}\n\n`).finish('closed', 50);
  assert.equal(cut.end, 'cut', 'an OpenAI stream closed without finish_reason or [DONE]');
  assert.equal(meter(`data: ${chunk({ content: 'x' })}\n\n`).finish('broken', 50).end, 'cut');
  assert.equal(meter(`data: ${chunk({ content: 'x' })}\n\n`).finish('client_gone', 50).end, 'client_gone');
  // A stream of no known format: its first event is the first token; a clean close completes it.
  const plain = meter('data: tick 1\n\ndata: tick 2\n\n', [14]).finish('closed', 50);
  assert.deepEqual([plain.end, plain.ttftMs, plain.outputTokens], ['complete', 10, 2]);
});

test('Ollama NDJSON: message.content or response carries output; done: true ends it with eval_count', () => {
  const lines = [
    { model: 'm', message: { role: 'assistant', content: 'Hi' }, done: false },
    { model: 'm', message: { role: 'assistant', content: ' there' }, done: false },
    { model: 'm', message: { role: 'assistant', content: '' }, done: true, eval_count: 2, prompt_eval_count: 9 },
  ]
    .map((l) => JSON.stringify(l))
    .join('\n');
  const s = meter(`${lines}\n`, [10, 60], 'ndjson').finish('closed', 100);
  assert.deepEqual([s.end, s.outputTokens, s.promptTokens, s.tokensEstimated], ['complete', 2, 9, false]);
  const err = meter('{"error":"model not found"}\n', [], 'ndjson').finish('closed', 10);
  assert.equal(err.end, 'error_event');
});

test('bounded: a 5 MB event is skipped and counted, a line that never ends is never held, and both keep what follows', () => {
  const big = `data: ${'x'.repeat(5 * 1024 * 1024)}\n\n`;
  const m = new StreamMeter('sse', 0, 64 * 1024);
  const bytes = Buffer.from(`${big}data: ${chunk({ content: 'after' })}\n\ndata: [DONE]\n\n`);
  for (let at = 0; at < bytes.length; at += 16 * 1024) m.push(bytes.subarray(at, at + 16 * 1024), 5);
  const s = m.finish('closed', 10);
  assert.equal(s.skipped, 1);
  assert.equal(s.outputTokens, 1, 'the event after the oversized one is still read');
  assert.equal(s.end, 'complete');
  // A line that never ends: the parser holds at most its cap, whatever arrives.
  const events: SseEvent[] = [];
  const p = new SseParser(64 * 1024, (e) => events.push(e));
  const piece = Buffer.from('y'.repeat(64 * 1024));
  for (let i = 0; i < 200; i++) p.push(piece); // 12.8 MB without a line end
  const held = (p as unknown as { lines: { partial: string } }).lines.partial.length;
  assert.ok(held <= 64 * 1024, `holds ${held} characters`);
  assert.equal(p.skipped, 1);
});

test('gRPC messages: counted by their 5-byte prefixes at every split point; one message is not a stream', () => {
  const message = (payload: Buffer, compressed = 0) => {
    const prefix = Buffer.alloc(5);
    prefix[0] = compressed;
    prefix.writeUInt32BE(payload.length, 1);
    return Buffer.concat([prefix, payload]);
  };
  // Payloads that look like prefixes, an empty message, and one larger than any chunk.
  const wire = Buffer.concat([
    message(Buffer.from([0, 0, 0, 0, 9, 1, 2])),
    message(Buffer.alloc(0)),
    message(Buffer.alloc(70_000, 7), 1),
    message(Buffer.from('ok')),
  ]);
  for (let cut = 0; cut <= wire.length; cut += cut < 40 ? 1 : 997) {
    const m = new GrpcMessageMeter(0);
    m.push(wire.subarray(0, cut), 10);
    m.push(wire.subarray(cut), 30);
    assert.equal(m.messages, 4, `split at ${cut}`);
  }
  const bytes = new GrpcMessageMeter(100);
  for (let i = 0; i < wire.length; i++) bytes.push(wire.subarray(i, i + 1), 100 + i);
  assert.equal(bytes.messages, 4);
  const s = bytes.summary('complete');
  assert.equal(s?.framing, 'grpc');
  assert.equal(s?.ttftMs, 4, 'time to the first message: its prefix complete');
  assert.equal(s?.outputTokens, 4);
  assert.equal(s?.tpotMs, (s!.decodeMs as number) / 3);

  const unary = new GrpcMessageMeter(0);
  unary.push(message(Buffer.from('one answer')), 5);
  assert.equal(unary.summary('complete'), null, 'a unary answer is judged by its latency');
});
