#!/usr/bin/env node
/**
 * The `agentry` command. `dev` runs a complete local system (its own nats-server when NATS_URL
 * is unset, PGlite when DATABASE_URL is unset, the example agents, the control plane); `start`
 * runs a production node against configured servers with the agents of a module. The other
 * commands (`agents`, `send`, `mail`, `events`, `tasks`, `dlq`, `watch`) talk to a running
 * node through the control API (cli/apiCommands.ts); `inbox` reads the inbox stream over
 * JetStream (cli/inboxCommands.ts).
 *
 * Exit codes: 0 ok, 1 usage (or a node that cannot start), 2 the server refused or answered
 * with an error, 3 the server could not be reached.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Command } from 'commander';
import type { AnyAgent } from '../actors/defineAgent.js';
import { AgentryError } from '../actors/errors.js';
import { exampleAgents } from '../examples/index.js';
import { freePort, projectRoot, startNatsServer, stopLeftoverNatsServer, type NatsServerHandle } from '../ops/natsServer.js';
import { DEFAULT_API_URL, registerApiCommands } from './cli/apiCommands.js';
import { registerInboxCommands } from './cli/inboxCommands.js';
import { registerMigrateCommand } from './cli/migrateCommand.js';
import { EXIT, exitQuietlyWhenStdoutCloses, printError } from './cli/output.js';
import { loadAgentModule, type LoadedAgents } from './agentModule.js';
import { watchAgentFiles } from './devWatch.js';
import { loadConfig } from './config.js';
import { registerReplayCommand } from './cli/replayCommand.js';
import { createDevLogger } from './logger.js';
import { assertTokenBeyondLoopback, startControlPlane, type ControlPlane } from './http/index.js';
import { settleWithin } from './deadline.js';
import { createRuntime, type Runtime, type StopReport } from './runtime.js';

const program = new Command();
program.name('agentry').description('Actor runtime for long-lived AI-agent sessions').showHelpAfterError()
  .option('--url <url>', `control API address (default: AGENTRY_URL, else the running \`agentry dev\`'s, else ${DEFAULT_API_URL})`)
  .option('--token <token>', 'control API token (default: AGENTRY_TOKEN)')
  .option('--json', 'print results (and errors, on stderr) as JSON')
  .addHelpText('after', '\nExit codes: 0 ok, 1 usage, 2 error from the server (including a refused token), 3 cannot connect.');

/** The data directory without validating the rest of the configuration (client commands need only this). */
function dataDir(): string {
  return process.env.AGENTRY_DATA_DIR || '.agentry';
}

/** `--host` / `--port` as configuration overrides (they win over HOST / PORT). */
function listenOverrides(o: { host?: string; port?: string }): { host?: string; port?: number } {
  return { ...(o.host ? { host: o.host } : {}), ...(o.port !== undefined ? { port: Number(o.port) } : {}) };
}

/** Starts the control plane over a started runtime; stops the runtime if it cannot. */
async function startApi(runtime: Runtime): Promise<ControlPlane> {
  try {
    return await startControlPlane(runtime);
  } catch (e) {
    await runtime.stop();
    throw e;
  }
}

/**
 * Runs until SIGINT/SIGTERM/SIGHUP, then shuts down gracefully and exits 0; 1 when the shutdown
 * failed or hit its deadline with work left (one line says what). A backstop timer exits at
 * `shutdownGraceMs` + 1.5 s whatever is still pending, so a server that is gone cannot hold
 * the process. A second SIGINT/SIGTERM at least a second after the first forces an immediate
 * exit (130): one Ctrl-C under `npm start` arrives twice at once (from the terminal and
 * forwarded by npm), and that must not count as the impatient second press.
 */
function runUntilSignal(graceMs: number, stop: () => Promise<StopReport>): void {
  let stoppingSince: number | undefined;
  const onSignal = (sig: string): void => {
    if (stoppingSince !== undefined) {
      if (sig === 'SIGHUP' || Date.now() - stoppingSince < 1_000) return;
      process.stderr.write(`agentry: second ${sig}, exiting now (unacked messages are redelivered to the next owner)\n`);
      process.exit(130);
    }
    stoppingSince = Date.now();
    process.stderr.write(`\nagentry: ${sig} received, shutting down (at most ${graceMs} ms; Ctrl-C again to force)\n`);
    setTimeout(() => {
      process.stderr.write(`agentry: shutdown did not finish within ${graceMs + 1500} ms; exiting (unacked messages are redelivered to the next owner)\n`);
      process.exit(1);
    }, graceMs + 1500).unref();
    stop().then((r) => {
      if (r.clean) process.exit(0);
      // Turns aborted at the grace's end are what the grace is for: said, but not a failed stop.
      const onlyHandlers = r.timedOut.every((t) => t === 'handlers');
      process.stderr.write(`agentry: shutdown ${onlyHandlers ? 'aborted running handlers' : 'incomplete'} after ${r.ms} ms: ${r.timedOut.join(', ')} did not finish; ${r.abortedTurns} turns aborted, ${r.unackedMessages} unacked messages and ${r.sessionsWithPendingCommits} sessions with pending commits left (redelivered to the next owner, nothing is lost)\n`);
      process.exit(onlyHandlers ? 0 : 1);
    }, (err: unknown) => { process.stderr.write(`agentry: shutdown failed: ${String(err)}\n`); process.exit(1); });
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => { onSignal(sig); });
}

/** A URL `dev` wrote into the data directory (`nats.url`, `api.url`), so other commands find the dev servers without flags. */
function devUrl(file: 'nats.url' | 'api.url'): string | undefined {
  const f = join(dataDir(), file);
  return existsSync(f) ? readFileSync(f, 'utf8').trim() : undefined;
}

program.command('dev')
  .description('run a local runtime with your agents (--agents, TypeScript or JavaScript, reloaded on save) or the example agents; starts nats-server and uses PGlite unless NATS_URL / DATABASE_URL are set')
  .option('--agents <module>', 'module whose exports are your agent definitions (defineAgent): .ts straight from source, or .js (default: the example agents)')
  .option('--no-watch', 'with --agents: do not reload the agents when their files change')
  .option('--nats-port <port>', 'port for the nats-server this command starts', '4223')
  .option('--host <host>', 'control plane interface (default: HOST, else 127.0.0.1)')
  .option('--port <port>', 'control plane port, 0 for any free one (default: PORT, else 7070)')
  .action(async (o: { agents?: string; watch: boolean; natsPort: string; host?: string; port?: string }) => {
    const listen = listenOverrides(o);
    // The agents load before anything starts: a typo in them fails here, not after the servers.
    const userAgents = o.agents !== undefined;
    const first = userAgents ? await loadAgentModule(o.agents!, o.watch ? { reload: 1 } : {}) : { agents: exampleAgents, files: [] };
    const defaultTypeOf = (agents: readonly AnyAgent[]): string | undefined => process.env.AGENTRY_DEFAULT_AGENT
      ?? (!userAgents ? 'echo' : agents.length === 1 ? agents[0]!.type : undefined);
    const base = loadConfig({ defaultAgentType: defaultTypeOf(first.agents), ...listen });
    assertTokenBeyondLoopback(base.host, base.token);
    mkdirSync(base.dataDir, { recursive: true });
    let nats: NatsServerHandle | undefined;
    let natsUrl = base.natsUrl;
    if (!natsUrl) {
      const storeDir = resolve(base.dataDir, 'nats');
      const pidFile = resolve(base.dataDir, 'nats.pid');
      // A dev killed with SIGKILL left its server running (on our port): stop it. A dev that is
      // still running with this data directory is refused: two servers must not share a store.
      const left = await stopLeftoverNatsServer(pidFile, storeDir);
      if (left.kind === 'in-use') {
        throw new AgentryError('CONFIG_INVALID', `another agentry dev (pid ${left.parentPid}) is running with the data directory ${base.dataDir}: stop it, or set AGENTRY_DATA_DIR to another directory`);
      }
      if (left.kind === 'stopped') process.stderr.write(`agentry: stopped the nats-server (pid ${left.pid}) a killed agentry dev left running\n`);
      const wanted = Number(o.natsPort);
      const port = wanted > 0 && await portFree(wanted) ? wanted : await freePort();
      // Its own process group: a terminal's Ctrl-C reaches only this process, which stops the
      // server after the runtime (a server dying first would leave the shutdown waiting on it).
      nats = await startNatsServer({
        port, storeDir, partitions: base.partitions, ownProcessGroup: true, pidFile,
      });
      natsUrl = nats.url;
    }
    writeFileSync(join(base.dataDir, 'nats.url'), natsUrl);
    // Readable lines (time level session message key=value, stacks below) unless asked for JSON.
    const logger = process.env.AGENTRY_LOG_FORMAT === 'json' ? undefined : createDevLogger(base.logLevel);
    const startNode = async (agents: readonly AnyAgent[], port?: number): Promise<DevNode> => {
      const runtime = await createRuntime({
        agents, ...(logger ? { logger } : {}),
        config: { natsUrl, defaultAgentType: defaultTypeOf(agents), ...listen, ...(port !== undefined ? { port } : {}) },
      });
      return { runtime, api: await startApi(runtime), agents };
    };
    let node: DevNode;
    try {
      node = await startNode(first.agents);
    } catch (e) {
      await nats?.stop();
      throw e;
    }
    const apiUrlFile = join(base.dataDir, 'api.url');
    writeFileSync(apiUrlFile, node.api.rpcUrl);
    const { runtime, api } = node;
    const storeDesc = runtime.store.kind === 'pglite' ? `PGlite in ${join(base.dataDir, 'pglite')}` : runtime.store.kind;
    const defaultType = defaultTypeOf(first.agents);
    process.stdout.write([
      '',
      'Agentry dev runtime is running.',
      `  UI:     ${api.url}/`,
      `  API:    ${api.rpcUrl}  (WebSocket JSON-RPC 2.0; ${api.url}/openrpc.json describes it)`,
      `  NATS:   ${natsUrl}${nats ? ' (nats-server started by agentry, store in ' + join(base.dataDir, 'nats') + ')' : ''}`,
      `  Store:  ${storeDesc}`,
      `  Agents: ${first.agents.map((a) => a.type).join(', ')}${userAgents ? ` from ${o.agents}${o.watch ? ' (reloaded when its files change)' : ''}` : ' (the examples)'}`,
      defaultType
        ? `          a message to a session nobody created creates it as '${defaultType}'`
        : `          a message to a session nobody created is dead-lettered: create it first (npx agentry agents create demo --type ${first.agents[0]?.type ?? '<type>'}) or set AGENTRY_DEFAULT_AGENT`,
      '',
      'Send a message and watch the replies (in another terminal):',
      '  npx agentry watch demo',
      '  npx agentry send demo "hello"',
      '  npx agentry agents list',
      `  # or with any NATS client: publish to agentry.in.demo, subscribe to agentry.out.demo on ${natsUrl}`,
      '',
      'Stop with Ctrl-C.',
      '',
    ].join('\n'));
    // Reloads run one after another; a stop waits for the one under way (bounded by the backstop).
    let reloading = Promise.resolve();
    let stopping = false;
    let reloads = 1;
    const watcher = userAgents && o.watch
      ? watchAgentFiles(first.files, (changed) => {
        reloading = reloading.then(async () => {
          if (stopping) return;
          const r = await reloadDevNode(node, { path: o.agents!, reload: ++reloads, changed, start: startNode });
          if (r.files) watcher?.update(r.files);
          if (r.node) node = r.node;
        });
      })
      : undefined;
    runUntilSignal(runtime.config.shutdownGraceMs, async () => {
      stopping = true;
      watcher?.close();
      await reloading;
      rmSync(apiUrlFile, { force: true });
      await settleWithin(node.api.close(), 1_000);
      const report = await node.runtime.stop();
      await nats?.stop();
      return report;
    });
  });

/** The runtime and control plane `dev` runs, and the agents they run. */
interface DevNode {
  readonly runtime: Runtime;
  readonly api: ControlPlane;
  readonly agents: readonly AnyAgent[];
}

/**
 * One reload of `dev --agents`: the module is imported afresh first; a module that fails to load
 * leaves the running node alone. With the same agent types the new code replaces the old in the
 * running node (`Runtime.replaceAgents`). When types were added or removed, the node is stopped
 * (gracefully: commits drain, partitions are handed back) and a new one started on the same
 * control-plane port; one that fails to start with the new agents is started again with the
 * previous ones.
 * Returns the new node (if any) and the files to watch from now on.
 */
async function reloadDevNode(
  node: DevNode,
  o: { path: string; reload: number; changed: string; start: (agents: readonly AnyAgent[], port: number) => Promise<DevNode> },
): Promise<{ node?: DevNode; files?: string[] }> {
  const t0 = Date.now();
  process.stderr.write(`agentry: ${o.changed} changed, reloading the agents\n`);
  let loaded: LoadedAgents;
  try {
    loaded = await loadAgentModule(o.path, { reload: o.reload });
  } catch (e) {
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
    process.stderr.write(`agentry: reload failed, the previous agents keep running: ${e instanceof Error ? e.message : String(e)}\n${cause instanceof Error && cause.stack ? indent(cause.stack) + '\n' : ''}`);
    return {};
  }
  // Same agent types: the new code goes in place, partitions and sessions stay (well under a second).
  const was = node.agents.map((a) => a.type).sort().join(', ');
  if (loaded.agents.map((a) => a.type).sort().join(', ') === was) {
    node.runtime.replaceAgents(loaded.agents);
    process.stderr.write(`agentry: reloaded in ${Date.now() - t0} ms: ${was}\n`);
    return { node: { ...node, agents: loaded.agents }, files: loaded.files };
  }
  // Types added or removed: a new node (sessions, defaults and subscriptions name the types).
  const port = Number(new URL(node.api.url).port);
  await settleWithin(node.api.close(), 1_000);
  await node.runtime.stop();
  try {
    const next = await o.start(loaded.agents, port);
    process.stderr.write(`agentry: reloaded in ${Date.now() - t0} ms: ${loaded.agents.map((a) => a.type).join(', ')}\n`);
    return { node: next, files: loaded.files };
  } catch (e) {
    process.stderr.write(`agentry: the new agents did not start, restarting the previous ones: ${e instanceof Error ? e.message : String(e)}\n`);
    return { node: await o.start(node.agents, port), files: loaded.files };
  }
}

/** A stack indented under its message line, as the dev log prints them. */
function indent(text: string): string {
  return text.split('\n').map((l) => `    ${l}`).join('\n');
}

program.command('start')
  .description('run a production node: NATS_URL required; DATABASE_URL selects Postgres (else PGlite)')
  .requiredOption('--agents <module>', 'module whose exports are agent definitions (defineAgent): .js, or .ts loaded through TypeScript')
  .option('--host <host>', 'control plane interface (default: HOST, else 127.0.0.1; beyond loopback AGENTRY_TOKEN is required)')
  .option('--port <port>', 'control plane port (default: PORT, else 7070)')
  .action(async (o: { agents: string; host?: string; port?: string }) => {
    const listen = listenOverrides(o);
    const { agents } = await loadAgentModule(o.agents);
    const config = loadConfig(listen);
    assertTokenBeyondLoopback(config.host, config.token); // before connecting anything
    if (config.store === 'auto' && !config.databaseUrl) mkdirSync(config.dataDir, { recursive: true }); // PGlite lives there
    const runtime = await createRuntime({ agents, config: listen });
    const api = await startApi(runtime);
    process.stdout.write(`agentry: node ${runtime.config.nodeId} running; UI ${api.url}/ and API ${api.rpcUrl}\n`);
    runUntilSignal(runtime.config.shutdownGraceMs, async () => {
      await settleWithin(api.close(), 1_000);
      return runtime.stop();
    });
  });

program.command('init')
  .argument('[dir]', 'the folder to create', 'my-agents')
  .description('create a project for your own agents from the starter template (TypeScript; `npm run dev` runs them, reloaded on save)')
  .action((dir: string) => {
    const target = resolve(dir);
    if (existsSync(target) && readdirSync(target).length > 0) {
      throw new AgentryError('CONFIG_INVALID', `${dir} exists and is not empty: name a new folder`);
    }
    const root = projectRoot();
    cpSync(join(root, 'templates', 'starter'), target, { recursive: true });
    // npm never packs a file named .gitignore, so the template carries it as `gitignore`.
    renameSync(join(target, 'gitignore'), join(target, '.gitignore'));
    const ours = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
    const pkgFile = join(target, 'package.json');
    const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { name: string; dependencies: Record<string, string> };
    pkg.name = basename(target).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+/, '') || 'my-agents';
    pkg.dependencies = { [ours.name]: `^${ours.version}` };
    writeFileSync(pkgFile, JSON.stringify(pkg, null, 2) + '\n');
    process.stdout.write([
      `Created ${dir}: your agents are in ${join(dir, 'src', 'agents.ts')}.`,
      '',
      `  cd ${dir}`,
      '  npm install',
      '  npm run dev        # reloads when you save; Ctrl-C stops it',
      '',
    ].join('\n'));
  });

const defaultNatsUrl = (): string => process.env.NATS_URL ?? devUrl('nats.url') ?? 'nats://127.0.0.1:4222';
registerApiCommands(program, {
  defaultUrl: () => devUrl('api.url') ?? DEFAULT_API_URL,
  describeDefaultUrl: () => (devUrl('api.url')
    ? `the running agentry dev's, from ${resolve(dataDir(), 'api.url')}`
    : `the default: no running agentry dev found in ${resolve(dataDir())}; set --url or AGENTRY_URL`),
  defaultNatsUrl,
});
registerInboxCommands(program, { defaultNatsUrl });
registerReplayCommand(program);
registerMigrateCommand(program);

async function portFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => { res(false); });
    s.listen(port, '127.0.0.1', () => { s.close(() => { res(true); }); });
  });
}

exitQuietlyWhenStdoutCloses();
program.parseAsync(process.argv).catch((err: unknown) => {
  printError(err, program.opts<{ json?: boolean }>().json === true);
  process.exit(EXIT.USAGE);
});
