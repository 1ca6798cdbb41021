// Which DEADLINE_EXCEEDED is keygate's: an upstream given keygate's remaining budget as its
// grpc-timeout can report it spent a moment before keygate's own timer runs (a busy event loop
// reads the upstream's answer first). The caller must get one answer for one event — keygate's
// KG_ERR_UPSTREAM_TIMEOUT — while an upstream's DEADLINE_EXCEEDED long before the deadline is
// the upstream's own reason and passes on unchanged (test/integration/grpc.test.ts).
import { describe, expect, it } from 'vitest';
import { isOwnDeadline } from '../../src/forward/h2-forward.js';
import { GRPC } from '../../src/transport/grpc.js';

const deadline = 10_000;

describe('isOwnDeadline', () => {
  it("DEADLINE_EXCEEDED read at or after keygate's deadline is keygate's", () => {
    expect(isOwnDeadline('4', deadline, deadline)).toBe(true);
    expect(isOwnDeadline('4', deadline + 250, deadline)).toBe(true);
    expect(isOwnDeadline(GRPC.DEADLINE_EXCEEDED, deadline + 1, deadline)).toBe(true);
  });

  it('within the millisecond the forwarded grpc-timeout was floored by, it is still keygate\'s', () => {
    expect(isOwnDeadline('4', deadline - 1.5, deadline)).toBe(true);
  });

  it("twin: earlier, it is the upstream's own answer", () => {
    expect(isOwnDeadline('4', deadline - 3, deadline)).toBe(false);
    expect(isOwnDeadline('4', 0, deadline)).toBe(false);
  });

  it('twin: any other status, even after the deadline, is the upstream\'s', () => {
    for (const status of ['0', '1', '14', undefined, '']) expect(isOwnDeadline(status, deadline + 5, deadline)).toBe(false);
  });
});
