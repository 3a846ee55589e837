/**
 * `slow-writer`: pretends to be a slow LLM call that streams tokens and honours its abort
 * signal. Send two messages quickly and the first run is aborted; one reply covers both.
 */
import { defineAgent } from '../actors/index.js';
import { textOf } from './echo.js';

/** Resolves after `ms`, or rejects as soon as `signal` aborts (what a real LLM client does). */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) { reject(new Error('aborted')); return; }
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = (): void => { clearTimeout(t); reject(new Error('aborted')); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export const slowWriter = defineAgent<{ answered: number }>({
  type: 'slow-writer',
  onMessage: 'cancel-and-merge',
  maxMergeDelayMs: 5000,
  initialState: () => ({ answered: 0 }),
  async handle(batch, ctx) {
    const prompt = batch.filter((m) => m.kind !== 'wake').map((m) => textOf(m.body)).join(' / ');
    const words = `You said: ${prompt}`.split(' ');
    for (const w of words) {
      await abortableDelay(150, ctx.signal); // one "token" every 150 ms
      ctx.stream({ token: w });
    }
    ctx.state.answered++;
    ctx.reply({ text: words.join(' '), merged: batch.length });
    return undefined;
  },
});
