// A runtime node process for the restart suite: imports the built runtime, starts it against
// the given NATS server and Postgres schema, and reports over IPC when createRuntime() resolved.
// The parent then sends a message to one of the persisted sessions and times the answer.
const tImport0 = performance.timeOrigin + performance.now();
const { createRuntime, defineAgent } = await import('../dist/runtime/index.js');
const { createLogger } = await import('../dist/runtime/logger.js');
const [natsUrl, pgUrl, schema, partitions] = process.argv.slice(2);

const echo = defineAgent({
  type: 'echo',
  onMessage: 'queue',
  initialState: () => ({ turns: 0 }),
  handle(batch, ctx) {
    ctx.state.turns++;
    ctx.reply({ seqs: batch.map((m) => m.seq), turn: ctx.state.turns });
    return undefined;
  },
});

const tCreate0 = performance.timeOrigin + performance.now();
const rt = await createRuntime({
  agents: [echo], logger: createLogger('error'),
  config: { natsUrl, partitions: Number(partitions), store: 'auto', databaseUrl: pgUrl, databaseSchema: schema, logLevel: 'error', port: 0 },
});
const tReady = performance.timeOrigin + performance.now();
process.send({ type: 'ready', tProcessStart: performance.timeOrigin, tImport0, tCreate0, tReady, live: rt.host.liveCount() });
process.on('message', async (m) => {
  if (m.type !== 'stop') return;
  const stats = { ...rt.host.stats, live: rt.host.liveCount(), heapUsed: process.memoryUsage().heapUsed };
  await rt.stop();
  process.send({ type: 'stopped', stats }, () => process.exit(0));
});
