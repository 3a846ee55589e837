// The agent and the drive that the time-travel tests share (test/control/sessionAt.test.ts over
// JSON-RPC, test/inspector/timeTravel.test.ts in a browser): a session that goes
// idle → active → idle (a note), → sleeping (a nap, woken by wakeAgent; a note sent meanwhile is
// deferred), → waiting (on a waitpoint, completed) → idle, with replies along the way. The drive
// returns what each step must show, so both tests assert the same facts.
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import { publish, waitFor } from '../helpers.js';

export interface TravelState { notes: string[] }

/** Keeps notes; `nap` sleeps an hour (wakes on event `bell` or high mail), `ask` waits on a waitpoint. */
export const traveler = defineAgent<TravelState>({
  type: 'traveler',
  onMessage: 'queue',
  initialState: () => ({ notes: [] }),
  handle(batch, ctx) {
    let next;
    for (const m of batch) {
      if (m.kind === 'wake') { ctx.state.notes.push('woke'); continue; }
      if (m.kind === 'waitpoint') { ctx.state.notes.push(`answer:${JSON.stringify((m.body as { value?: unknown }).value)}`); ctx.reply({ text: 'thanks' }); continue; }
      const b = m.body as { cmd?: string; text?: string };
      if (b.cmd === 'note') { ctx.state.notes.push(String(b.text)); ctx.reply({ text: `noted ${b.text}` }); }
      if (b.cmd === 'nap') { ctx.state.notes.push('nap'); next = ctx.sleep({ durationMs: 3_600_000, wakeEvents: ['bell'], wakeOnMailPriority: 'high' }); }
      if (b.cmd === 'ask') { ctx.state.notes.push('ask'); next = ctx.waitFor({ waitpoint: { schema: { type: 'object' }, timeoutMs: 3_600_000, tags: ['travel'] } }); }
    }
    return next;
  },
});

/** What the drive left: the seqs it sent and the waitpoint it completed. */
export interface Drive {
  readonly seqs: { readonly a: number; readonly nap: number; readonly b: number; readonly ask: number };
  readonly waitpointId: string;
}

const notesOf = async (rt: Runtime, sid: string): Promise<string[]> => ((await rt.getAgent(sid)).userState as TravelState).notes;

/** Drives `sid` (created here, type traveler) through every state; resolves when it is idle again. */
export async function driveTraveler(rt: Runtime, nc: NatsConnection, sid: string): Promise<Drive> {
  await rt.createAgent(sid, 'traveler');
  const a = await publish(nc, sid, { cmd: 'note', text: 'a' });
  await waitFor(async () => (await notesOf(rt, sid)).includes('a'), 'note a applied');
  const nap = await publish(nc, sid, { cmd: 'nap' });
  await waitFor(async () => (await rt.getAgent(sid)).state === 'sleeping', 'asleep');
  const b = await publish(nc, sid, { cmd: 'note', text: 'b' });
  await waitFor(async () => (await rt.getAgent(sid)).mailbox.deferred.some((d) => d.seq === b), 'b deferred');
  await rt.wakeAgent(sid);
  await waitFor(async () => (await notesOf(rt, sid)).includes('b'), 'woke and noted b');
  const ask = await publish(nc, sid, { cmd: 'ask' });
  const waiting = await waitFor(async () => { const v = await rt.getAgent(sid); return v.state === 'waiting' ? v : null; }, 'waiting');
  const waitpointId = waiting.wait!.waitpoint!.id;
  // The live view shows `waiting` as the wait starts; the waitpoint exists once its commit lands.
  await waitFor(async () => { try { return (await rt.waitpoints.complete(waitpointId, { ok: true })) ?? true; } catch { return null; } }, 'waitpoint completed');
  await waitFor(async () => (await notesOf(rt, sid)).some((n) => n.startsWith('answer:')) && (await rt.getAgent(sid)).state === 'idle', 'answered, idle');
  // The live view runs ahead of the store: wait for the last turn's commit (its steps are read from there).
  await waitFor(async () => {
    const steps = await rt.getTransitions(sid, { limit: 1000 });
    const i = steps.findIndex((t) => t.to === 'waiting');
    return i >= 0 && steps.slice(i + 1).some((t) => t.to === 'idle');
  }, 'the answered turn committed');
  return { seqs: { a, nap, b, ask }, waitpointId };
}
