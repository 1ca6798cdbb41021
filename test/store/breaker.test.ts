// The circuit breaker on a clock the test moves: closed → open after N failures in a row →
// half-open (one probe) → closed on success, open again (for longer) on failure.
import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type BreakerState } from '../../src/store/breaker.js';

function breaker() {
  const clock = { ms: 1_000 };
  const changes: BreakerState[] = [];
  const b = new CircuitBreaker({ failures: 3, openMs: 500, maxOpenMs: 2_000, now: () => clock.ms, onChange: (s) => changes.push(s) });
  return { b, clock, changes };
}

describe('CircuitBreaker', () => {
  it('stays closed below the threshold, and a success resets the count', () => {
    const { b } = breaker();
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    expect(b.state).toBe('closed');
    expect(b.allow()).toBe(true);
  });

  it('opens after 3 failures in a row and refuses calls until the probe time', () => {
    const { b, clock, changes } = breaker();
    for (let i = 0; i < 3; i++) b.failure();
    expect(b.state).toBe('open');
    expect(b.allow()).toBe(false);
    expect(b.msUntilProbe()).toBe(500);
    clock.ms += 499;
    expect(b.allow()).toBe(false);
    expect(b.msUntilProbe()).toBe(1);
    clock.ms += 1;
    expect(b.allow()).toBe(true);
    expect(b.state).toBe('half-open');
    // Only one probe at a time.
    expect(b.allow()).toBe(false);
    b.success();
    expect(b.state).toBe('closed');
    expect(b.allow()).toBe(true);
    expect(changes).toEqual(['open', 'half-open', 'closed']);
  });

  it('a failed probe opens it again, for twice as long, up to the maximum', () => {
    const { b, clock } = breaker();
    for (let i = 0; i < 3; i++) b.failure();
    const waits: number[] = [];
    for (let round = 0; round < 4; round++) {
      waits.push(b.msUntilProbe());
      clock.ms += b.msUntilProbe();
      expect(b.allow()).toBe(true);
      b.failure();
      expect(b.state).toBe('open');
    }
    expect(waits).toEqual([500, 1_000, 2_000, 2_000]);
    // Recovery resets the back-off.
    clock.ms += b.msUntilProbe();
    b.allow();
    b.success();
    for (let i = 0; i < 3; i++) b.failure();
    expect(b.msUntilProbe()).toBe(500);
  });
});
