// Durations ("500ms", "30s", "15m", "24h", "30d") and rates ("10/s", "600/m", "5000/h") are
// parsed once, when config or a CLI flag is read; the request path only sees numbers.

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds for a duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (DURATION_MS[m[2]!] ?? NaN);
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const RATE = /^(\d+(?:\.\d+)?)\/(s|m|h)$/;
const RATE_WINDOW_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000 };

export interface Rate {
  /** Tokens added per millisecond. */
  perMs: number;
  /** The rate as the operator wrote it, for logs and `explain`. */
  text: string;
}

export function parseRate(text: string): Rate | undefined {
  const m = RATE.exec(text.trim());
  if (!m) return undefined;
  const count = Number(m[1]);
  if (!(count > 0)) return undefined;
  return { perMs: count / RATE_WINDOW_MS[m[2]!]!, text: text.trim() };
}
