import type { ServerResponse } from "node:http";
import type { Context, MiddlewareHandler } from "hono";
import type { OriginPolicy } from "./origin-policy.js";

const ALLOW_METHODS = "GET, POST, PUT, DELETE, OPTIONS";
const ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Request-Id";
const EXPOSE_HEADERS = "Retry-After, X-Request-Id, WWW-Authenticate";
/** Seconds a browser may cache a preflight answer. */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * Answers preflights and adds CORS headers. Headers also go straight onto the
 * Node response, because streaming routes write their own head.
 */
export function corsMiddleware(policyOf: () => OriginPolicy): MiddlewareHandler {
  return async (c: Context, next) => {
    const origin = c.req.header("origin");
    if (origin === undefined) return next();
    const policy = policyOf();
    if (!policy.corsAllows(origin)) return next();
    // A listed origin gets credentials (the token cookie) when auth is on; "*" may not carry them.
    const headers: Record<string, string> = policy.wildcard(origin)
      ? { "Access-Control-Allow-Origin": "*" }
      : {
          "Access-Control-Allow-Origin": origin,
          ...(policy.withCredentials(origin) ? { "Access-Control-Allow-Credentials": "true" } : {}),
          Vary: "Origin",
        };
    if (c.req.method === "OPTIONS" && c.req.header("access-control-request-method") !== undefined) {
      return c.body(null, 204, {
        ...headers,
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": String(PREFLIGHT_MAX_AGE_SECONDS),
      });
    }
    headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS;
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (outgoing) for (const [name, value] of Object.entries(headers)) outgoing.setHeader(name, value);
    await next();
    // A streamed response already wrote its head; its Response object is a shared marker, not ours to change.
    if (c.res.headers.has("x-hono-already-sent")) return;
    for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
  };
}
