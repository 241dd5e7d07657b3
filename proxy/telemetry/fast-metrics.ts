import type { Registry } from 'prom-client';

/**
 * Counter and histogram families for the series every request updates. prom-client validates
 * and hashes the label object on every inc() and observe(), even on a child from labels(); on
 * the gRPC path that was a few per cent of the proxy's CPU per call. Here a series is found
 * once (the caller keeps it) and updated with an addition. Both families give the registry the
 * values prom-client's own Counter and Histogram would, so /metrics reads the same.
 */

type Labels<L extends string> = Record<L, string>;

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
}

interface ExportedValue {
  value: number;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  metricName?: string;
}

/** Labels in the family's declared order (the exposition keeps it). */
function ordered<L extends string>(names: readonly L[], labels: Labels<L>): Labels<L> {
  const out = {} as Labels<L>;
  for (const n of names) {
    if (typeof labels[n] !== 'string') throw new Error(`label ${n} is missing`);
    out[n] = labels[n];
  }
  return out;
}

const keyOf = <L extends string>(names: readonly L[], labels: Labels<L>) => names.map((n) => labels[n]).join('\u0000');

export class CounterSeries {
  value = 0;
  constructor(readonly labels: Record<string, string>) {}
  inc(n = 1): void {
    this.value += n;
  }
}

export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last counts those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Record<string, string>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

/** A family's series by their labels; registered with the registry as one of prom-client's metrics. */
abstract class SeriesFamily<L extends string, S extends { labels: Record<string, string> }> implements Family {
  abstract readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum';
  protected readonly all = new Map<string, S>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  protected abstract make(labels: Labels<L>): S;

  /** The series of these labels, created at 0 (Prometheus sees it start from nothing). Keep it. */
  series(labels: Labels<L>): S {
    const key = keyOf(this.labelNames, labels);
    let s = this.all.get(key);
    if (!s) {
      s = this.make(ordered(this.labelNames, labels));
      this.all.set(key, s);
    }
    return s;
  }

  reset(): void {
    this.all.clear();
  }
}

export class FastCounter<L extends string> extends SeriesFamily<L, CounterSeries> {
  readonly type = 'counter';

  protected make(labels: Labels<L>): CounterSeries {
    return new CounterSeries(labels);
  }

  async get() {
    return this.getForPromString();
  }

  async getForPromString() {
    const values: ExportedValue[] = [];
    for (const s of this.all.values()) values.push({ value: s.value, labels: { ...s.labels } });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

export class FastHistogram<L extends string> extends SeriesFamily<L, HistogramSeries> {
  readonly type = 'histogram';

  constructor(
    name: string,
    help: string,
    labelNames: readonly L[],
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    if (buckets.some((b, i) => i > 0 && b <= buckets[i - 1])) throw new Error(`${name}: buckets must increase`);
    super(name, help, labelNames, registry);
  }

  protected make(labels: Labels<L>): HistogramSeries {
    return new HistogramSeries(labels, this.buckets);
  }

  /** As prom-client's Histogram gives them: cumulative buckets with `le` first, then sum and count. */
  async getForPromString() {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.all.values()) {
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i];
        values.push({ value: acc, labels: { le: this.buckets[i] }, sharedLabels: s.labels, metricName: bucket });
      }
      values.push(
        { value: s.count, labels: { le: '+Inf' }, sharedLabels: s.labels, metricName: bucket },
        { value: s.sum, labels: {}, sharedLabels: s.labels, metricName: `${this.name}_sum` },
        { value: s.count, labels: {}, sharedLabels: s.labels, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** For JSON: each value's labels whole. */
  async get() {
    const data = await this.getForPromString();
    data.values = data.values.map(({ sharedLabels, ...v }) => ({ ...v, labels: { ...v.labels, ...sharedLabels } }));
    return data;
  }
}
