/**
 * `echo`: replies with what it received. A merged batch (cancel-and-merge) is answered once,
 * with the messages joined, which makes merging visible from the outside.
 */
import { defineAgent } from '../actors/index.js';

/** Text of a message body: strings as they are, `{ text }` objects by their text, anything else as JSON. */
export function textOf(body: unknown): string {
  if (typeof body === 'string') return body;
  if (body !== null && typeof body === 'object' && typeof (body as { text?: unknown }).text === 'string') return (body as { text: string }).text;
  return JSON.stringify(body);
}

export const echo = defineAgent<{ turns: number }>({
  type: 'echo',
  onMessage: 'cancel-and-merge',
  initialState: () => ({ turns: 0 }),
  handle(batch, ctx) {
    ctx.state.turns++;
    const texts = batch.filter((m) => m.kind !== 'wake').map((m) => textOf(m.body));
    ctx.reply({ text: texts.join('\n'), merged: batch.length, turn: ctx.state.turns, seqs: batch.map((m) => m.seq) });
    return undefined;
  },
});
