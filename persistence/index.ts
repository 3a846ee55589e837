/** Public surface of the persistence layer: the store contract, its errors and its backends. */
export type * from './types.js';
export * from './errors.js';
export { patternMatches, isWildcard } from './patterns.js';
export { createMemoryStore } from './memoryStore.js';
export { createPgStore } from './pgStore.js';
export type { PgStoreOptions } from './pgStore.js';
export { createPgliteStore } from './pgliteStore.js';
export type { PgliteStoreOptions } from './pgliteStore.js';
export { createPgliteWorkerStore, pgliteWorkerOf } from './pgliteWorkerStore.js';
export type { PgliteWorkerStoreOptions } from './pgliteWorkerStore.js';
export { openStore } from './openStore.js';
export type { OpenStoreConfig } from './openStore.js';
export * from './storable.js';
