// A separate process that writes windowed stats exactly as a proxy does (accumulator →
// Redis store, one pipeline per flush), so the merge test has several real writers.
// Usage: stats-writer.ts <redisUrl> <prefix> <seed> <count>; prints its raw latencies.
import { Redis } from 'ioredis';
import { seededRandom } from '../../model-servers/iris.js';
import { RedisStatsStore } from '../../proxy/contract/redis-stats-store.js';
import { StatsAccumulator } from '../../proxy/telemetry/accumulator.js';

const [url, prefix, seed, count] = process.argv.slice(2);
const rnd = seededRandom(Number(seed));
const redis = new Redis(url);
const store = new RedisStatsStore(redis, prefix);
const acc = new StatsAccumulator();
const latencies: number[] = [];
const start = Date.now();
for (let i = 0; i < Number(count); i++) {
  const u = 1 - rnd(),
    v = rnd();
  const ms = Math.exp(2 + 0.8 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  latencies.push(ms);
  const outcome = i % 10 === 0 ? 'server_error' : i % 7 === 0 ? 'client_error' : 'success';
  acc.record('merge', 'v9', outcome, ms, start + (i % 3) * 1000); // spread over three seconds
  if (i % 1000 === 999) await store.write(acc.drain());
}
await store.write(acc.drain());
process.stdout.write(JSON.stringify(latencies));
redis.disconnect();
