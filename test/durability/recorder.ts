// The agent most durability tests run: it records each message's `i` in its user state, so a
// message applied twice, lost or out of order shows in the committed `seen`.
import { defineAgent } from '../../actors/index.js';
import type { Store } from '../../persistence/types.js';

/** A `queue` recorder of message bodies `{ i }` (type `recorder`). */
export const recorder = defineAgent<{ seen: number[] }>({
  type: 'recorder',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  handle(batch, ctx) {
    for (const m of batch) ctx.state.seen.push((m.body as { i: number }).i);
    return undefined;
  },
});

/** What the session's committed snapshot has recorded (empty when it has none). */
export async function committedSeen(store: Store, sid: string): Promise<number[]> {
  return ((await store.loadSession(sid))?.snapshot as { context: { userState: { seen: number[] } } } | undefined)?.context.userState.seen ?? [];
}
