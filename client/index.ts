/**
 * Public surface of the client layer (`agentry-runtime/client`): the typed WebSocket JSON-RPC client,
 * its errors, and the protocol schemas it shares with the server. No Node-only imports.
 */
export { AgentryClient, createClient } from './createClient.js';
export type { ClientOptions, Gap, SubscribeOptions, Subscription } from './createClient.js';
export { ConnectionError, RpcError } from './errors.js';
export type { ConnectionErrorType } from './errors.js';
export {
  ALIAS_PREFIX, METHOD_NAMES, PROTOCOL_ERRORS, PROTOCOL_VERSION, SUBSCRIPTION_KINDS, methods, notificationSchema,
} from './protocol.js';
export type {
  EventData, MethodName, MethodSpec, Notification, OutputData, ParamsOf, ResultOf, StateChange, SubscriptionKind,
} from './protocol.js';
