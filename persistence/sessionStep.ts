/**
 * Owns how a store answers `getSessionStep` from what it read: the step, the step before it and
 * the newest recorded user states at or before the step (newest first). The same rules on every
 * backend: the user state after a step is the newest recorded at or before it; after the
 * previous step, the newest recorded at or before that one.
 */
import type { SessionStep, TransitionRecord } from './types.js';

type Recorded = { readonly value: unknown; readonly transitionId: number };

/** A `SessionStep` from a store's rows; `userStates` newest first, all at or before `transition`. */
export function stepOf(
  transition: TransitionRecord, frame: unknown,
  previous: { readonly transition: TransitionRecord; readonly frame: unknown } | null,
  userStates: readonly Recorded[],
): SessionStep {
  const now = userStates[0];
  const prevId = previous?.transition.id;
  const before = prevId === undefined ? undefined : userStates.find((u) => u.transitionId <= prevId);
  return {
    transition, frame, previous,
    ...(now ? { userState: now } : {}),
    ...(before ? { previousUserState: before } : {}),
  };
}
