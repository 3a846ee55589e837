/**
 * Builds the OpenRPC 1.2 document of the control API from the method schemas in
 * `client/protocol.ts` (params become by-name content descriptors, results and errors as
 * declared), so `/openrpc.json` and `rpc.discover` describe exactly what the server validates.
 */
import { z } from 'zod';
import { codes, type ErrorCode } from '../../actors/errors.js';
import { ALIAS_PREFIX, METHOD_NAMES, PROTOCOL_VERSION, methods, notificationSchema } from '../../client/index.js';

type JsonSchema = Record<string, unknown>;

function schemaOf(s: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const js = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as JsonSchema;
  delete js.$schema;
  return js;
}

/** The OpenRPC document (plain JSON). */
export function buildOpenRpcDocument(): Record<string, unknown> {
  const docMethods = METHOD_NAMES.map((name) => {
    const spec = methods[name];
    const params = schemaOf(spec.params, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
    const required = new Set(params.required ?? []);
    return {
      name,
      summary: spec.summary,
      description: `Also callable as \`${ALIAS_PREFIX}${name}\`.`,
      paramStructure: 'by-name',
      params: Object.entries(params.properties ?? {}).map(([pname, schema]) => ({
        name: pname,
        required: required.has(pname),
        ...(typeof schema.description === 'string' ? { description: schema.description } : {}),
        ...(schema.deprecated === true ? { deprecated: true } : {}),
        schema,
      })),
      result: { name: `${name}Result`, schema: schemaOf(spec.result, 'output') },
      errors: spec.errors.map((type) => ({ code: codes[type as ErrorCode], message: type })),
    };
  });
  return {
    openrpc: '1.2.6',
    info: {
      title: 'Agentry control API',
      version: PROTOCOL_VERSION,
      description: 'WebSocket JSON-RPC 2.0 at /rpc. Application errors carry data.type (stable code name) and data.retryable; protocol faults use the reserved codes. Notifications: method "notify".',
    },
    methods: docMethods,
    components: {
      schemas: { Notification: schemaOf(notificationSchema, 'output') },
      errors: Object.fromEntries(Object.entries(codes).map(([type, code]) => [type, { code, message: type }])),
    },
  };
}
