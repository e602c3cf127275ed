import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, MiddlewareHandler } from "hono";
import { type Logger, REDACTED } from "../../log.js";
import type { Caller } from "./caller.js";

/** A client's X-Request-Id is reused when it looks like an id; anything else is replaced. */
const REQUEST_ID = /^[\w.:-]{1,64}$/;
/** Query parameters whose values never reach a log line, however their names are percent-encoded. */
const SECRET_PARAMS = new Set(["token", "access_token", "key", "auth", "authorization"]);

/** A query none of whose names can be a secret one: no such word, and nothing percent-encoded to hide one. */
const MAY_HOLD_SECRET = /token|key|auth|%/i;

function decodedName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, " ")).toLowerCase();
  } catch {
    return name.toLowerCase();
  }
}

/**
 * The URL with the value of every secret-bearing query parameter replaced.
 * Names are compared decoded, as the router reads them: `?%74oken=` is `token`.
 */
export function redactUrl(url: string): string {
  const question = url.indexOf("?");
  if (question === -1 || !MAY_HOLD_SECRET.test(url.slice(question))) return url;
  const hash = url.indexOf("#", question);
  const query = url.slice(question + 1, hash === -1 ? undefined : hash);
  const redacted = query
    .split("&")
    .map((part) => {
      const equals = part.indexOf("=");
      const name = equals === -1 ? part : part.slice(0, equals);
      return SECRET_PARAMS.has(decodedName(name)) ? `${name}=${REDACTED}` : part;
    })
    .join("&");
  return `${url.slice(0, question + 1)}${redacted}${hash === -1 ? "" : url.slice(hash)}`;
}

/** Each logger's twin without redaction, for request lines. */
const requestLoggers = new WeakMap<Logger, Logger>();

/**
 * Request lines carry nothing the redaction looks for (the URL is redacted
 * here, headers are not logged), and redacting cost more than the rest of the line.
 */
function requestLogger(log: Logger): Logger {
  let plain = requestLoggers.get(log);
  if (plain === undefined) {
    plain = log.child({}, { redact: [] });
    requestLoggers.set(log, plain);
  }
  return plain;
}

interface RequestStart {
  readonly log: Logger;
  readonly incoming: IncomingMessage;
  readonly callerOf: (request: IncomingMessage) => Caller | undefined;
  readonly id: string;
  readonly method: string;
  readonly started: number;
}

function writeLine(request: RequestStart, status: number, aborted: boolean): void {
  const caller = request.callerOf(request.incoming);
  const line = {
    reqId: request.id,
    method: request.method,
    url: redactUrl(request.incoming.url ?? ""),
    status,
    ms: Math.round((performance.now() - request.started) * 10) / 10,
    ...(caller ? { caller: caller.name, visitor: caller.visitor } : {}),
    ...(aborted ? { aborted: true } : {}),
  };
  if (status >= 500) request.log.error(line, "request");
  else request.log.info(line, "request");
}

/** Nginx's 499 for a client that left before any answer; Node would report its default 200. */
const CLIENT_CLOSED = 499;

function statusOf(outgoing: ServerResponse): number {
  return outgoing.headersSent ? outgoing.statusCode : CLIENT_CLOSED;
}

/** A request being logged: its id and how long it has taken. */
export interface RequestLogEntry {
  readonly id: string;
  seconds(): number;
  /** For an upgrade, which has no response: the status the upgrade was answered with. */
  upgradedWith(status: number): void;
}

/**
 * Gives the request its id (the client's X-Request-Id when it looks like one),
 * echoes it, and writes its line when the response closes, or for an upgrade
 * (no response) when its socket does.
 */
export function startRequestLog(
  log: Logger,
  callerOf: (request: IncomingMessage) => Caller | undefined,
  incoming: IncomingMessage,
  outgoing: ServerResponse | undefined,
  offeredId: string | undefined,
): RequestLogEntry {
  const id = offeredId !== undefined && REQUEST_ID.test(offeredId) ? offeredId : randomUUID();
  outgoing?.setHeader("X-Request-Id", id);
  const started = performance.now();
  let upgradeStatus = 0;
  // Below "info" only errors are logged, and the error handler does that: skip the per-request listener.
  // Not a Hono context in what the listener holds: it lives as long as a stream does.
  if (log.isLevelEnabled("info")) {
    const request: RequestStart = {
      log: requestLogger(log),
      incoming,
      callerOf,
      id,
      method: incoming.method ?? "",
      started,
    };
    if (outgoing) outgoing.once("close", () => writeLine(request, statusOf(outgoing), !outgoing.writableFinished));
    else incoming.socket.once("close", () => writeLine(request, upgradeStatus, false));
  }
  return new LogEntry(id, started, (status) => {
    upgradeStatus = status;
  });
}

class LogEntry implements RequestLogEntry {
  readonly id: string;
  readonly #started: number;
  readonly #onUpgrade: (status: number) => void;

  constructor(id: string, started: number, onUpgrade: (status: number) => void) {
    this.id = id;
    this.#started = started;
    this.#onUpgrade = onUpgrade;
  }

  seconds(): number {
    return (performance.now() - this.#started) / 1000;
  }

  upgradedWith(status: number): void {
    this.#onUpgrade(status);
  }
}

/**
 * One line per request when its response closes (so a stream is logged when
 * it ends), with a request id echoed in X-Request-Id. A WebSocket upgrade has
 * no response object: it is logged when its socket closes, with the status the
 * upgrade was answered with (101 when it became a WebSocket).
 */
export function requestLog(
  logger: () => Logger,
  callerOf: (request: IncomingMessage) => Caller | undefined,
  onPublished: (seconds: number) => void,
): MiddlewareHandler {
  return async (c: Context, next) => {
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    const { incoming, outgoing } = env ?? {};
    if (!incoming) return next();
    const entry = startRequestLog(logger(), callerOf, incoming, outgoing, c.req.header("x-request-id"));
    const publish = c.req.method === "POST" && /^\/v1\/(?:mailboxes\/[^/]+\/)?messages$/.test(c.req.path);
    await next();
    if (!outgoing) entry.upgradedWith(c.res.status === 200 ? 101 : c.res.status);
    if (publish && c.res.status < 300) onPublished(entry.seconds());
  };
}
