/**
 * Your agents. Every `defineAgent` this module exports is registered; `npm run dev` loads this
 * file as TypeScript (no build step) and reloads it when you save.
 */
import { defineAgent } from 'agentry-runtime';
import { answer } from './model.js';

/** Text of a message body: a string as it is, `{ text }` by its text, anything else as JSON. */
function textOf(body: unknown): string {
  if (typeof body === 'string') return body;
  if (body !== null && typeof body === 'object' && typeof (body as { text?: unknown }).text === 'string') {
    return (body as { text: string }).text;
  }
  return JSON.stringify(body);
}

export const assistant = defineAgent<{ turns: number }>({
  type: 'assistant',
  // A message that arrives while the previous one is still being answered aborts that run
  // (ctx.signal fires) and the handler runs again on both messages.
  onMessage: 'cancel-and-merge',
  initialState: () => ({ turns: 0 }),   // persisted with the session
  async handle(batch, ctx) {
    const question = batch.filter((m) => m.kind === 'message').map((m) => textOf(m.body)).join('\n');
    const text = await answer(question, ctx.signal);
    ctx.state.turns++;
    ctx.reply({ text, turn: ctx.state.turns });   // published once the run is committed
    return undefined;                             // or ctx.sleep({ ... }) / ctx.waitFor({ ... })
  },
});
