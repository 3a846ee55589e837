/**
 * Owns the SQL of the budget ledger (migration 0009): one function per query. A reservation is
 * one transaction holding an advisory lock per scope it is checked against (session, then
 * tenant: always that order), so two sessions of a tenant reserving at once cannot both pass a
 * limit that only one fits under. Sums are read as text (numeric, bigint) and compared exactly.
 */
import {
  breachesOf, decidingBreach, windowStartsOf,
  type BudgetAmounts, type BudgetBreach, type BudgetEntry, type BudgetHeldSession, type BudgetLimitSpec, type BudgetMetric,
  type BudgetReserveOutcome, type BudgetReserveRequest, type BudgetScope, type BudgetUsage,
} from './budget.js';
import type { Queryable, SqlDb } from './sqlDb.js';

type Int8 = string | number;
interface UsageRow {
  start: Int8; open: Int8;
  tokens: string; tokens_in: string; tokens_out: string; cost: string; tool_calls: string; wall_ms: string; turns: string;
}

function toUsage(r: UsageRow): BudgetUsage {
  const totals: Record<BudgetMetric, string> = {
    tokens: String(BigInt(r.tokens) + BigInt(r.tokens_in) + BigInt(r.tokens_out)),
    tokensIn: r.tokens_in, tokensOut: r.tokens_out, cost: r.cost, toolCalls: r.tool_calls, wallMs: r.wall_ms, turns: r.turns,
  };
  return { windowStart: Number(r.start), totals, open: Number(r.open) };
}

/** Sums of a session's or a tenant's ledger rows from each of `starts` on. */
export async function selectBudgetUsage(q: Queryable, scope: 'session' | 'tenant', key: string, starts: readonly number[]): Promise<BudgetUsage[]> {
  if (starts.length === 0) return [];
  const col = scope === 'session' ? 'session_id' : 'tenant';
  const { rows } = await q.query<UsageRow>(
    `SELECT w.start::text AS start, count(l.id) FILTER (WHERE l.state = 'reserved')::text AS open,
            coalesce(sum(l.tokens), 0)::text AS tokens, coalesce(sum(l.tokens_in), 0)::text AS tokens_in,
            coalesce(sum(l.tokens_out), 0)::text AS tokens_out, coalesce(sum(l.cost), 0)::text AS cost,
            coalesce(sum(l.tool_calls), 0)::text AS tool_calls, coalesce(sum(l.wall_ms), 0)::text AS wall_ms,
            coalesce(sum(l.turns), 0)::text AS turns
     FROM unnest($2::bigint[]) AS w(start)
     LEFT JOIN budget_ledger l ON l.${col} = $1::text AND l.at >= w.start
     GROUP BY w.start`,
    [key, starts.map(String)],
  );
  return rows.map(toUsage);
}

const amountParams = (a: BudgetAmounts): unknown[] => [
  a.tokens ?? 0, a.tokensIn ?? 0, a.tokensOut ?? 0, a.cost ?? '0', a.toolCalls ?? 0, a.wallMs ?? 0, a.turns ?? 0,
];

/** Inserts a ledger row; false when its id exists (nothing changed). */
export async function insertBudgetEntry(q: Queryable, e: BudgetEntry): Promise<boolean> {
  const { rows } = await q.query<{ id: string }>(
    `INSERT INTO budget_ledger (id, session_id, tenant, at, state, tokens, tokens_in, tokens_out, cost, tool_calls, wall_ms, turns, settled_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10, $11, $12, CASE WHEN $5 = 'reserved' THEN NULL ELSE $4::bigint END)
     ON CONFLICT (id) DO NOTHING RETURNING id`,
    [e.id, e.sessionId, e.tenant, e.at, e.state, ...amountParams(e.amounts)],
  );
  return rows.length > 0;
}

/** Writes metered or directly recorded rows; a row whose id exists takes the new amounts (a re-run). */
export async function upsertBudgetEntries(q: Queryable, entries: readonly BudgetEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await q.query(
    `INSERT INTO budget_ledger (id, session_id, tenant, at, state, tokens, tokens_in, tokens_out, cost, tool_calls, wall_ms, turns, settled_at)
     SELECT t.id, t.session_id, t.tenant, t.at, t.state, t.tokens, t.tokens_in, t.tokens_out, t.cost, t.tool_calls, t.wall_ms, t.turns, t.at
     FROM jsonb_to_recordset($1::jsonb) AS t(id text, session_id text, tenant text, at bigint, state text, tokens bigint, tokens_in bigint,
       tokens_out bigint, cost numeric, tool_calls bigint, wall_ms bigint, turns bigint)
     ON CONFLICT (id) DO UPDATE SET tokens = EXCLUDED.tokens, tokens_in = EXCLUDED.tokens_in, tokens_out = EXCLUDED.tokens_out,
       cost = EXCLUDED.cost, tool_calls = EXCLUDED.tool_calls, wall_ms = EXCLUDED.wall_ms, turns = EXCLUDED.turns,
       state = EXCLUDED.state, settled_at = EXCLUDED.settled_at`,
    [JSON.stringify(entries.map((e) => {
      const [tokens, tokensIn, tokensOut, cost, toolCalls, wallMs, turns] = amountParams(e.amounts);
      return { id: e.id, session_id: e.sessionId, tenant: e.tenant, at: e.at, state: e.state, tokens, tokens_in: tokensIn, tokens_out: tokensOut, cost, tool_calls: toolCalls, wall_ms: wallMs, turns };
    }))],
  );
}

/** Settles a reservation with its actual amounts (again: the newer amounts win); false when there is none. */
export async function updateBudgetSettled(q: Queryable, id: string, a: BudgetAmounts, at: number): Promise<boolean> {
  const { rows } = await q.query<{ id: string }>(
    `UPDATE budget_ledger SET state = 'settled', tokens = $2, tokens_in = $3, tokens_out = $4, cost = $5::numeric,
       tool_calls = $6, settled_at = $7
     WHERE id = $1 AND state IN ('reserved', 'settled') RETURNING id`,
    [id, ...amountParams(a).slice(0, 5), at],
  );
  return rows.length > 0;
}

/**
 * One reservation: locks its scopes, returns `reused` when the id exists, else checks every
 * limit against the scopes' usage and writes the row only when no blocking limit breaks.
 */
export async function reserveBudget(db: SqlDb, r: BudgetReserveRequest): Promise<BudgetReserveOutcome> {
  return db.transaction(async (tx) => {
    const keys = r.checks.map((c) => `agentry-budget:${c.scope}:${c.key}`);
    for (const k of keys) await tx.query('SELECT pg_advisory_xact_lock(hashtext($1::text))', [k]);
    const { rows } = await tx.query<{ id: string }>('SELECT id FROM budget_ledger WHERE id = $1', [r.entry.id]);
    if (rows.length > 0) return { kind: 'reused', warnings: [] };
    const found: BudgetBreach[] = [];
    for (const c of r.checks) {
      if (c.limits.length === 0) continue;
      const usage = await selectBudgetUsage(tx, c.scope, c.key, windowStartsOf(c.limits, r.now));
      found.push(...breachesOf(c, usage, r.entry.amounts, r.now));
    }
    const warnings = found.filter((b) => b.limit.policy === 'warn');
    if (decidingBreach(found)) return { kind: 'exceeded', breaches: found.filter((b) => b.limit.policy !== 'warn'), warnings };
    await insertBudgetEntry(tx, r.entry);
    return { kind: 'reserved', warnings };
  });
}

/** Every stored limit set (a small table: the runtime caches it). */
export async function selectBudgetLimits(q: Queryable): Promise<{ scope: BudgetScope; key: string; limits: BudgetLimitSpec[]; updatedAt: number }[]> {
  const { rows } = await q.query<{ scope: BudgetScope; key: string; limits: BudgetLimitSpec[]; updated_at: Int8 }>(
    'SELECT scope, key, limits, updated_at FROM budget_limits ORDER BY scope, key',
  );
  return rows.map((r) => ({ scope: r.scope, key: r.key, limits: r.limits, updatedAt: Number(r.updated_at) }));
}

/** Replaces one scope's limits; null removes them. */
export async function upsertBudgetLimits(q: Queryable, scope: BudgetScope, key: string, limits: readonly BudgetLimitSpec[] | null, at: number): Promise<void> {
  if (limits === null) {
    await q.query('DELETE FROM budget_limits WHERE scope = $1 AND key = $2', [scope, key]);
    return;
  }
  await q.query(
    `INSERT INTO budget_limits (scope, key, limits, updated_at) VALUES ($1, $2, $3::jsonb, $4)
     ON CONFLICT (scope, key) DO UPDATE SET limits = EXCLUDED.limits, updated_at = EXCLUDED.updated_at`,
    [scope, key, JSON.stringify(limits), at],
  );
}

/** Records that a warning went out; false when it had before (publish it once). */
export async function insertBudgetWarning(q: Queryable, key: string, at: number): Promise<boolean> {
  const { rows } = await q.query<{ key: string }>('INSERT INTO budget_warnings (key, at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING key', [key, at]);
  return rows.length > 0;
}

/** Sessions held by a budget breach (a pause's sleep, an ask's waitpoint), of one session, tenant or type. */
export async function selectBudgetHeld(q: Queryable, f: { sessionId?: string; tenant?: string; type?: string }): Promise<BudgetHeldSession[]> {
  const { rows } = await q.query<{ id: string; status: 'sleeping' | 'waiting'; waitpoint_id: string | null }>(
    `SELECT id, status, snapshot #>> '{context,wait,waitpoint,id}' AS waitpoint_id FROM sessions
     WHERE ((status = 'sleeping' AND snapshot #> '{context,wake,budget}' IS NOT NULL)
         OR (status = 'waiting' AND snapshot #>> '{context,wait,waitpoint,id}' LIKE 'budget-%'))
       AND ($1::text IS NULL OR id = $1::text) AND ($2::text IS NULL OR tenant = $2::text) AND ($3::text IS NULL OR type = $3::text)
     ORDER BY id LIMIT 10000`,
    [f.sessionId ?? null, f.tenant ?? null, f.type ?? null],
  );
  return rows.map((r) => ({ id: r.id, status: r.status, waitpointId: r.waitpoint_id }));
}

/** Spend per tenant over a window (for /metrics and the inspector's tenant summary), largest cost first. */
export async function selectTenantSpend(q: Queryable, since: number, limit: number): Promise<{ tenant: string; totals: Record<BudgetMetric, string> }[]> {
  const { rows } = await q.query<UsageRow & { tenant: string }>(
    `SELECT tenant, 0 AS start, count(*) FILTER (WHERE state = 'reserved')::text AS open,
            sum(tokens)::text AS tokens, sum(tokens_in)::text AS tokens_in, sum(tokens_out)::text AS tokens_out, sum(cost)::text AS cost,
            sum(tool_calls)::text AS tool_calls, sum(wall_ms)::text AS wall_ms, sum(turns)::text AS turns
     FROM budget_ledger WHERE tenant IS NOT NULL AND at >= $1 GROUP BY tenant ORDER BY sum(cost) DESC, sum(tokens_in + tokens_out + tokens) DESC LIMIT $2`,
    [since, limit],
  );
  return rows.map((r) => ({ tenant: r.tenant, totals: toUsage(r).totals }));
}


/** Id of a session's folded ledger row (`.` is never in a session id, so never a reservation's). */
export const budgetRollupId = (sessionId: string): string => `.rollup:${sessionId}`;

/**
 * Folds up to `max` closed ledger rows (settled, metered) older than `before` into one row per
 * session (`budgetRollupId`, `at` 0: counted in the lifetime window only), in one statement: the
 * rows are deleted and their sums added to the rollup together, and rows another node is folding
 * at the same moment are skipped (SKIP LOCKED), so nothing is counted twice or lost. Returns how
 * many rows were folded.
 */
export async function compactBudgetLedger(q: Queryable, before: number, max: number): Promise<number> {
  const { rows } = await q.query<{ n: string }>(
    `WITH picked AS (
       SELECT id FROM budget_ledger WHERE state <> 'reserved' AND at > 0 AND at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED
     ), moved AS (
       DELETE FROM budget_ledger l USING picked WHERE l.id = picked.id
       RETURNING l.session_id, l.tenant, l.tokens, l.tokens_in, l.tokens_out, l.cost, l.tool_calls, l.wall_ms, l.turns
     ), folded AS (
       INSERT INTO budget_ledger (id, session_id, tenant, at, state, tokens, tokens_in, tokens_out, cost, tool_calls, wall_ms, turns, settled_at)
       SELECT '.rollup:' || session_id, session_id, max(tenant), 0, 'settled', sum(tokens), sum(tokens_in), sum(tokens_out), sum(cost),
              sum(tool_calls), sum(wall_ms), sum(turns), $1::bigint
       FROM moved GROUP BY session_id
       ON CONFLICT (id) DO UPDATE SET
         tokens = budget_ledger.tokens + EXCLUDED.tokens, tokens_in = budget_ledger.tokens_in + EXCLUDED.tokens_in,
         tokens_out = budget_ledger.tokens_out + EXCLUDED.tokens_out, cost = budget_ledger.cost + EXCLUDED.cost,
         tool_calls = budget_ledger.tool_calls + EXCLUDED.tool_calls, wall_ms = budget_ledger.wall_ms + EXCLUDED.wall_ms,
         turns = budget_ledger.turns + EXCLUDED.turns, settled_at = EXCLUDED.settled_at
       RETURNING 1
     )
     SELECT (SELECT count(*) FROM moved)::text AS n`,
    [before, max],
  );
  return Number(rows[0]?.n ?? 0);
}
