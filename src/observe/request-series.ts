// The two series every request updates — keygate_requests_total and
// keygate_request_duration_seconds — kept as plain numbers on the request path and handed to
// prom-client only when it is scraped.
//
// Why: prom-client's child objects still validate and hash their labels on every inc() and
// observe() (and the histogram allocates an object per observation); under load that was
// ~2–3 µs of keygate's ~100 µs per request (bench/RESULTS.md). Here a request costs one Map
// lookup per series on a key built from a handful of short strings, an increment and a
// bucket search over 15 numbers.
import { Counter, type Registry } from 'prom-client';

type SeriesLabels = Record<string, string>;

interface PendingCount {
  labels: SeriesLabels;
  n: number;
}

/** A Counter whose increments wait in plain numbers until the next scrape (collect()). */
export class DeferredCounter<L extends string> {
  readonly counter: Counter<L>;
  private readonly pending = new Map<string, PendingCount>();

  constructor(opts: { name: string; help: string; labelNames: readonly L[]; registers: Registry[] }) {
    const pending = this.pending;
    this.counter = new Counter<L>({
      name: opts.name,
      help: opts.help,
      labelNames: opts.labelNames,
      registers: opts.registers,
      collect() {
        for (const p of pending.values()) {
          if (p.n === 0) continue;
          this.inc(p.labels as Partial<Record<L, string>>, p.n);
          p.n = 0;
        }
      },
    });
  }

  /** One more for the series `key` names; false when that series is new here (then call add). */
  inc(key: string): boolean {
    const p = this.pending.get(key);
    if (!p) return false;
    p.n++;
    return true;
  }

  /** The first increment of a series: `key` stands for `labels` from now on. */
  add(key: string, labels: SeriesLabels): void {
    if (this.pending.size < 50_000) this.pending.set(key, { labels, n: 1 });
    else this.counter.inc(labels as Partial<Record<L, string>>); // bounded: past that, prom-client's own path
  }

  /** Forget pending series whose key `keep` rejects (their counts so far are folded in first). */
  prune(keep: (key: string) => boolean): void {
    for (const [key, p] of this.pending) {
      if (keep(key)) continue;
      if (p.n > 0) this.counter.inc(p.labels as Partial<Record<L, string>>, p.n);
      this.pending.delete(key);
    }
  }
}

interface Buckets {
  labels: SeriesLabels;
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  counts: Float64Array;
  sum: number;
  count: number;
}

interface Sample {
  labels: SeriesLabels;
  sharedLabels?: SeriesLabels;
  value: number;
  metricName: string;
}

/**
 * A histogram with the exposition of prom-client's Histogram (the same names, label order and
 * JSON, so prom-client's registry prints it and its AggregatorRegistry sums it across workers)
 * over plain arrays.
 */
export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, Buckets>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly upperBounds: readonly number[],
    registers: Registry[],
  ) {
    for (const r of registers) r.registerMetric(this as never);
  }

  /** One observation for the series `key` names; false when that series is new here (then call add). */
  observe(key: string, value: number): boolean {
    const s = this.series.get(key);
    if (!s) return false;
    this.record(s, value);
    return true;
  }

  /** The first observation of a series (a small fixed set: outcome × protocol). */
  add(key: string, labels: SeriesLabels, value: number): void {
    const s: Buckets = { labels, counts: new Float64Array(this.upperBounds.length + 1), sum: 0, count: 0 };
    this.series.set(key, s);
    this.record(s, value);
  }

  private record(s: Buckets, value: number): void {
    const b = this.upperBounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  reset(): void {
    this.series.clear();
  }

  /** What prom-client's Registry prints: `le` first, the series' labels after it. */
  getForPromString(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: string }> {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.upperBounds.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: this.upperBounds[i] as unknown as string }, sharedLabels: s.labels, value: acc, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  /** JSON (getMetricsAsJSON, the workers' aggregation): labels merged, as prom-client's Histogram gives them. */
  async get(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: string }> {
    const data = await this.getForPromString();
    data.values = data.values.map((v) => ({ value: v.value, metricName: v.metricName, labels: { ...v.labels, ...v.sharedLabels }, exemplar: undefined } as Sample));
    return data;
  }
}
