/**
 * Owns `agentry migrate [--dry-run] --agents <module>`: runs the agents' snapshot migrations over
 * every stored session (runtime/snapshotMigrator.ts), straight against the store the environment
 * names (DATABASE_URL / AGENTRY_DB_SCHEMA, else PGlite under AGENTRY_DATA_DIR), in pages, with
 * progress on stderr and the report on stdout (`--json` for scripts).
 *
 * Exit codes: 0 every snapshot is current or migrates; 2 some would fail (or failed: those were
 * left untouched); 1 usage or a store that cannot be opened.
 *
 * PGlite is one process's database: with it, stop the node first (a running `agentry dev` on the
 * same data directory is refused). Against Postgres it is safe while nodes run (see the migrator).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { AgentryError } from '../../actors/errors.js';
import { loadAgentModule } from '../agentModule.js';
import { loadConfig } from '../config.js';
import { migrateStoredSnapshots, type MigrationRunReport } from '../snapshotMigrator.js';
import { openStoreFor } from '../store.js';
import { EXIT, printResult, table } from './output.js';

/** Registers `agentry migrate`. */
export function registerMigrateCommand(program: Command): void {
  program.command('migrate')
    .description('migrate every stored session snapshot to the agents\' current versions (defineAgent version/migrate); --dry-run only reports')
    .requiredOption('--agents <module>', 'module whose exports are the new agent definitions')
    .option('--dry-run', 'run every migration but write nothing: report per agent type ok / would fail')
    .option('--type <type>', 'only sessions of this agent type')
    .option('--page <n>', 'sessions read per page (memory bound)', '500')
    .option('--errors <n>', 'errors listed per agent type', '5')
    .action(async (o: { agents: string; dryRun?: boolean; type?: string; page: string; errors: string }) => {
      const json = program.opts<{ json?: boolean }>().json === true;
      const { agents } = await loadAgentModule(o.agents);
      const config = loadConfig();
      if (!config.databaseUrl && existsSync(join(config.dataDir, 'api.url'))) {
        throw new AgentryError('CONFIG_INVALID', `an agentry dev is running on ${config.dataDir} (PGlite is one process's database): stop it first, or migrate lazily by restarting it with the new agents`);
      }
      const store = await openStoreFor(config);
      let report: MigrationRunReport;
      try {
        await store.migrate();
        const tty = process.stderr.isTTY;
        report = await migrateStoredSnapshots({
          store, agents, apply: o.dryRun !== true, pageSize: Number(o.page), maxErrors: Number(o.errors),
          ...(o.type ? { type: o.type } : {}),
          onProgress: (done, total) => {
            const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
            const bar = '#'.repeat(Math.floor(pct / 5)).padEnd(20, '.');
            process.stderr.write(`${tty ? '\r' : ''}migrate: [${bar}] ${done}/${total} sessions${tty ? '' : '\n'}`);
          },
        });
        if (tty) process.stderr.write('\n');
      } finally {
        await store.close();
      }
      const human = [
        `${report.dryRun ? 'Dry run: nothing written.' : 'Applied.'} ${report.sessions} sessions read.`,
        table(['TYPE', 'VERSION', 'SESSIONS', 'CURRENT', report.dryRun ? 'WOULD MIGRATE' : 'MIGRATED', report.dryRun ? 'WOULD FAIL' : 'FAILED', 'RACED', 'RESULT'],
          report.types.map((t) => [t.type, t.version === null ? '(not in module)' : String(t.version), String(t.sessions), String(t.current), String(t.migrated), String(t.failed), String(t.raced),
            t.version === null ? 'skipped' : t.failed > 0 ? (report.dryRun ? 'would fail' : 'failed') : 'ok'])),
        ...report.types.flatMap((t) => t.errors.map((e) => `  ${t.type} ${e.agentId}: [MIGRATION_FAILED ${e.reason}] ${e.message}`)),
      ].join('\n');
      printResult(report, json, human);
      if (!report.ok) process.exitCode = EXIT.SERVER;
    });
}
