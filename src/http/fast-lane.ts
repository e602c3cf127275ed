import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Context } from "hono";
import { HeraldError } from "../errors.js";
import type { AppDeps, Handler, HeraldEnv, RouteSpec } from "./deps.js";
import { checkHost, errorBody } from "./host-check.js";
import { startRequestLog } from "./middleware/request-log.js";

/**
 * The hottest routes, those of one mailbox (publish, read and long-poll, SSE
 * and JSON-lines streams), answered straight from Node's request and response
 * once Hono has declared them: no WHATWG Request and Response, router or
 * middleware chain per request.
 * The handlers are the route's own, given a context of the few parts they
 * read, and everything the middleware does for such a request is done here
 * too (request id and log line, Host check, Connection: close while draining,
 * errors as JSON). A request with an Origin (CORS) or anything else takes the
 * generic path.
 */

/** The routes the lane serves, as declared: /v1/mailboxes/:mailbox/<one of these>. */
const LANE_SEGMENTS = ["messages", "events", "stream"];
const LANE_PREFIX = "/v1/mailboxes/:mailbox/";
/** /v1/mailboxes/{mailbox}/{segment}, with or without a query. */
const ONE_MAILBOX = /^\/v1\/mailboxes\/([^/?#]+)\/(messages|events|stream)(?:\?([^#]*))?$/;

function decoded(segment: string): string {
  if (!segment.includes("%")) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    // As the router does: a malformed escape stays as sent, and the name check refuses it.
    return segment;
  }
}

/** A header as Hono's `c.req.header` gives it: repeated ones joined. */
function headerOf(incoming: IncomingMessage, name: string): string | undefined {
  const value = incoming.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(", ") : value;
}

/** What the publish handler reads of `c.req`. */
class LaneRequest {
  readonly method: string;
  readonly path: string;
  readonly #incoming: IncomingMessage;
  readonly #mailbox: string;
  readonly #query: string | undefined;
  #params: URLSearchParams | undefined;

  constructor(incoming: IncomingMessage, path: string, mailbox: string, query: string | undefined) {
    this.method = incoming.method as string;
    this.#incoming = incoming;
    this.path = path;
    this.#mailbox = mailbox;
    this.#query = query;
  }

  header(name: string): string | undefined {
    return headerOf(this.#incoming, name);
  }

  param(name: string): string | undefined {
    return name === "mailbox" ? this.#mailbox : undefined;
  }

  query(name: string): string | undefined {
    return this.#searchParams()?.get(name) ?? undefined;
  }

  queries(name: string): string[] | undefined {
    const all = this.#searchParams()?.getAll(name);
    return all === undefined || all.length === 0 ? undefined : all;
  }

  #searchParams(): URLSearchParams | undefined {
    if (this.#query === undefined || this.#query.length === 0) return undefined;
    this.#params ??= new URLSearchParams(this.#query);
    return this.#params;
  }

  /** For the cookie reader, which asks `c.req.raw.headers`. */
  get raw(): { headers: { get(name: string): string | null } } {
    const incoming = this.#incoming;
    return { headers: { get: (name) => headerOf(incoming, name) ?? null } };
  }
}

/** The part of Hono's Context the publish handler uses; its answer is written at once. */
class LaneContext {
  readonly req: LaneRequest;
  readonly env: { incoming: IncomingMessage; outgoing: ServerResponse };
  readonly #deps: AppDeps;

  constructor(deps: AppDeps, incoming: IncomingMessage, outgoing: ServerResponse, request: LaneRequest) {
    this.#deps = deps;
    this.req = request;
    this.env = { incoming, outgoing };
  }

  body(text: string, status: number, headers: Record<string, string>): Response {
    send(this.#deps, this.env.outgoing, status, headers, text);
    return RESPONSE_ALREADY_SENT;
  }
}

function send(
  deps: AppDeps,
  outgoing: ServerResponse,
  status: number,
  headers: Record<string, string>,
  text: string,
): void {
  if (outgoing.headersSent || outgoing.destroyed) return;
  for (const name in headers) outgoing.setHeader(name, headers[name] as string);
  outgoing.setHeader("Content-Length", Buffer.byteLength(text));
  if (deps.hub.draining) outgoing.setHeader("Connection", "close");
  outgoing.writeHead(status);
  outgoing.end(text);
}

function fail(deps: AppDeps, outgoing: ServerResponse, error: unknown): void {
  let known: HeraldError;
  if (error instanceof HeraldError) known = error;
  else {
    deps.logger.error({ err: error }, "unhandled error");
    known = new HeraldError("internal");
  }
  send(deps, outgoing, known.status, { "Content-Type": "application/json", ...known.headers }, errorBody(known));
}

/**
 * Returns the Node request listener's front: true when it took the request.
 * `handlers` are the declared routes' own, by "METHOD segment".
 */
export function createFastLane(
  deps: AppDeps,
  handlers: ReadonlyMap<string, Handler>,
): (incoming: IncomingMessage, outgoing: ServerResponse) => boolean {
  // Mercure discovery adds a Link header to every answer: that is the middleware's work.
  if (deps.mercure?.settings.discovery) return () => false;
  const onPublished = (seconds: number) => deps.metrics.observePublish(seconds);
  const callerOf = (request: IncomingMessage) => deps.access.callerOf(request);
  return (incoming, outgoing) => {
    if (incoming.headers.origin !== undefined) return false;
    const match = ONE_MAILBOX.exec(incoming.url ?? "");
    const handler = match === null ? undefined : handlers.get(`${incoming.method} ${match[2]}`);
    if (match === null || handler === undefined) return false;
    const path = incoming.url?.split("?", 1)[0] as string;
    const request = new LaneRequest(incoming, path, decoded(match[1] as string), match[3]);
    const c = new LaneContext(deps, incoming, outgoing, request);
    const log = startRequestLog(deps.logger, callerOf, incoming, outgoing, headerOf(incoming, "x-request-id"));
    const answered = (async () => {
      checkHost(deps, headerOf(incoming, "host"));
      await handler(c as unknown as Context<HeraldEnv>, deps);
    })();
    answered.then(
      () => {
        if (request.method === "POST" && outgoing.statusCode < 300) onPublished(log.seconds());
      },
      (error: unknown) => fail(deps, outgoing, error),
    );
    return true;
  };
}

/**
 * Puts the lane in front of the server's request listener (Hono's), serving
 * the handlers declared for its path; without them, nothing changes.
 */
export function installFastLane(server: Server, deps: AppDeps, routes: readonly RouteSpec[]): void {
  const handlers = new Map<string, Handler>();
  for (const route of routes) {
    const segment = route.path.startsWith(LANE_PREFIX) ? route.path.slice(LANE_PREFIX.length) : undefined;
    const key = `${route.method} ${segment}`;
    if (segment !== undefined && LANE_SEGMENTS.includes(segment) && !handlers.has(key)) {
      handlers.set(key, route.handler);
    }
  }
  if (handlers.size === 0) return;
  const lane = createFastLane(deps, handlers);
  const generic = server.listeners("request") as ((incoming: IncomingMessage, outgoing: ServerResponse) => void)[];
  server.removeAllListeners("request");
  server.on("request", (incoming: IncomingMessage, outgoing: ServerResponse) => {
    if (lane(incoming, outgoing)) return;
    for (const listener of generic) listener.call(server, incoming, outgoing);
  });
}
