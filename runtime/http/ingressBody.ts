/**
 * Owns reading a request body for the HTTP ingress: at most `maxBytes` (413 PAYLOAD_TOO_LARGE
 * beyond, decided from Content-Length when the client announces it), JSON only (415 for
 * another media type, so a browser cannot send one cross-site without a CORS preflight), parsed
 * with the same faults as a JSON-RPC frame: PARSE_ERROR (also for bytes that are not UTF-8,
 * which would otherwise turn into U+FFFD silently), and the door's UNSTORABLE_INPUT (-32602,
 * 400) for a body Postgres could not store (NUL, lone surrogate, a field nested deeper than
 * `maxDepth`), judged iteratively before anything else touches it.
 */
import type { IncomingMessage } from 'node:http';
import { AgentryError } from '../../actors/errors.js';
import { HttpError, parseError } from './ingressErrors.js';
import { jsonNestingExceeds } from '../../persistence/index.js';
import { assertStorableParams, unstorableInput } from './rpcErrors.js';

/**
 * Bodies above the cap are still read (and dropped) up to this, so a client that sends it all
 * before reading sees the 413; beyond it (or when Content-Length announces more) the answer goes
 * out at once and the connection is closed (the caller answers 413 with Connection: close).
 */
const DRAIN_LIMIT = 16 * 1024 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isJsonMediaType(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

/**
 * Reads and parses the body; `undefined` when there is none. Rejects with the error to answer
 * (PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, PARSE_ERROR, UNSTORABLE_INPUT). `maxDepth` is the
 * runtime's `maxJsonDepth`, counted per field as for JSON-RPC params.
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number, maxDepth: number): Promise<unknown> {
  const tooLarge = (): AgentryError => new AgentryError('PAYLOAD_TOO_LARGE', `the request body is larger than ${maxBytes} bytes`);
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > DRAIN_LIMIT) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  let over = Number.isFinite(declared) && declared > maxBytes;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) over = true;
      if (!over) { chunks.push(chunk); return; }
      if (size > DRAIN_LIMIT) { done(); req.pause(); } // stop reading; the 413 goes out with Connection: close
    };
    const done = (): void => {
      req.off('data', onData);
      req.off('end', done);
      req.off('error', onError);
      req.off('close', done);
      resolve();
    };
    const onError = (err: Error): void => { done(); reject(err); };
    req.on('data', onData);
    req.on('end', done);
    req.on('error', onError);
    req.on('close', done); // the client went away mid-body: whatever we answer goes nowhere
  });
  if (over) throw tooLarge();
  if (size === 0) return undefined;
  if (!isJsonMediaType(req.headers['content-type'])) {
    throw new HttpError('UNSUPPORTED_MEDIA_TYPE', 'send the body as JSON with Content-Type: application/json (curl: --json)');
  }
  let text: string;
  try {
    text = utf8.decode(Buffer.concat(chunks, size));
  } catch {
    throw parseError();
  }
  // Refused before JSON.parse, which is slow on deep text (the body object adds one level).
  const deepAt = jsonNestingExceeds(text, maxDepth + 1);
  if (deepAt >= 0) throw unstorableInput({ kind: 'too-deep', path: '$', message: `JSON nested deeper than ${maxDepth} levels (at character ${deepAt})` });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw parseError();
  }
  assertStorableParams(value, maxDepth);
  return value;
}
