/** Public surface of the actors layer: the session statechart, its types, the agent API and errors. */
export * from './types.js';
export * from './errors.js';
export * from './sessionId.js';
export * from './defineAgent.js';
export * from './agentVersion.js';
export {
  sessionMachine, withRunner, runInputOf, durableSnapshotOf, toDurableSnapshot, snapshotContext, topState, statePath, wakesSleeper, endsWait, backoffDelay, policyOf,
} from './sessionMachine.js';
export type { SessionContext, SessionEvent, SessionInput, SessionMachine, CompletedRun, RunOutcome, SettledMessage } from './sessionMachine.js';
