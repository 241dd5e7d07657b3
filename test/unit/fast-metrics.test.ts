import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { seededRandom } from '../../model-servers/iris.js';
import { FastCounter, FastHistogram } from '../../proxy/telemetry/fast-metrics.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const LABELS = ['deployment', 'version', 'role'] as const;

/** The same observations into prom-client's own families and into the fast ones. */
function both() {
  const theirs = new Registry();
  const ours = new Registry();
  const counter = new Counter({
    name: 'c_total',
    help: 'a "counter"\nhelp',
    labelNames: [...LABELS],
    registers: [theirs],
  });
  const histogram = new Histogram({
    name: 'h_seconds',
    help: 'h',
    labelNames: [...LABELS],
    buckets: BUCKETS,
    registers: [theirs],
  });
  const fastCounter = new FastCounter('c_total', 'a "counter"\nhelp', LABELS, ours);
  const fastHistogram = new FastHistogram('h_seconds', 'h', LABELS, BUCKETS, ours);
  return { theirs, ours, counter, histogram, fastCounter, fastHistogram };
}

test("the fast families expose exactly what prom-client's Counter and Histogram do", async () => {
  const m = both();
  const rnd = seededRandom(7);
  const series = [
    { deployment: 'iris', version: 'v1', role: 'baseline' },
    { deployment: 'iris', version: 'v2', role: 'canary' },
    { deployment: 'a"b\\c', version: 'v\n3', role: 'canary' }, // values that need escaping
  ];
  // Created at zero, as the recorder does before the first request.
  for (const labels of series) {
    m.counter.labels(labels).inc(0);
    m.histogram.zero(labels);
    m.fastCounter.series(labels);
    m.fastHistogram.series(labels);
  }
  for (let i = 0; i < 2_000; i++) {
    const labels = series[Math.floor(rnd() * 2)]; // the third stays at zero
    // Bounds exactly, values between them and past the last.
    const v = i % 50 === 0 ? BUCKETS[i % BUCKETS.length] : Math.exp(rnd() * 8 - 7);
    m.counter.labels(labels).inc();
    m.histogram.labels(labels).observe(v);
    m.fastCounter.series(labels).inc();
    m.fastHistogram.series(labels).observe(v);
  }
  assert.equal(await m.ours.metrics(), await m.theirs.metrics());
});

test('a series is found once and kept: the same object for the same labels, in any order', () => {
  const m = both();
  const a = m.fastCounter.series({ deployment: 'd', version: 'v1', role: 'baseline' });
  a.inc(2);
  assert.equal(m.fastCounter.series({ role: 'baseline', version: 'v1', deployment: 'd' }), a);
  assert.equal(a.value, 2);
  assert.throws(() => m.fastHistogram.series({ deployment: 'd', version: 'v1' } as never), /label role is missing/);
});
