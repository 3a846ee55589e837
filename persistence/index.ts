/** Public surface of the persistence layer: the store contract, its errors and its backends. */
export type * from './types.js';
export * from './errors.js';
export { createMemoryStore } from './memoryStore.js';
