import { describe, expect, it } from 'vitest';
import { ackCostGrowsWithBacklog, clusterLosesAckedMessages, natsServerWarnings, parseServerVersion } from '../../runtime/natsVersion.js';

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

  it('flags servers before 2.10 as unsafe in a cluster (known to lose acknowledged work-queue messages)', () => {
    expect(clusterLosesAckedMessages('2.9.10')).toBe(true);
    expect(clusterLosesAckedMessages('v2.9.25')).toBe(true);
    expect(clusterLosesAckedMessages('2.2.0')).toBe(true);
    expect(clusterLosesAckedMessages('1.4.1')).toBe(true);
    // Compared as numbers: "2.10" is after "2.9".
    expect(clusterLosesAckedMessages('2.10.0')).toBe(false);
    expect(clusterLosesAckedMessages('2.10.29')).toBe(false);
    expect(clusterLosesAckedMessages('2.11.8')).toBe(false);
    expect(clusterLosesAckedMessages('2.12.0-RC.1')).toBe(false);
    expect(clusterLosesAckedMessages('3.0.0')).toBe(false);
    // Nothing is claimed about a version that cannot be read.
    expect(clusterLosesAckedMessages('')).toBe(false);
    expect(clusterLosesAckedMessages(undefined)).toBe(false);
    expect(clusterLosesAckedMessages('nightly')).toBe(false);
  });

  it('warns of the cluster faults only for a cluster (natsReplicas > 1, or a server naming its cluster) before 2.10', () => {
    const codes = (info: { version?: string; cluster?: string } | undefined, replicas: number): string[] => natsServerWarnings(info, replicas).map((w) => w.code);
    // A single server: nothing, whatever its version.
    expect(codes({ version: '2.9.10' }, 1)).toEqual([]);
    // Replicated streams asked for, or a clustered server even with natsReplicas 1.
    expect(codes({ version: '2.9.10' }, 3)).toEqual(['NATS_SERVER_CLUSTER_FAULTS']);
    expect(codes({ version: '2.9.10', cluster: 'c1' }, 1)).toEqual(['NATS_SERVER_CLUSTER_FAULTS']);
    // Fixed servers, and servers whose version cannot be read: nothing.
    expect(codes({ version: '2.10.0', cluster: 'c1' }, 3)).toEqual([]);
    expect(codes({ version: '2.11.8', cluster: 'c1' }, 3)).toEqual([]);
    expect(codes({ cluster: 'c1' }, 3)).toEqual([]);
    expect(codes(undefined, 3)).toEqual([]);
    const [w] = natsServerWarnings({ version: '2.9.10', cluster: 'c1' }, 3);
    expect(w!.serverVersion).toBe('2.9.10');
    // The message names the version, the upstream bugs and the fix.
    expect(w!.message).toContain('2.9.10');
    expect(w!.message).toContain('#5612');
    expect(w!.message).toContain('2.10 or later');
  });
});
