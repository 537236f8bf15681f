// The API's OpenAPI 3.1 document, built from the routes' own JSON schemas as they register,
// so it cannot drift from what the server validates. Served at /api/openapi.json.
import type { FastifyInstance, RouteOptions } from 'fastify';
import { CSRF_HEADER, SESSION_COOKIE } from './sessions.js';

interface JsonObject {
  type?: string;
  properties?: Record<string, unknown>;
  required?: readonly string[];
}

type Operation = Record<string, unknown>;

function parameters(schema: JsonObject | undefined, where: 'path' | 'query') {
  return Object.entries(schema?.properties ?? {}).map(([name, property]) => ({
    name,
    in: where,
    required: where === 'path' || (schema?.required ?? []).includes(name),
    schema: property,
  }));
}

/** Collects every route registered after this call in `app`'s scope; returns the document builder. */
export function collectOpenApi(app: FastifyInstance, prefix: string): () => unknown {
  const paths: Record<string, Record<string, Operation>> = {};
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) => m !== 'HEAD');
    const schema = (route.schema ?? {}) as { params?: JsonObject; querystring?: JsonObject; body?: JsonObject };
    const path = (route.url.startsWith(prefix) ? route.url.slice(prefix.length) : route.url).replace(/:(\w+)/g, '{$1}');
    for (const method of methods) {
      const operation: Operation = {
        parameters: [...parameters(schema.params, 'path'), ...parameters(schema.querystring, 'query')],
        responses: { default: { description: 'JSON; errors as {"error": "..."}' } },
      };
      if (schema.body) operation.requestBody = { required: true, content: { 'application/json': { schema: schema.body } } };
      if ((route.config as { public?: boolean } | undefined)?.public) operation.security = [];
      else if (method !== 'GET') operation.security = [{ session: [], csrf: [] }];
      (paths[path] ??= {})[method.toLowerCase()] = operation;
    }
  });
  return () => ({
    openapi: '3.1.0',
    info: { title: 'Quillmail API', version: '1' },
    servers: [{ url: prefix }],
    components: {
      securitySchemes: {
        session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE },
        csrf: { type: 'apiKey', in: 'header', name: CSRF_HEADER },
      },
    },
    security: [{ session: [] }],
    paths,
  });
}
