/**
 * Owns waitpoints (human in the loop) on the runtime side: making one when a handler asks
 * (`ctx.waitFor({ waitpoint })`: an unguessable id and the JSON Schema form of its schema),
 * and settling one — completion (`completeWaitpoint`, `agentry waitpoint complete`,
 * `POST /waitpoints/<id>`), cancellation, timeout — plus the listing.
 *
 * Exactly once: a settlement is a compare-and-set in the store (pending → completed | cancelled |
 * timed-out) in the same transaction as the outbox row that carries the `waitpoint` message to
 * the session's inbox (`Nats-Msg-Id` `wp:<id>`). The row is published right after; if this node
 * dies first, the owner's outbox sweep publishes it. The session's statechart applies the message
 * only while it waits on that id, so a resend JetStream no longer de-duplicates changes nothing.
 *
 * Any node can settle any waitpoint (Postgres decides who wins); only the owner of the session
 * times one out (its scheduler fires the wait's `timeoutAt`, see `SessionHost.wakeDue`).
 *
 * Faults: a completion racing the timeout — one CAS wins, the other caller sees the outcome
 * (WAITPOINT_CLOSED, or success when its value is the one stored); a crash between the CAS and
 * the publish — the outbox row is published by a sweep; a value the schema refuses —
 * INVALID_ARGUMENT, and nothing is written.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { AgentryError, UnknownWaitpointError, WaitpointClosedError, WaitpointConflictError } from '../actors/errors.js';
import type { WaitpointOptions } from '../actors/defineAgent.js';
import type { WaitpointMessage, WaitpointSpec, WaitpointStatus } from '../actors/types.js';
import type { OutboxRecord, Store, WaitpointQuery, WaitpointRecord } from '../persistence/types.js';
import { H, INBOX_SUBJECT } from './transport.js';

/** Shape of a waitpoint id: 16 random bytes in base64url (22 characters). */
const ID = /^[A-Za-z0-9_-]{22}$/;

/** A fresh waitpoint id: 128 random bits, base64url, safe in a URL path and a NATS header. */
export function newWaitpointId(): string {
  // Never with a leading '-': a command line reads such an id as an option (1 id in 64 did).
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/** True when `id` has the shape of a waitpoint id (anything else is unknown without a query). */
export function isWaitpointId(id: unknown): id is string {
  return typeof id === 'string' && ID.test(id);
}

/**
 * The JSON Schema of a waitpoint's schema argument: a zod 4 schema through `z.toJSONSchema`, a
 * JSON Schema object as it is. Checked by compiling it, so a schema the completion could not use
 * fails in the handler that asked for it.
 */
export function toJsonSchema(schema: unknown): unknown {
  if (schema !== null && typeof schema === 'object' && '_zod' in schema) {
    return z.toJSONSchema(schema as z.ZodType, { unrepresentable: 'any' });
  }
  if (schema === true || (schema !== null && typeof schema === 'object' && !Array.isArray(schema))) {
    compile(schema); // throws on a schema zod cannot read
    return JSON.parse(JSON.stringify(schema)) as unknown;
  }
  throw new TypeError('waitpoint.schema must be a zod 4 schema or a JSON Schema object');
}

const compiled = new Map<string, z.ZodType>();
/** The validator of a JSON Schema (cached by its text: completions of one agent share a schema). */
function compile(schema: unknown): z.ZodType {
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (!v) {
    v = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
    if (compiled.size >= 1000) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, v);
  }
  return v;
}

/** Why `value` does not match `schema` (the schema's complaint), or null when it does. */
export function schemaComplaint(schema: unknown, value: unknown): { message: string; issues: unknown[] } | null {
  const r = compile(schema).safeParse(value);
  if (r.success) return null;
  const issues = r.error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String), code: i.code, message: i.message }));
  const first = issues[0];
  return { message: `${first && first.path.length ? `${first.path.join('.')}: ` : ''}${first?.message ?? 'invalid value'}`, issues };
}

/** The stored form of a handler's waitpoint options (made by `ctx.waitFor`). */
export function waitpointSpecOf(o: WaitpointOptions): WaitpointSpec {
  if (o === null || typeof o !== 'object') throw new TypeError('waitFor: waitpoint must be an object');
  const schema = toJsonSchema(o.schema);
  const hasDefault = Object.prototype.hasOwnProperty.call(o, 'default') && o.default !== undefined;
  if (hasDefault) {
    const bad = schemaComplaint(schema, o.default);
    if (bad) throw new TypeError(`waitFor: waitpoint.default does not match its schema: ${bad.message}`);
  }
  const tags = [...(o.tags ?? [])];
  for (const t of tags) if (typeof t !== 'string' || t.length === 0 || t.length > 128) throw new TypeError('waitFor: waitpoint.tags must be strings of 1-128 characters');
  return { id: newWaitpointId(), schema, hasDefault, default: hasDefault ? (JSON.parse(JSON.stringify(o.default)) as unknown) : null, tags };
}

/** The outbox row that tells the session its waitpoint was settled (`Nats-Msg-Id` `wp:<id>`). */
export function waitpointMessageRow(w: Pick<WaitpointRecord, 'id' | 'sessionId'>, status: WaitpointStatus, value: unknown, at: number): OutboxRecord {
  const body: WaitpointMessage = { id: w.id, status, value: value ?? null };
  return {
    id: `wp:${w.id}`, sessionId: w.sessionId, subject: INBOX_SUBJECT(w.sessionId),
    headers: { [H.kind]: 'waitpoint', [H.priority]: 'normal', [H.from]: `waitpoint:${status}` },
    body: JSON.stringify(body), createdAt: at,
  };
}

/** JSON text with object keys sorted: two values are the same value iff these are equal (jsonb forgets key order). */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x !== null && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : x)) ?? 'null';
}

/** What a completion answers. */
export interface CompleteResult {
  readonly id: string;
  readonly agentId: string;
  readonly status: 'completed';
  /** True when it was completed before with this value (this call changed nothing). */
  readonly duplicate: boolean;
}

/** A waitpoint as the API shows it. */
export interface WaitpointView {
  readonly id: string;
  readonly agentId: string;
  readonly agentType: string;
  readonly status: WaitpointRecord['status'];
  readonly schema: unknown;
  readonly default: unknown;
  readonly hasDefault: boolean;
  readonly tags: readonly string[];
  readonly value: unknown;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly settledAt: number | null;
}

export interface Waitpoints {
  /** Completes a pending waitpoint with `value` (validated against its schema). */
  complete(id: string, value: unknown): Promise<CompleteResult>;
  /** Cancels a pending waitpoint: its session resumes with status `cancelled`. */
  cancel(id: string): Promise<{ id: string; agentId: string; status: 'cancelled' }>;
  /** Waitpoints oldest first, with the cursor of the next page (null: last page). */
  list(q: Omit<WaitpointQuery, 'after' | 'createdBefore'> & { olderThanMs?: number; after?: string }): Promise<{ waitpoints: WaitpointView[]; next: string | null }>;
  /** Times out a waitpoint whose expiry passed (the owning node's scheduler): false when it was not pending. */
  expire(w: Pick<WaitpointRecord, 'id' | 'sessionId'> & { hasDefault: boolean; defaultValue: unknown }): Promise<'settled' | 'not-pending' | 'missing'>;
}

export interface WaitpointDeps {
  readonly store: Pick<Store, 'getWaitpoint' | 'settleWaitpoint' | 'listWaitpoints'>;
  /** Publishes settled rows now (the host's outbox); a failure leaves them to a sweep. */
  readonly publish: (rows: readonly OutboxRecord[]) => Promise<unknown>;
  readonly now: () => number;
}

/** The API view of a stored waitpoint. */
export function waitpointView(w: WaitpointRecord): WaitpointView {
  return {
    id: w.id, agentId: w.sessionId, agentType: w.agentType, status: w.status, schema: w.schema,
    default: w.defaultValue, hasDefault: w.hasDefault, tags: w.tags, value: w.value,
    createdAt: w.createdAt, expiresAt: w.expiresAt, settledAt: w.settledAt,
  };
}

/** A cursor of `listWaitpoints`: `<createdAt>.<id>`. */
function parseCursor(c: string): { createdAt: number; id: string } {
  const m = /^(\d{1,16})\.([A-Za-z0-9_-]{1,64})$/.exec(c);
  if (!m) throw new AgentryError('INVALID_ARGUMENT', 'after must be a cursor returned as next by listWaitpoints');
  return { createdAt: Number(m[1]), id: m[2]! };
}

/** The waitpoint service over a store and an outbox. */
export function createWaitpoints(deps: WaitpointDeps): Waitpoints {
  const { store, now } = deps;
  const publish = (row: OutboxRecord): void => { void deps.publish([row]).catch(() => undefined); };

  /** The answer to a completion the CAS did not win, from the row as it is. */
  const settledAnswer = (w: WaitpointRecord, value: unknown): CompleteResult => {
    if (w.status === 'completed') {
      if (canonical(w.value) === canonical(value)) return { id: w.id, agentId: w.sessionId, status: 'completed', duplicate: true };
      throw new WaitpointConflictError(w.id);
    }
    throw new WaitpointClosedError(w.id, w.status === 'pending' ? 'expired' : w.status);
  };

  return {
    async complete(id, value) {
      if (!isWaitpointId(id)) throw new UnknownWaitpointError(String(id));
      const w = await store.getWaitpoint(id);
      if (!w) throw new UnknownWaitpointError(id);
      const at = now();
      if (w.status !== 'pending' || (w.expiresAt !== null && w.expiresAt <= at)) return settledAnswer(w, value);
      const bad = schemaComplaint(w.schema, value);
      if (bad) throw new AgentryError('INVALID_ARGUMENT', `the value does not match the waitpoint's schema: ${bad.message}`, { details: { issues: bad.issues } });
      const row = waitpointMessageRow(w, 'completed', value, at);
      const r = await store.settleWaitpoint(id, 'completed', value, at, true, row);
      if (r.kind === 'missing') throw new UnknownWaitpointError(id);
      if (r.kind === 'not-pending') return settledAnswer(r.record, value);
      publish(row);
      return { id, agentId: w.sessionId, status: 'completed', duplicate: false };
    },
    async cancel(id) {
      if (!isWaitpointId(id)) throw new UnknownWaitpointError(String(id));
      const w = await store.getWaitpoint(id);
      if (!w) throw new UnknownWaitpointError(id);
      const at = now();
      const row = waitpointMessageRow(w, 'cancelled', null, at);
      const r = await store.settleWaitpoint(id, 'cancelled', null, at, true, row);
      if (r.kind === 'missing') throw new UnknownWaitpointError(id);
      if (r.kind === 'not-pending') {
        if (r.record.status === 'cancelled') return { id, agentId: w.sessionId, status: 'cancelled' }; // cancelling twice: no-op
        throw new WaitpointClosedError(id, r.record.status === 'pending' ? 'expired' : r.record.status);
      }
      publish(row);
      return { id, agentId: w.sessionId, status: 'cancelled' };
    },
    async list(q) {
      const limit = Math.max(1, Math.min(1000, q.limit ?? 100));
      const rows = await store.listWaitpoints({
        ...(q.status !== undefined ? { status: q.status } : {}), ...(q.agentType ? { agentType: q.agentType } : {}),
        ...(q.sessionId ? { sessionId: q.sessionId } : {}), ...(q.tag ? { tag: q.tag } : {}),
        ...(q.olderThanMs !== undefined ? { createdBefore: now() - q.olderThanMs } : {}),
        ...(q.after !== undefined ? { after: parseCursor(q.after) } : {}), limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { waitpoints: page.map(waitpointView), next: rows.length > limit && last ? `${last.createdAt}.${last.id}` : null };
    },
    async expire(w) {
      const at = now();
      const value = w.hasDefault ? w.defaultValue : null;
      const row = waitpointMessageRow(w, 'timed-out', value, at);
      const r = await store.settleWaitpoint(w.id, 'timed-out', value, at, false, row);
      if (r.kind === 'settled') publish(row);
      return r.kind;
    },
  };
}
