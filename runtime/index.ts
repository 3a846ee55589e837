/** Public surface of the runtime: create a node, configure it, and the agent API re-exported for convenience. */
export { createRuntime } from './runtime.js';
export type { Runtime, RuntimeOptions, SendOptions, SleepAgentOptions, Readiness, StopReport, TaskInfo, NodeInfo, PartitionInfo } from './runtime.js';
export { loadConfig } from './config.js';
export { startControlPlane } from './http/index.js';
export type { ControlPlane, ControlPlaneOptions } from './http/index.js';
export type { RuntimeConfig, RuntimeConfigInput } from './config.js';
export { partitionOf } from './partition.js';
export type { SessionView, HostListener } from './host/sessionHost.js';
export type { Clock } from './clock.js';
export type { ClockStatus } from './storeClock.js';
export * from '../actors/index.js';
