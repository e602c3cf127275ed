import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, MiddlewareHandler } from "hono";
import { type DestinationStream, type Logger, pino } from "pino";
import type { Caller } from "./access.js";

export type { Logger } from "pino";

/** A client's X-Request-Id is reused when it looks like an id; anything else is replaced. */
const REQUEST_ID = /^[\w.:-]{1,64}$/;
/** Query parameters whose values never reach a log line. */
const SECRET_PARAMS = /([?&](?:token|access_token|key)=)[^&#]*/gi;

export const REDACTED = "[REDACTED]";

/** JSON logs; credentials are censored wherever a logged object might carry them. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "herald" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ["token", "key", "authorization", "cookie", "*.token", "*.authorization", "*.cookie", "headers.*"],
        censor: REDACTED,
      },
    },
    destination,
  );
}

/** The URL with every secret-bearing query parameter's value replaced. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_PARAMS, `$1${REDACTED}`);
}

/**
 * One line per request when its response closes (so a stream is logged when
 * it ends), with a request id echoed in X-Request-Id.
 */
export function requestLog(
  logger: () => Logger,
  callerOf: (request: IncomingMessage) => Caller | undefined,
  onPublished: (seconds: number) => void,
): MiddlewareHandler {
  return async (c: Context, next) => {
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    const { incoming, outgoing } = env ?? {};
    if (!incoming || !outgoing) return next();
    const offered = c.req.header("x-request-id");
    const id = offered !== undefined && REQUEST_ID.test(offered) ? offered : randomUUID();
    outgoing.setHeader("X-Request-Id", id);
    const started = performance.now();
    const method = c.req.method;
    const publish = method === "POST" && /^\/v1\/(?:mailboxes\/[^/]+\/)?messages$/.test(c.req.path);
    const log = logger();
    // Below "info" only errors are logged, and the error handler does that: skip the per-request listener.
    if (log.isLevelEnabled("info"))
      outgoing.once("close", () => {
        const caller = callerOf(incoming);
        const status = outgoing.statusCode;
        const ms = Math.round((performance.now() - started) * 10) / 10;
        const line = {
          reqId: id,
          // Not `c`: the listener lives as long as a stream does, and would keep the whole request context alive.
          method,
          url: redactUrl(incoming.url ?? ""),
          status,
          ms,
          ...(caller ? { caller: caller.name, visitor: caller.visitor } : {}),
          ...(outgoing.writableFinished ? {} : { aborted: true }),
        };
        if (status >= 500) log.error(line, "request");
        else log.info(line, "request");
      });
    await next();
    if (publish && c.res.status < 300) onPublished((performance.now() - started) / 1000);
  };
}
