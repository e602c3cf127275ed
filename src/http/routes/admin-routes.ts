import type { IncomingMessage } from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Context } from "hono";
import { isLoopbackHost } from "../../auth/binding.js";
import { HeraldError } from "../../errors.js";
import { busiestMailboxes, MAX_BUSIEST } from "../admin-console.js";
import { SAMPLE_INTERVAL_MS } from "../admin-stats.js";
import type { AppDeps, HeraldEnv } from "../deps.js";
import { checkCrossSite } from "../middleware/admission.js";
import type { Caller } from "../middleware/caller.js";
import { isLoopbackHostHeader } from "../middleware/origin-policy.js";
import { StreamSink } from "../transports/stream-sink.js";
import { demoFile } from "./demo-routes.js";
import { refuseHead } from "./open-stream.js";
import { queryLimit } from "./params.js";

/** Longest `q` of GET /v1/admin/mailboxes: a mailbox name's length. */
const MAX_QUERY_LENGTH = 128;
const DEFAULT_BUSIEST = 20;

/**
 * The gate of every admin API route. With auth on: an API key with
 * `"admin": true` in the Authorization header (401 without a key, 403 with
 * another). Without auth: only a peer on this machine (the socket's address
 * is loopback and no proxy forwarded the request), from a page CORS lets in.
 */
export async function admitAdmin(c: Context<HeraldEnv>, deps: AppDeps): Promise<Caller> {
  const { access } = deps;
  if (access.authOn) {
    access.keyWithRight(c, "admin");
    return access.authenticate(c, false);
  }
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const peer = incoming?.socket.remoteAddress;
  const forwarded = c.req.header("x-forwarded-for") !== undefined || c.req.header("forwarded") !== undefined;
  // A loopback Host too, even with --insecure: a page on a rebound name must not read the console.
  const host = c.req.header("host");
  if (peer === undefined || !isLoopbackHost(peer) || forwarded || host === undefined || !isLoopbackHostHeader(host)) {
    throw new HeraldError(
      "forbidden",
      "Without auth the admin console answers only to this machine (a loopback peer, not through a proxy); " +
        'configure auth and use an API key with "admin": true',
    );
  }
  const caller = await access.authenticate(c, false);
  checkCrossSite(c, access, caller, "read");
  return caller;
}

const NO_STORE = { "Cache-Control": "no-store" };

/** GET /admin: the console page. It holds no data; everything it shows comes from the admin API. */
export function adminPage(c: Context<HeraldEnv>): Promise<Response> {
  return demoFile(c, "admin.html");
}

/** GET /v1/admin/config: the configuration summary, without secrets. */
export async function adminConfig(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  await admitAdmin(c, deps);
  const { summary } = deps.admin;
  const now = {
    // The port the server got (the configured one may be 0: any free port).
    server: { ...(summary.server as object), port: c.env.incoming.socket.localPort },
    process: { ...(summary.process as object), draining: deps.hub.draining, storeReady: deps.store.ready() },
  };
  return c.json({ ...summary, ...now }, 200, NO_STORE);
}

/** GET /v1/admin/stats: every kept sample, oldest first. */
export async function adminStats(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  await admitAdmin(c, deps);
  return c.json({ intervalMs: SAMPLE_INTERVAL_MS, samples: deps.admin.stats.history() }, 200, NO_STORE);
}

/**
 * GET /v1/admin/stats/events: SSE. After the opening frame every Herald stream
 * has, an `event: history` with every kept sample, then an `event: sample`
 * each second. It is a connection like any other stream (heartbeats, drain, a
 * stream slot), cut when it cannot keep up.
 */
export async function adminStatsEvents(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  refuseHead(c);
  const caller = await admitAdmin(c, deps);
  const release = deps.access.hold(caller, "stream");
  const { incoming, outgoing } = c.env;
  if (incoming.destroyed || outgoing.destroyed) {
    release();
    return RESPONSE_ALREADY_SENT;
  }
  const sink = new StreamSink("sse", outgoing, caller);
  sink.open("", deps.config.sseRetryMs);
  const history = JSON.stringify({ intervalMs: SAMPLE_INTERVAL_MS, samples: deps.admin.stats.history() });
  sink.write(`event: history\ndata: ${history}\n\n`);
  const stop = deps.admin.stats.listen((_sample, json) => {
    if (sink.bufferedBytes() > deps.config.maxQueueBytes) sink.end("slow-consumer");
    else sink.write(`event: sample\ndata: ${json}\n\n`);
  });
  sink.onClose(stop);
  deps.connections.add(sink, release);
  return RESPONSE_ALREADY_SENT;
}

/** GET /v1/admin/mailboxes?q=&limit=: the busiest mailboxes, searchable by name. */
export async function adminMailboxes(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  await admitAdmin(c, deps);
  const query = (c.req.query("q") ?? "").trim();
  if (query.length > MAX_QUERY_LENGTH) {
    throw new HeraldError("bad_parameter", `"q" must be at most ${MAX_QUERY_LENGTH} characters`);
  }
  const limit = queryLimit(c, DEFAULT_BUSIEST, MAX_BUSIEST);
  const mailboxes = await busiestMailboxes(
    { activity: deps.admin.activity, hub: deps.hub, store: deps.store },
    query,
    limit,
  );
  return c.json({ mailboxes }, 200, NO_STORE);
}
