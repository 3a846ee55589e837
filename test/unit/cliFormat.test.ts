// Small CLI helpers (issue 13, item 7): the API address people paste, and table cells that say
// when they were cut.
import { describe, expect, it } from 'vitest';
import { apiUrl, cell } from '../../runtime/cli/apiCommands.js';

describe('apiUrl', () => {
  it('turns the http address of the UI into the WebSocket address of the API', () => {
    expect(apiUrl('http://127.0.0.1:7070')).toBe('ws://127.0.0.1:7070/rpc');
    expect(apiUrl('http://127.0.0.1:7070/')).toBe('ws://127.0.0.1:7070/rpc');
    expect(apiUrl('https://agents.example.test')).toBe('wss://agents.example.test/rpc');
  });

  it('keeps WebSocket addresses and explicit paths as given', () => {
    expect(apiUrl('ws://127.0.0.1:7070/rpc')).toBe('ws://127.0.0.1:7070/rpc');
    expect(apiUrl('http://127.0.0.1:7070/agentry/rpc')).toBe('ws://127.0.0.1:7070/agentry/rpc');
  });

  it('refuses what is not a URL as a usage error', () => {
    expect(() => apiUrl('127.0.0.1 7070')).toThrow(/is not a URL/);
  });
});

describe('cell', () => {
  it('cuts long text with an ellipsis and leaves short text alone', () => {
    expect(cell('short', 60)).toBe('short');
    const cut = cell('x'.repeat(100), 60);
    expect(cut).toHaveLength(60);
    expect(cut.endsWith('…')).toBe(true);
  });
});
