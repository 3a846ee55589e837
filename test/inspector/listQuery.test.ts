// Issue 18: the sessions list's query in the URL and as listAgents params (pure functions; the
// list itself is proven in Chromium by list.test.ts).
import { describe, expect, it } from 'vitest';
import { DEFAULT_QUERY, hashOf, listParamsOf, queryFromHash, type ListQuery } from '../../inspector/src/listQuery.js';

describe('sessions list query', () => {
  it('round-trips through the location hash, leaving defaults out', () => {
    expect(hashOf(DEFAULT_QUERY)).toBe('#/');
    expect(queryFromHash('#/')).toEqual(DEFAULT_QUERY);
    expect(queryFromHash('')).toEqual(DEFAULT_QUERY);
    const q: ListQuery = { states: ['sleeping', 'waiting'], type: 'support', tenant: 'acme', tag: 'team:eu', q: 'a b&c=%', active: '1h', sort: 'agentId', desc: false };
    expect(hashOf(q)).toBe('#/?state=sleeping%2Cwaiting&type=support&tenant=acme&tag=team%3Aeu&q=a+b%26c%3D%25&active=1h&sort=agentId&order=asc');
    expect(queryFromHash(hashOf(q))).toEqual(q);
    expect(queryFromHash('#/?sort=updatedAt&order=asc')).toEqual({ ...DEFAULT_QUERY, desc: false });
    expect(hashOf({ ...DEFAULT_QUERY, desc: false })).toBe('#/?sort=updatedAt&order=asc');
    expect(queryFromHash('#/?tag=vip')).toEqual({ ...DEFAULT_QUERY, tag: 'vip' });
    expect(hashOf({ ...DEFAULT_QUERY, tag: 'vip' })).toBe('#/?tag=vip');
  });

  it('ignores unknown states, sorts and windows in a hand-edited URL, and orders states one way', () => {
    expect(queryFromHash('#/?state=dozing,stopped,idle&sort=wakeAt&active=3y')).toEqual({ ...DEFAULT_QUERY, states: ['idle', 'stopped'] });
    expect(queryFromHash('#/?sort=type')).toEqual({ ...DEFAULT_QUERY, sort: 'type', desc: false });
  });

  it('becomes listAgents params: state set, trimmed prefix, type, tenant, tag, activity window, sort and order', () => {
    expect(listParamsOf(DEFAULT_QUERY, 0)).toEqual({ sort: 'updatedAt', order: 'desc' });
    expect(listParamsOf({ states: ['idle'], type: ' echo ', tenant: 'acme', tag: ' vip ', q: ' sup ', active: '5m', sort: 'state', desc: true }, 1_000_000))
      .toEqual({ state: ['idle'], type: 'echo', tenant: 'acme', tag: 'vip', idPrefix: 'sup', updatedAfter: 700_000, sort: 'state', order: 'desc' });
  });
});
