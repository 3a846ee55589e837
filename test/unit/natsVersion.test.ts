import { describe, expect, it } from 'vitest';
import { ackCostGrowsWithBacklog, parseServerVersion } from '../../runtime/natsVersion.js';

describe('nats-server version checks', () => {
  it('parses x.y.z with an optional v and suffix', () => {
    expect(parseServerVersion('2.9.10')).toEqual([2, 9, 10]);
    expect(parseServerVersion('v2.10.22-beta.1')).toEqual([2, 10, 22]);
    expect(parseServerVersion('two')).toBeNull();
    expect(parseServerVersion(undefined)).toBeNull();
  });

  it('flags servers before 2.10, whose acks scan the backlog', () => {
    expect(ackCostGrowsWithBacklog('2.9.10')).toBe(true);
    expect(ackCostGrowsWithBacklog('2.9.25')).toBe(true);
    expect(ackCostGrowsWithBacklog('1.4.1')).toBe(true);
    // Compared as numbers, not text ("2.10" sorts before "2.9" as a string).
    expect(ackCostGrowsWithBacklog('2.10.0')).toBe(false);
    expect(ackCostGrowsWithBacklog('2.11.3')).toBe(false);
    expect(ackCostGrowsWithBacklog('3.0.0')).toBe(false);
    expect(ackCostGrowsWithBacklog('')).toBe(false);
  });
});
