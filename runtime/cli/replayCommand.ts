/**
 * Owns `agentry replay`: the regression check of new agent code over stored sessions. It runs
 * offline against the store (DATABASE_URL, or the dev PGlite under AGENTRY_DATA_DIR): it reads a
 * sample of sessions of the module's agent types and replays each (runtime/replay.ts) through the
 * module's agents in this process — nothing is published, nothing is written. Exit status 1 when
 * any session differs, so CI can gate a deploy on it.
 */
import type { Command } from 'commander';
import type { AnyAgent } from '../../actors/defineAgent.js';
import type { Store } from '../../persistence/types.js';
import { loadAgentModule } from '../agentModule.js';
import { loadConfig } from '../config.js';
import { replaySession, type ReplayReport } from '../replay.js';
import { openStoreFor } from '../store.js';
import { UsageError, printResult, table } from './output.js';

/** Up to `n` ids of `type`, chosen uniformly among the first 10,000 (id order). */
async function sampleIds(store: Store, type: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let after: string | undefined; ids.length < 10_000;) {
    const page = await store.listSessions({ type, limit: 1000, ...(after !== undefined ? { after } : {}) });
    ids.push(...page.map((s) => s.id));
    if (page.length < 1000) break;
    after = page[page.length - 1]!.id;
  }
  for (let i = 0; i < Math.min(n, ids.length); i++) {
    const j = i + Math.floor(Math.random() * (ids.length - i));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  return ids.slice(0, n);
}

/** Registers `agentry replay`. */
export function registerReplayCommand(program: Command): void {
  program.command('replay')
    .description('replay stored sessions through an agents module in a sandbox and report where their states differ (offline: reads DATABASE_URL or the dev store)')
    .requiredOption('--agent-module <path>', 'module exporting the agent definitions to check (as `dev --agents`)')
    .option('--sample <n>', 'sessions per agent type, chosen at random', '20')
    .option('--type <type>', 'only this agent type (default: every type the module defines)')
    .option('--session <ids...>', 'these sessions instead of a sample')
    .option('--max-messages <n>', 'most history rows read per session (default 1000)')
    .action(async (o: { agentModule: string; sample: string; type?: string; session?: string[]; maxMessages?: string }, cmd: Command) => {
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      const sample = Number(o.sample);
      if (!Number.isSafeInteger(sample) || sample < 1) throw new UsageError('--sample must be a positive whole number');
      const maxMessages = o.maxMessages === undefined ? undefined : Number(o.maxMessages);
      if (maxMessages !== undefined && (!Number.isSafeInteger(maxMessages) || maxMessages < 1)) throw new UsageError('--max-messages must be a positive whole number');
      const { agents } = await loadAgentModule(o.agentModule);
      const byType = new Map<string, AnyAgent>(agents.map((a) => [a.type, a]));
      if (o.type !== undefined && !byType.has(o.type)) throw new UsageError(`--type ${o.type}: the module defines ${[...byType.keys()].join(', ')}`);
      const store = await openStoreFor(loadConfig({}));
      const reports: (ReplayReport | { agentId: string; error: string })[] = [];
      try {
        await store.migrate();
        const targets: [string, AnyAgent | undefined][] = [];
        if (o.session) {
          for (const id of o.session) targets.push([id, byType.get((await store.loadSession(id))?.type ?? '')]);
        } else {
          for (const type of o.type !== undefined ? [o.type] : byType.keys()) {
            for (const id of await sampleIds(store, type, sample)) targets.push([id, byType.get(type)]);
          }
        }
        for (const [id, agent] of targets) {
          if (!agent) { reports.push({ agentId: id, error: 'unknown session, or its type is not in the module' }); continue; }
          try {
            reports.push(await replaySession(store, id, agent, maxMessages !== undefined ? { maxMessages } : {}));
          } catch (e) {
            reports.push({ agentId: id, error: (e as Error).message });
          }
        }
      } finally {
        await store.close();
      }
      const differ = reports.filter((r) => 'error' in r || r.differences.length > 0).length;
      printResult({ sessions: reports.length, differ, reports }, json, [
        table(['SESSION', 'TURNS', 'COMPARED', 'DIFFERENCES', 'FIRST'], reports.map((r) => ('error' in r
          ? [r.agentId, '-', '-', 'error', r.error]
          : [r.agentId, String(r.turns), String(r.compared), String(r.differences.length),
            r.differences[0] ? `seqs ${r.differences[0].seqs.join(',')}: ${r.differences[0].paths.join(', ')}` : '']))),
        `${reports.length} session(s) replayed, ${differ} differ`,
      ].join('\n'));
      if (differ > 0) process.exitCode = 1;
    });
}
