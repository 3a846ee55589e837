/** Public surface of the control plane: start it over a runtime; everything else is internal. */
export { startControlPlane } from './controlPlane.js';
export type { ControlPlane, ControlPlaneOptions } from './controlPlane.js';
export { assertTokenBeyondLoopback } from './auth.js';
