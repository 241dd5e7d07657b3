import { addGrpcCodes, type GrpcCounts, grpcCounts, noGrpcCodes } from './grpc-codes.js';
import { type Buckets, mergeInto, quantile } from './histogram.js';
import { addKeyGroups, type KeyGroupCounts, keyGroupCounts, noKeyGroups } from './key-groups.js';
import { addStreams, copyStreams, type StreamCounts, type StreamStats, streamStats } from './stream-stats.js';
import type { Trip } from './trip.js';

/**
 * The windowed-stats contract between proxies and the control plane. Proxies add
 * per-second cells; readers merge the cells of one (deployment, version) over [from, to].
 */
/**
 * How an attempt ended. `hedge_lost`: a canary request the baseline answered first after the
 * hedge delay — a latency event (the canary was at least that slow), not a model error, so a
 * hedged canary is measured by the same yardstick as the never-hedged baseline.
 */
export type Outcome =
  | 'success'
  | 'client_error'
  | 'server_error'
  | 'timeout'
  | 'connection_error'
  | 'aborted'
  | 'hedge_lost';

/** 5xx, timeouts and connection failures count against the model; 4xx, lost hedges and client aborts do not. */
export function isModelError(outcome: Outcome): boolean {
  return outcome === 'server_error' || outcome === 'timeout' || outcome === 'connection_error';
}

/**
 * Shadow-traffic counts of one version (proxy/shadow/): for a shadowed canary, its answers
 * compared with the baseline's and what happened to the shadow requests; for a baseline, its
 * noise floor (a sample of requests answered twice by the baseline and compared).
 */
export interface AgreementCounts {
  /** Shadow answers compared with the baseline's; `agreed` of them matched. */
  compared: number;
  agreed: number;
  /** Shadow requests the model failed (5xx, connection error) or did not answer in time. */
  errors: number;
  timeouts: number;
  /** Shadow requests not sent: over the concurrency cap or the body budget. */
  dropped: number;
  /** Noise floor: requests sent to this version twice and compared; `noiseAgreed` matched. */
  noiseCompared: number;
  noiseAgreed: number;
}
export type AgreementField = keyof AgreementCounts;
export const AGREEMENT_FIELDS: readonly AgreementField[] = [
  'compared',
  'agreed',
  'errors',
  'timeouts',
  'dropped',
  'noiseCompared',
  'noiseAgreed',
];
/** The short hash-field names of AgreementCounts in Redis. */
export const AGREEMENT_REDIS_FIELDS: Readonly<Record<AgreementField, string>> = Object.freeze({
  compared: 'sc',
  agreed: 'sa',
  errors: 'se',
  timeouts: 'st',
  dropped: 'sd',
  noiseCompared: 'nc',
  noiseAgreed: 'na',
});
export const noAgreement = (): AgreementCounts => ({
  compared: 0,
  agreed: 0,
  errors: 0,
  timeouts: 0,
  dropped: 0,
  noiseCompared: 0,
  noiseAgreed: 0,
});

/** One second of one version's traffic, as accumulated by one proxy. */
export interface StatsCell {
  deployment: string;
  version: string;
  epochSecond: number;
  requests: number;
  modelErrors: number;
  clientErrors: number;
  latency: Buckets;
  /** Present when shadow traffic was counted in this second. */
  agreement?: AgreementCounts;
  /** Present when streamed answers (SSE, NDJSON) ended in this second. */
  stream?: StreamCounts;
  /** Present when gRPC calls ended in this second: one count per status code (grpc-codes.ts). */
  grpc?: number[];
  /** Of this version's model errors, those its retry on the baseline failed too (a shared fault). */
  retryFailed?: number;
  /** Present when requests routed by a sticky key were counted: per key group (key-groups.ts). */
  keyed?: number[];
  /**
   * Routing draws decided in this second (counted as the request is routed, before any
   * answer): what the split did, for the sample-ratio check. Absent from older writers.
   */
  routed?: number;
}

/**
 * One disagreement, kept so a person can see how two models differ: the request id, the
 * SHA-256 of the input (never the input itself) and the two compared values.
 */
export interface DisagreementExample {
  at: number;
  requestId: string;
  inputSha256: string;
  baseline: string;
  canary: string;
}
/** Disagreement examples kept per (deployment, canary version). */
export const MAX_EXAMPLES = 50;

/** Merged stats of one version over a time range. Latencies in milliseconds. */
export interface VersionStats {
  deployment: string;
  version: string;
  from: number;
  to: number;
  requests: number;
  modelErrors: number;
  clientErrors: number;
  /** modelErrors / requests, or 0 with no requests. */
  errorRate: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Shadow counts over the range (absent from sources without them, e.g. Prometheus). */
  agreement?: AgreementCounts;
  /**
   * The merged latency histogram, for the analysis's latency tests (how many requests were
   * slower than a limit). In memory only: views and stored analyses leave it out.
   * For a streamed answer the latency is its time to first token: what the user waits for.
   */
  histogram?: Buckets;
  /** Streamed answers over the range: TTFT, TPOT, tokens, how they ended (absent with none). */
  streams?: StreamStats;
  /** gRPC calls over the range by status code (absent with none). */
  grpc?: GrpcCounts;
  /**
   * Of the canary's model errors, those its retry on the baseline failed too: failures the
   * baseline reproduces, a fault both share. What the analysis compares with at 100%, where no
   * baseline serves beside the canary (absent with none).
   */
  retryFailed?: number;
  /** Requests routed by a sticky key, per key group: how uneven the users are (absent with none). */
  keyGroups?: KeyGroupCounts;
  /** Routing draws decided in the range (the sample-ratio check; absent with none counted). */
  routed?: number;
}

/** The stats without their histogram, as the API shows and stores them. */
export function withoutHistogram<T extends VersionStats | null | undefined>(s: T): T {
  if (!s || (s.histogram === undefined && s.streams?.histograms === undefined)) return s;
  const { histogram: _h, ...rest } = s;
  if (rest.streams?.histograms) {
    const { histograms: _s, ...streams } = rest.streams;
    rest.streams = streams;
  }
  return rest as T;
}

/**
 * Where proxies report to the control plane: their windowed stats cells (read back merged by
 * the analysis), and the canaries they tripped (taken by the control plane's loop).
 */
export interface StatsStore {
  /**
   * Adds cells (merging with other writers). One round-trip per call, never per request.
   * With `flushId`, applied exactly once: a write resent or retried with the same id (its
   * answer was lost) changes nothing the second time.
   */
  write(cells: StatsCell[], flushId?: string): Promise<void>;
  /** Merged stats of a version over [fromMs, toMs] (whole seconds, inclusive). */
  read(deployment: string, version: string, fromMs: number, toMs: number): Promise<VersionStats>;
  /** A proxy took a canary off live traffic (proxy/split/trips.ts). */
  reportTrip(trip: Trip): Promise<void>;
  /** Trips reported since the last call; each is returned once. */
  takeTrips(): Promise<Trip[]>;
  /** Keeps disagreement examples of a canary (the newest MAX_EXAMPLES). */
  addExamples(deployment: string, version: string, examples: DisagreementExample[]): Promise<void>;
  /** The kept examples, newest first. */
  examples(deployment: string, version: string): Promise<DisagreementExample[]>;
  close?(): Promise<void>;
}

export function addAgreement(into: AgreementCounts, c: AgreementCounts): void {
  for (const f of AGREEMENT_FIELDS) into[f] += c[f];
}

/** What a version's merged cells may hold beyond requests, errors and latency. */
export interface StatsExtras {
  agreement?: AgreementCounts;
  streams?: StreamCounts;
  grpc?: number[];
  retryFailed?: number;
  keyed?: number[];
  routed?: number;
}

export function summarize(
  deployment: string,
  version: string,
  from: number,
  to: number,
  requests: number,
  modelErrors: number,
  clientErrors: number,
  latency: Buckets,
  { agreement = noAgreement(), streams, grpc: grpcCodes, retryFailed = 0, keyed, routed = 0 }: StatsExtras = {},
): VersionStats {
  const grpc = grpcCounts(grpcCodes);
  const keyGroups = keyGroupCounts(keyed);
  return {
    ...(streams && streams.streams > 0 ? { streams: streamStats(streams) } : {}),
    ...(grpc ? { grpc } : {}),
    ...(retryFailed > 0 ? { retryFailed } : {}),
    ...(keyGroups ? { keyGroups } : {}),
    ...(routed > 0 ? { routed } : {}),
    deployment,
    version,
    from,
    to,
    requests,
    modelErrors,
    clientErrors,
    agreement,
    errorRate: requests > 0 ? modelErrors / requests : 0,
    p50: quantile(latency, 0.5),
    p95: quantile(latency, 0.95),
    p99: quantile(latency, 0.99),
    histogram: latency,
  };
}

const cellKey = (c: StatsCell) => `${c.deployment}\u0000${c.version}\u0000${c.epochSecond}`;

/** Adds `cells` into a map of cells keyed by (deployment, version, second); never aliases an input. */
export function mergeCells(into: Map<string, StatsCell>, cells: StatsCell[]): void {
  for (const c of cells) {
    const key = cellKey(c);
    const cur = into.get(key);
    if (!cur) {
      into.set(key, {
        ...c,
        latency: new Map(c.latency),
        agreement: c.agreement && { ...c.agreement },
        stream: c.stream && copyStreams(c.stream),
        grpc: c.grpc && [...c.grpc],
        keyed: c.keyed && [...c.keyed],
      });
      continue;
    }
    cur.requests += c.requests;
    cur.modelErrors += c.modelErrors;
    cur.clientErrors += c.clientErrors;
    if (c.retryFailed) cur.retryFailed = (cur.retryFailed ?? 0) + c.retryFailed;
    if (c.routed) cur.routed = (cur.routed ?? 0) + c.routed;
    mergeInto(cur.latency, c.latency);
    if (c.agreement) {
      cur.agreement ??= noAgreement();
      addAgreement(cur.agreement, c.agreement);
    }
    if (c.stream) {
      if (cur.stream) addStreams(cur.stream, c.stream);
      else cur.stream = copyStreams(c.stream);
    }
    if (c.grpc) {
      cur.grpc ??= noGrpcCodes();
      addGrpcCodes(cur.grpc, c.grpc);
    }
    if (c.keyed) {
      cur.keyed ??= noKeyGroups();
      addKeyGroups(cur.keyed, c.keyed);
    }
  }
}
