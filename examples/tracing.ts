/**
 * Traces, printed to the console: `node ops/build.mjs && node dist/examples/tracing.js`.
 *
 * The runtime depends on `@opentelemetry/api` only; the SDK used here
 * (`@opentelemetry/sdk-trace-base`, its `ConsoleSpanExporter`) is a devDependency of this
 * repository: in your own project, `npm install @opentelemetry/sdk-trace-base` (or the Node SDK
 * with an OTLP exporter) and register it before you create the runtime.
 *
 * It starts a nats-server (unless NATS_URL is set) and an in-memory runtime, sends one message
 * with a W3C `traceparent`, lets the agent sleep, wakes it, and prints the spans: the producer's
 * trace id on `agentry.receive`, `agentry.run`, `agentry.commit` and `agentry.publish`, and the
 * wake-up run continuing the same trace. See docs/tracing.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { defineAgent } from '../actors/index.js';
import { startNatsServer, type NatsServerHandle } from '../ops/natsServer.js';
import { createRuntime } from '../runtime/index.js';
import { createLogger } from '../runtime/logger.js';

const napper = defineAgent({
  type: 'napper',
  onMessage: 'queue',
  initialState: () => ({ naps: 0 }),
  handle(batch, ctx) {
    if (batch[0]?.kind === 'wake') {
      ctx.reply({ text: 'good morning' });
      return undefined;
    }
    ctx.state.naps++;
    ctx.reply({ text: 'going to sleep' });
    return ctx.sleep({ durationMs: 60 * 60 * 1000 });
  },
});

async function main(): Promise<void> {
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())] });
  trace.setGlobalTracerProvider(provider);

  const dir = mkdtempSync(join(tmpdir(), 'agentry-tracing-'));
  let nats: NatsServerHandle | undefined;
  const natsUrl = process.env.NATS_URL ?? (nats = await startNatsServer({ storeDir: join(dir, 'js'), partitions: 8 })).url;
  const rt = await createRuntime({ agents: [napper], logger: createLogger('warn'), config: { natsUrl, partitions: 8, store: 'memory' } });
  try {
    await rt.createAgent('nap-1', 'napper');
    // What an upstream service would send: its own trace id and span id.
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await rt.sendMessage('nap-1', { text: 'hello' }, { traceparent });
    for (let i = 0; i < 100 && (await rt.getAgent('nap-1')).state !== 'sleeping'; i++) await new Promise((r) => setTimeout(r, 50));
    await rt.wakeAgent('nap-1');
    for (let i = 0; i < 100 && (await rt.getAgent('nap-1')).state !== 'idle'; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200)); // the wake-up's commit and publish spans
    console.log(`\nEvery span above with traceId 4bf92f3577b34da6a3ce929d0e0e4736 continues the sender's trace, the wake-up run included.`);
  } finally {
    await rt.stop();
    await provider.shutdown();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
