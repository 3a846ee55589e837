// The dev log format (runtime/devLog.ts): one readable line per record, the session first, the
// error's message on the line and its stack below, and the runtime's repeated bookkeeping lines
// folded — but never a warning, an error or a session's own line.
import { describe, expect, it } from 'vitest';
import { createDevLogger } from '../../runtime/logger.js';
import { devLogStream, formatDevLine } from '../../runtime/devLog.js';

/** A sink that keeps what was written. */
function sink(): { write(t: string): void; text: () => string; lines: () => string[] } {
  let buf = '';
  return { write: (t) => { buf += t; }, text: () => buf, lines: () => buf.split('\n').filter(Boolean) };
}

const TIME = /^\d\d:\d\d:\d\d\.\d{3} /;

describe('dev log format', () => {
  it('prints time, level, session, message and fields on one line; no JSON', () => {
    const line = formatDevLine({ level: 40, time: '2026-01-02T03:04:05.678Z', node: 'vm', sessionId: 'demo', agentType: 'echo', attempt: 2, msg: 'handler failed', note: 'two words' });
    expect(line).toMatch(TIME);
    expect(line.slice(13)).toBe('WARN  demo handler failed agentType=echo attempt=2 note="two words"\n');
  });

  it('shows an error\'s message on its line and the stack indented below', () => {
    const out = sink();
    const log = createDevLogger('info', out);
    const err = new Error('the model timed out');
    log.child({ sessionId: 's-1', runId: 3 }).warn({ err }, 'handler failed');
    const [first, ...rest] = out.lines();
    expect(first).toMatch(TIME);
    expect(first).toContain('WARN  s-1 handler failed err="the model timed out" runId=3');
    expect(rest.length).toBeGreaterThan(0);
    for (const l of rest) expect(l).toMatch(/^ {4}at /);
    expect(rest.join('\n')).toContain('devLog.test.ts');
  });

  it('folds a run of identical runtime info lines into one line and a count, flushed by the next message', () => {
    const out = sink();
    const log = createDevLogger('info', out, { foldMs: 60_000 });
    for (let p = 0; p < 64; p++) log.info({ partition: p }, 'partition acquired');
    log.info('runtime started');
    expect(out.lines().map((l) => l.replace(TIME, '').trim())).toEqual([
      'INFO  partition acquired partition=0',
      '… ×63 more "partition acquired"',
      'INFO  runtime started',
    ]);
  });

  it('never folds warnings, errors or a session\'s lines', () => {
    const out = sink();
    const log = createDevLogger('info', out, { foldMs: 60_000 });
    for (let i = 0; i < 3; i++) log.warn({ partition: i }, 'lease late');
    for (let i = 0; i < 3; i++) log.error({ partition: i }, 'commit failed');
    for (let i = 0; i < 3; i++) log.child({ sessionId: `s${i}` }).info('thinking');
    expect(out.lines()).toHaveLength(9);
    expect(out.text()).not.toContain('more');
  });

  it('flushes a folded count after a quiet period', async () => {
    const out = sink();
    const log = createDevLogger('info', out, { foldMs: 20 });
    log.info('tick'); log.info('tick'); log.info('tick');
    await new Promise((r) => setTimeout(r, 200));
    expect(out.lines().at(-1)).toContain('… ×2 more "tick"');
  });

  it('passes a line that is not JSON through unchanged', () => {
    const out = sink();
    const stream = devLogStream(out);
    stream.write('plain text\n');
    stream.write('{"level":30,"msg":"after"}\n');
    expect(out.lines()[0]).toBe('plain text');
    expect(out.lines()[1]).toContain('INFO  after');
  });
});
