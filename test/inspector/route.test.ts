// The inspector's hash routes, in Node: which page a hash names and its filters, the one URL a
// filter set has (empty values dropped, keys sorted), old addresses that keep working
// (`#/s/<id>`, `#/cluster`, `#/nodes`), and the page size a URL may ask for.
import { describe, expect, it } from 'vitest';
import { formatInZone } from '../../inspector/src/zoned.js';
import { hashOf, pageSize, parseRoute, sessionHash } from '../../inspector/src/route.js';

describe('inspector routes', () => {
  it('parses every page with its filters; unknown hashes are the sessions page', () => {
    expect(parseRoute('')).toEqual({ page: 'sessions', params: {} });
    expect(parseRoute('#/')).toEqual({ page: 'sessions', params: {} });
    expect(parseRoute('#/events?type=invoice.*&from=billing-1&empty=')).toEqual({ page: 'events', params: { type: 'invoice.*', from: 'billing-1' } });
    expect(parseRoute('#/dead-letters?tenant=acme')).toEqual({ page: 'dead-letters', params: { tenant: 'acme' } });
    expect(parseRoute('#/schedules')).toMatchObject({ page: 'schedules' });
    expect(parseRoute('#/tenants')).toMatchObject({ page: 'tenants' });
    expect(parseRoute('#/cluster?node=node-a')).toEqual({ page: 'cluster', params: { node: 'node-a' } });
    expect(parseRoute('#/nodes')).toMatchObject({ page: 'cluster' });
    expect(parseRoute('#/no-such-page')).toMatchObject({ page: 'sessions' });
    expect(parseRoute('#/s/support%2F1')).toEqual({ page: 'session', session: 'support/1', params: {} });
    expect(parseRoute('#/s/%E0%A4%A')).toMatchObject({ page: 'sessions' }); // malformed escape
  });

  it('writes one hash per filter set, which parses back to the same route', () => {
    const h = hashOf('dead-letters', { tenant: 'acme', reason: 'handler-failed', agentId: '', since: undefined });
    expect(h).toBe('#/dead-letters?reason=handler-failed&tenant=acme');
    expect(parseRoute(h)).toEqual({ page: 'dead-letters', params: { reason: 'handler-failed', tenant: 'acme' } });
    expect(hashOf('events', { type: 'a.>' })).toBe('#/events?type=a.%3E');
    expect(parseRoute(hashOf('events', { type: 'a.>' })).params.type).toBe('a.>');
    expect(hashOf('sessions')).toBe('#/');
    expect(sessionHash('a b')).toBe('#/s/a%20b');
  });

  it('bounds the page size a URL asks for', () => {
    expect(pageSize(undefined, 25, 100)).toBe(25);
    expect(pageSize('7', 25, 100)).toBe(7);
    expect(pageSize('1000', 25, 100)).toBe(100);
    expect(pageSize('0', 25, 100)).toBe(25);
    expect(pageSize('ten', 25, 100)).toBe(25);
  });

  it("shows a cron task's next run in the task's own time zone", () => {
    const at = Date.UTC(2026, 10, 30, 0, 30); // 09:30 in Tokyo, 19:30 the day before in New York
    expect(formatInZone(at, 'Asia/Tokyo')).toBe('Mon 30 Nov, 09:30 Asia/Tokyo');
    expect(formatInZone(at, 'America/New_York')).toBe('Sun 29 Nov, 19:30 America/New_York');
    expect(formatInZone(null, 'UTC')).toBe('—');
    expect(formatInZone(at, 'Not/AZone')).toMatch(/\(local; Not\/AZone unknown here\)$/);
  });
});
