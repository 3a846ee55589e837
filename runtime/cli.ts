#!/usr/bin/env node
/**
 * The `agentry` command. `dev` runs a complete local system (its own nats-server when NATS_URL
 * is unset, PGlite when DATABASE_URL is unset, the example agents); `start` runs a production
 * node against configured servers with the agents of a module; `send` and `watch` talk NATS.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import type { ResolvedAgent } from '../actors/defineAgent.js';
import { AgentryError } from '../actors/errors.js';
import { exampleAgents } from '../examples/index.js';
import { freePort, startNatsServer, type NatsServerHandle } from '../ops/natsServer.js';
import { loadConfig } from './config.js';
import { createRuntime, type Runtime } from './runtime.js';

const program = new Command();
program.name('agentry').description('Actor runtime for long-lived AI-agent sessions').showHelpAfterError();

/** Runs until SIGINT/SIGTERM, then shuts down gracefully and exits 0 (1 if shutdown failed). */
function runUntilSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\nagentry: ${sig} received, shutting down\n`);
    stop().then(() => process.exit(0), (err: unknown) => { process.stderr.write(`agentry: shutdown failed: ${String(err)}\n`); process.exit(1); });
  };
  process.on('SIGINT', () => { onSignal('SIGINT'); });
  process.on('SIGTERM', () => { onSignal('SIGTERM'); });
}

/** The NATS URL `dev` wrote, so `send`/`watch` find the dev server without flags. */
function devNatsUrl(dataDir: string): string | undefined {
  const f = join(dataDir, 'nats.url');
  return existsSync(f) ? readFileSync(f, 'utf8').trim() : undefined;
}

program.command('dev')
  .description('run a local runtime with the example agents (starts nats-server and uses PGlite unless NATS_URL / DATABASE_URL are set)')
  .option('--nats-port <port>', 'port for the nats-server this command starts', '4223')
  .action(async (o: { natsPort: string }) => {
    const base = loadConfig({ defaultAgentType: process.env.AGENTRY_DEFAULT_AGENT ?? 'echo' });
    mkdirSync(base.dataDir, { recursive: true });
    let nats: NatsServerHandle | undefined;
    let natsUrl = base.natsUrl;
    if (!natsUrl) {
      const wanted = Number(o.natsPort);
      const port = await portFree(wanted) ? wanted : await freePort();
      nats = await startNatsServer({ port, storeDir: resolve(base.dataDir, 'nats'), partitions: base.partitions });
      natsUrl = nats.url;
    }
    writeFileSync(join(base.dataDir, 'nats.url'), natsUrl);
    let runtime: Runtime;
    try {
      runtime = await createRuntime({ agents: exampleAgents, config: { natsUrl, defaultAgentType: base.defaultAgentType } });
    } catch (e) {
      await nats?.stop();
      throw e;
    }
    const storeDesc = runtime.store.kind === 'pglite' ? `PGlite in ${join(base.dataDir, 'pglite')}` : runtime.store.kind;
    process.stdout.write([
      '',
      'Agentry dev runtime is running.',
      `  NATS:   ${natsUrl}${nats ? ' (nats-server started by agentry, store in ' + join(base.dataDir, 'nats') + ')' : ''}`,
      `  Store:  ${storeDesc}`,
      `  Agents: ${exampleAgents.map((a) => a.type).join(', ')} (unknown sessions become '${base.defaultAgentType ?? 'echo'}')`,
      '',
      'Send a message and watch the replies (in another terminal):',
      '  npx agentry watch demo',
      '  npx agentry send demo "hello"',
      `  # or with any NATS client: publish to agentry.in.demo, subscribe to agentry.out.demo on ${natsUrl}`,
      '',
      'Stop with Ctrl-C.',
      '',
    ].join('\n'));
    runUntilSignal(async () => {
      await runtime.stop();
      await nats?.stop();
    });
  });

program.command('start')
  .description('run a production node: NATS_URL required; DATABASE_URL selects Postgres (else PGlite)')
  .requiredOption('--agents <module>', 'module whose exports are agent definitions (from defineAgent)')
  .action(async (o: { agents: string }) => {
    const mod = await import(pathToFileURL(resolve(o.agents)).href) as Record<string, unknown>;
    const agents = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v]))
      .filter((v): v is ResolvedAgent<unknown> => !!v && typeof v === 'object' && 'type' in v && 'handle' in v && 'limits' in v);
    if (agents.length === 0) throw new AgentryError('CONFIG_INVALID', `${o.agents} exports no agent definitions`);
    const runtime = await createRuntime({ agents });
    runUntilSignal(() => runtime.stop());
  });

program.command('send')
  .description('publish a message to a session inbox over NATS')
  .argument('<agentId>')
  .argument('<message>', 'text, or JSON when it parses as JSON')
  .option('--kind <kind>', 'message | mail | task | event | control', 'message')
  .option('--priority <p>', 'low | normal | high | urgent', 'normal')
  .option('--from <sender>')
  .option('--nats <url>', 'NATS URL (default: NATS_URL, else the dev server)')
  .action(async (agentId: string, message: string, o: { kind: string; priority: string; from?: string; nats?: string }) => {
    const url = o.nats ?? process.env.NATS_URL ?? devNatsUrl(loadConfig().dataDir) ?? 'nats://127.0.0.1:4222';
    const nc = await connect({ servers: url });
    const { headers } = await import('@nats-io/transport-node');
    const h = headers();
    h.set('Agentry-Kind', o.kind);
    h.set('Agentry-Priority', o.priority);
    if (o.from) h.set('Agentry-From', o.from);
    const ack = await jetstream(nc).publish(`agentry.in.${agentId}`, message, { headers: h });
    process.stdout.write(`${JSON.stringify({ seq: ack.seq })}\n`);
    await nc.close();
  });

program.command('watch')
  .description('print the outputs of one session (or all) as they are published')
  .argument('[agentId]', 'session id; all sessions when omitted')
  .option('--nats <url>', 'NATS URL (default: NATS_URL, else the dev server)')
  .action(async (agentId: string | undefined, o: { nats?: string }) => {
    const url = o.nats ?? process.env.NATS_URL ?? devNatsUrl(loadConfig().dataDir) ?? 'nats://127.0.0.1:4222';
    const nc = await connect({ servers: url });
    const sub = nc.subscribe(`agentry.out.${agentId ?? '>'}`);
    runUntilSignal(async () => { await nc.close(); });
    for await (const m of sub) {
      process.stdout.write(`${JSON.stringify({ subject: m.subject, kind: m.headers?.get('Agentry-Kind') ?? null, body: m.json() })}\n`);
    }
  });

async function portFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => { res(false); });
    s.listen(port, '127.0.0.1', () => { s.close(() => { res(true); }); });
  });
}

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`agentry: ${e.code ? `[${e.code}] ` : ''}${e.message ?? String(err)}\n`);
  process.exit(1);
});
