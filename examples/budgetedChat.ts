/**
 * `budgeted-chat`: a chat agent that reserves budget before each (fake) LLM call and settles
 * what the call really used. Each session may spend 2,000 tokens a day (then it pauses until
 * someone raises the limit) and 0.05 of cost in its lifetime (then a person is asked); the
 * runtime meters its turns and handler time itself. Try it:
 *
 *   agentry send budgeted-1 "hello"                       # a few times: watch agentry budget get --agent budgeted-1
 *   agentry budget set --agent budgeted-1 --limit tokens:10000:day:pause   # raise it: a paused session resumes
 */
import { defineAgent } from '../actors/index.js';

/** A stand-in for an LLM client: answers after a short delay and says what it used. */
async function fakeLlm(prompt: string, signal: AbortSignal): Promise<{ text: string; tokensIn: number; tokensOut: number; cost: string }> {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, 50);
    signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('aborted')); }, { once: true });
  });
  const tokensIn = Math.ceil(prompt.length / 4) + 200;
  const tokensOut = 150;
  // $3 per million tokens in, $15 per million out: a decimal string, never a float.
  const micros = tokensIn * 3 + tokensOut * 15;
  return { text: `(fake) you said: ${prompt}`, tokensIn, tokensOut, cost: `0.${String(micros).padStart(6, '0')}` };
}

export const budgetedChat = defineAgent({
  type: 'budgeted-chat',
  onMessage: 'cancel-and-merge',
  budget: {
    limits: [
      { metric: 'tokens', max: 2000, window: 'day', policy: 'pause' },
      { metric: 'cost', max: '0.05', policy: 'ask' },
      { metric: 'turns', max: 500, window: '24h', policy: 'warn' },
    ],
  },
  initialState: () => ({ turns: 0 }),
  async handle(batch, ctx) {
    const prompt = batch.map((m) => (typeof m.body === 'string' ? m.body : JSON.stringify(m.body))).join('\n');
    // Reserve the most this call can use. Over a limit this throws BUDGET_EXCEEDED and the runtime
    // applies the limit's policy (here: pause or ask); the turn's messages are kept, not lost.
    const reservation = await ctx.budget.reserve({ tokens: 1000, cost: '0.02' });
    const out = await fakeLlm(prompt, ctx.signal);
    // Settle with what was used: the reservation's amount is replaced (a re-run of this turn after
    // a crash finds the same reservation and settles it again; nothing is counted twice).
    await ctx.budget.settle({ tokensIn: out.tokensIn, tokensOut: out.tokensOut, cost: out.cost }, reservation);
    ctx.state.turns++;
    ctx.reply({ text: out.text });
    return undefined;
  },
});
