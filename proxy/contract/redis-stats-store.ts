import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { grpcCodeOfRedisField, grpcRedisField, noGrpcCodes } from './grpc-codes.js';
import type { Buckets } from './histogram.js';
import { keyGroupRedisField, keyGroupSlotOfRedisField, noKeyGroups } from './key-groups.js';
import { redisKeys } from './keys.js';
import {
  AGREEMENT_FIELDS,
  AGREEMENT_REDIS_FIELDS,
  type AgreementField,
  type DisagreementExample,
  MAX_EXAMPLES,
  noAgreement,
  type StatsCell,
  type StatsStore,
  summarize,
  type VersionStats,
} from './stats.js';
import { noStreams, readStreamRedisField, streamRedisFields } from './stream-stats.js';
import type { Trip } from './trip.js';

const AGREEMENT_BY_REDIS_FIELD = new Map(
  AGREEMENT_FIELDS.map((f) => [AGREEMENT_REDIS_FIELDS[f], f] as [string, AgreementField]),
);

/** Cells outlive the longest window an analysis or chart reads. */
export const DEFAULT_STATS_TTL_S = 2 * 3600;
/** Reading more than this many seconds at once is refused: a window is minutes, not days. */
const MAX_READ_SECONDS = 6 * 3600;

/**
 * One flush, applied atomically and exactly once: the flush's id is recorded (SET NX) and its
 * increments applied only if the id is new, so a flush resent after a lost answer — by the
 * client on reconnect, or by the flusher's retry — counts once. HINCRBY alone is not
 * idempotent. ARGV[1]: the cells' lifetime (s); ARGV[2]: [[key, [field, n, ...]], ...] as JSON.
 * (The cell keys are not declared in KEYS: canary-mesh runs on a standalone Redis.)
 */
const FLUSH_SCRIPT = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for _, cell in ipairs(cjson.decode(ARGV[2])) do
  local fields = cell[2]
  for i = 1, #fields, 2 do redis.call('HINCRBY', cell[1], fields[i], fields[i + 1]) end
  redis.call('EXPIRE', cell[1], ARGV[1])
end
return 1`;

type FlushingRedis = Redis & { canaryFlush(idKey: string, ttl: number, cells: string): Promise<number> };

/**
 * Windowed stats in Redis: one hash per (deployment, version, second), every field added
 * with HINCRBY so any number of proxy replicas merge exactly. A flush is one script call.
 */
export class RedisStatsStore implements StatsStore {
  private readonly keys;
  constructor(
    private readonly redis: Redis,
    prefix?: string,
    private readonly ttlSeconds = DEFAULT_STATS_TTL_S,
  ) {
    this.keys = redisKeys(prefix);
  }

  async write(cells: StatsCell[], flushId: string = randomUUID()): Promise<void> {
    if (cells.length === 0) return;
    const payload = cells.map((c) => {
      const fields: (string | number)[] = ['n', c.requests];
      if (c.modelErrors) fields.push('me', c.modelErrors);
      if (c.clientErrors) fields.push('ce', c.clientErrors);
      if (c.retryFailed) fields.push('re', c.retryFailed);
      if (c.routed) fields.push('r', c.routed);
      for (const [i, count] of c.latency) fields.push(`h${i}`, count);
      if (c.agreement)
        for (const f of AGREEMENT_FIELDS) if (c.agreement[f]) fields.push(AGREEMENT_REDIS_FIELDS[f], c.agreement[f]);
      if (c.stream) streamRedisFields(c.stream, fields);
      if (c.grpc)
        for (let code = 0; code < c.grpc.length; code++)
          if (c.grpc[code]) fields.push(grpcRedisField(code), c.grpc[code]);
      if (c.keyed)
        for (let slot = 0; slot < c.keyed.length; slot++)
          if (c.keyed[slot]) fields.push(keyGroupRedisField(slot), c.keyed[slot]);
      return [this.keys.stats(c.deployment, c.version, c.epochSecond), fields];
    });
    await this.flushing().canaryFlush(this.keys.flush(flushId), this.ttlSeconds, JSON.stringify(payload));
  }

  /** The client with the flush script defined (EVALSHA, loaded again by ioredis after a Redis restart). */
  private flushing(): FlushingRedis {
    const r = this.redis as FlushingRedis;
    if (typeof r.canaryFlush !== 'function')
      this.redis.defineCommand('canaryFlush', { numberOfKeys: 1, lua: FLUSH_SCRIPT });
    return r;
  }

  /** A list the control plane drains: LPUSH here, an atomic read-and-clear there. */
  async reportTrip(trip: Trip): Promise<void> {
    await this.redis.lpush(this.keys.trips, JSON.stringify(trip));
  }

  async takeTrips(): Promise<Trip[]> {
    const [[err, items]] = (await this.redis.multi().lrange(this.keys.trips, 0, -1).del(this.keys.trips).exec()) ?? [
      [null, []],
    ];
    if (err) throw err;
    const out: Trip[] = [];
    for (const raw of (items as string[]).reverse()) {
      try {
        out.push(JSON.parse(raw) as Trip);
      } catch {
        /* a malformed entry is dropped */
      }
    }
    return out;
  }

  /** A capped list per (deployment, version): LPUSH then LTRIM, in one transaction. */
  async addExamples(deployment: string, version: string, examples: DisagreementExample[]): Promise<void> {
    if (examples.length === 0) return;
    const key = this.keys.examples(deployment, version);
    const results = await this.redis
      .multi()
      .lpush(key, ...examples.map((e) => JSON.stringify(e)))
      .ltrim(key, 0, MAX_EXAMPLES - 1)
      .expire(key, this.ttlSeconds * 12)
      .exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  async examples(deployment: string, version: string): Promise<DisagreementExample[]> {
    const items = await this.redis.lrange(this.keys.examples(deployment, version), 0, MAX_EXAMPLES - 1);
    const out: DisagreementExample[] = [];
    for (const raw of items) {
      try {
        out.push(JSON.parse(raw) as DisagreementExample);
      } catch {
        /* a malformed entry is skipped */
      }
    }
    return out;
  }

  async read(deployment: string, version: string, fromMs: number, toMs: number): Promise<VersionStats> {
    const from = Math.floor(fromMs / 1000);
    const to = Math.floor(toMs / 1000);
    if (to - from > MAX_READ_SECONDS)
      throw new RangeError(`stats range too long: ${to - from}s (max ${MAX_READ_SECONDS}s)`);
    const p = this.redis.pipeline();
    for (let s = from; s <= to; s++) p.hgetall(this.keys.stats(deployment, version, s));
    const results = (await p.exec()) ?? [];
    let requests = 0,
      modelErrors = 0,
      clientErrors = 0,
      retryFailed = 0,
      routed = 0;
    const latency: Buckets = new Map();
    const agreement = noAgreement();
    const streams = noStreams();
    const grpc = noGrpcCodes();
    const keyed = noKeyGroups();
    for (const [err, value] of results) {
      if (err) throw err;
      for (const [field, raw] of Object.entries(value as Record<string, string>)) {
        const n = Number(raw);
        if (field === 'n') requests += n;
        else if (field === 'me') modelErrors += n;
        else if (field === 'ce') clientErrors += n;
        else if (field === 're') retryFailed += n;
        else if (field === 'r') routed += n;
        else if (field[0] === 'h') {
          const i = Number(field.slice(1));
          latency.set(i, (latency.get(i) ?? 0) + n);
        } else {
          const f = AGREEMENT_BY_REDIS_FIELD.get(field);
          const code = f ? null : grpcCodeOfRedisField(field);
          const slot = f || code !== null ? null : keyGroupSlotOfRedisField(field);
          if (f) agreement[f] += n;
          else if (code !== null) grpc[code] += n;
          else if (slot !== null) keyed[slot] += n;
          else readStreamRedisField(streams, field, n);
        }
      }
    }
    return summarize(deployment, version, fromMs, toMs, requests, modelErrors, clientErrors, latency, {
      agreement,
      streams,
      grpc,
      retryFailed,
      keyed,
      routed,
    });
  }
}
