import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import type { ClientHttp2Session } from "node:http2";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { DEFAULT_CONFIG, parseServeConfig } from "../src/config.js";
import type { RunningHerald } from "../src/server.js";
import { startAuthServer } from "./helpers/auth.js";
import { type HeraldChild, spawnHerald } from "./helpers/child.js";
import { CHROMIUM, CHROMIUM_ARGS } from "./helpers/chromium.js";
import type { WireMessage } from "./helpers/clients.js";
import {
  type H2Response,
  H2Stream,
  HAVE_NGINX,
  h2Request,
  h2Session,
  NGINX,
  type RunningNginx,
  startNginx,
} from "./helpers/nginx.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";
import { until } from "./helpers/until.js";

// CI installs nginx and Chromium (.ci/run), so a missing one there fails the tests instead of skipping them.
const IN_CI = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false";
const RUN_NGINX = HAVE_NGINX || IN_CI;
const RUN_BROWSER = existsSync(CHROMIUM) || IN_CI;
if (!RUN_NGINX) console.warn(`nginx tests skipped: ${NGINX} is missing (apt-get install -y nginx; .ci/run does this)`);

/** Generous: a loaded 2-core machine runs other suites beside this one. */
const ARRIVE_MS = 15_000;
/** The longest long-poll Herald accepts (`wait`), which the proxy must not cut. */
const LONG_POLL_SECONDS = 60;
/** Herald's default --max-body-bytes; the recipe's client_max_body_size is larger. */
const MAX_BODY = DEFAULT_CONFIG.maxBodyBytes;

const json = { "content-type": "application/json" };

function upstream(url: string): string {
  return new URL(url).host;
}

function publishOn(
  session: ClientHttp2Session,
  mailbox: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<H2Response> {
  return h2Request(
    session,
    "POST",
    `/v1/mailboxes/${encodeURIComponent(mailbox)}/messages`,
    { ...json, ...headers },
    JSON.stringify({ body }),
  );
}

function requireNginx(): void {
  if (!HAVE_NGINX) throw new Error(`${NGINX} is missing and CI is set: the nginx tests must run in CI`);
}

/** One Herald behind the recipe, shared by the cases below; the 60 s long-poll on it runs beside them all. */
let herald: RunningHerald | undefined;
let proxy: RunningNginx;
let session: ClientHttp2Session;
let longPollSession: ClientHttp2Session | undefined;
let longPoll: Promise<{ response: H2Response; elapsedMs: number; cursor: string }>;
const toClose: { close(): void }[] = [];

beforeAll(async () => {
  if (!RUN_NGINX) return;
  requireNginx();
  herald = await startAuthServer({ limits: { trustedProxies: ["127.0.0.1"] } });
  proxy = await startNginx([upstream(herald.url)]);
  session = await h2Session(proxy);
  longPollSession = await h2Session(proxy);
  const now = await h2Request(longPollSession, "GET", "/v1/mailboxes/deploy:long-poll/messages?cursor=now");
  const cursor = (JSON.parse(now.body) as { cursor: string }).cursor;
  const started = Date.now();
  longPoll = h2Request(
    longPollSession,
    "GET",
    `/v1/mailboxes/deploy:long-poll/messages?cursor=${encodeURIComponent(cursor)}&wait=${LONG_POLL_SECONDS}`,
  ).then((response) => ({ response, elapsedMs: Date.now() - started, cursor }));
  // Nothing may reject unobserved if a later step fails.
  longPoll.catch(() => {});
});

afterAll(async () => {
  for (const client of toClose) client.close();
  session?.close();
  longPollSession?.destroy();
  await proxy?.stop();
  await herald?.shutdown();
});

describe.skipIf(!RUN_NGINX)("deploy/nginx.conf in front of one Herald", () => {
  it("speaks HTTP/2 over TLS to the client", async () => {
    expect(session.alpnProtocol).toBe("h2");
    const health = await h2Request(session, "GET", "/healthz");
    expect(health.status).toBe(200);
    expect(health.headers.server).toBe("nginx");
  });

  it("passes SSE and JSON-lines events through unbuffered, while the stream stays open", async () => {
    for (const [path, first] of [
      ["events", "cursor"],
      ["stream", "line"],
    ] as const) {
      const mailbox = `deploy:unbuffered-${path}`;
      // As a browser asks: a proxy compressing the stream would hold events back to fill its blocks.
      const stream = new H2Stream(session, `/v1/mailboxes/${mailbox}/${path}?cursor=now`, {
        "accept-encoding": "gzip, deflate, br",
      });
      toClose.push(stream);
      await stream.opened;
      expect(stream.status).toBe(200);
      expect(stream.headers["content-encoding"]).toBeUndefined();
      // The opening frame arrives before anything is published: the proxy did not hold it back.
      await stream.until(() => stream.events.length >= 1, ARRIVE_MS);
      expect(stream.events[0]?.event).toBe(first);
      const sent = Date.now();
      const published = await publishOn(session, mailbox, "one");
      expect(published.status).toBe(201);
      // One small event, then silence: a buffering proxy would sit on it until more bytes or the end.
      await stream.until(() => stream.events.length >= 2, ARRIVE_MS);
      console.log(`${path}: event through nginx ${Date.now() - sent} ms after the publish was sent`);
      expect(stream.ended).toBe(false);
      const event = JSON.parse(stream.events[1]?.data ?? "{}") as WireMessage;
      expect(event.body).toBe("one");
      expect(event.id).toBe((JSON.parse(published.body) as WireMessage).id);
      stream.close();
    }
  });

  it("upgrades /v1/ws through the proxy and delivers both ways", async () => {
    const socket = new WebSocket(`wss://127.0.0.1:${proxy.port}/v1/ws`, { ca: proxy.ca });
    toClose.push({ close: () => socket.terminate() });
    const frames: { type: string; body?: string }[] = [];
    socket.on("message", (data) => frames.push(JSON.parse(String(data))));
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    socket.send(JSON.stringify({ type: "subscribe", mailboxes: ["deploy:ws"], cursor: "now" }));
    await until(() => frames.some((frame) => frame.type === "subscribed"), "subscribed", ARRIVE_MS);
    expect((await publishOn(session, "deploy:ws", "over http/2")).status).toBe(201);
    socket.send(JSON.stringify({ type: "publish", mailbox: "deploy:ws", message: { body: "over ws" } }));
    const bodies = () => frames.filter((frame) => frame.type === "message").map((frame) => frame.body);
    await until(
      () => bodies().length >= 2,
      () => JSON.stringify(frames),
      ARRIVE_MS,
    );
    expect(bodies()).toEqual(["over http/2", "over ws"]);
    socket.terminate();
  });

  it("passes a body up to Herald's limit, and answers larger ones with JSON 413 (Herald's, then the proxy's)", async () => {
    const path = "/v1/mailboxes/deploy:bodies/messages";
    const fits = await h2Request(session, "POST", path, { "content-type": "text/plain" }, "x".repeat(MAX_BODY));
    expect(fits.status).toBe(201);
    expect((JSON.parse(fits.body) as WireMessage).body).toHaveLength(MAX_BODY);

    const over = await h2Request(session, "POST", path, { "content-type": "text/plain" }, "x".repeat(MAX_BODY + 1));
    expect(over.status).toBe(413);
    expect(over.headers["content-type"]).toMatch(/^application\/json/);
    // Herald's own answer names its limit.
    expect(JSON.parse(over.body)).toEqual({
      error: { code: "payload_too_large", message: `The body is larger than the limit of ${MAX_BODY} bytes` },
    });

    // Beyond the proxy's client_max_body_size (1m) nginx refuses it, in the same JSON shape.
    const huge = await h2Request(session, "POST", path, { "content-type": "text/plain" }, "x".repeat(2 * 1024 * 1024));
    expect(huge.status).toBe(413);
    expect(huge.headers["content-type"]).toMatch(/^application\/json/);
    expect((JSON.parse(huge.body) as { error: { code: string } }).error.code).toBe("payload_too_large");
  });
});

describe.skipIf(!RUN_NGINX)("X-Forwarded-For through deploy/nginx.conf", () => {
  // Registered before nginx starts, so a Herald whose proxy failed to start is shut down too.
  const started: { herald: RunningHerald; proxy: RunningNginx | undefined; sessions: ClientHttp2Session[] }[] = [];
  afterAll(async () => {
    for (const { herald, proxy, sessions } of started) {
      for (const session of sessions) session.close();
      await proxy?.stop();
      await herald.shutdown();
    }
  });

  /** Herald with a two-publish bucket per client, behind its own nginx; clients connect from the addresses given. */
  async function behindProxy(trustedProxies: string[], clients: string[]) {
    requireNginx();
    const herald = await startAuthServer({ limits: { publish: { rate: 0.001, burst: 2 }, trustedProxies } });
    started.push({ herald, proxy: undefined, sessions: [] });
    const entry = started[started.length - 1] as (typeof started)[number];
    const proxy = await startNginx([upstream(herald.url)]);
    entry.proxy = proxy;
    for (const address of clients) entry.sessions.push(await h2Session(proxy, address));
    return entry.sessions;
  }

  /** The statuses of `count` publishes from one client, each with a forged `X-Forwarded-For` (nginx appends its peer). */
  async function statuses(session: ClientHttp2Session, forged: string, count: number): Promise<number[]> {
    const result: number[] = [];
    for (let i = 0; i < count; i++) {
      result.push((await publishOn(session, "deploy:xff", `as ${forged}`, { "x-forwarded-for": forged })).status);
    }
    return result;
  }

  // The clients connect from 127.0.0.2 and .3, which are not the trusted proxy (nginx reaches Herald from 127.0.0.1).
  it("with limits.trustedProxies, gives each real client its own bucket, which a forged header cannot escape", async () => {
    const [a, b] = (await behindProxy(["127.0.0.1"], ["127.0.0.2", "127.0.0.3"])) as [
      ClientHttp2Session,
      ClientHttp2Session,
    ];
    expect(await statuses(a, "203.0.113.7", 3)).toEqual([201, 201, 429]);
    // Another forged address from the same client: nginx appended the real one, which Herald uses.
    expect(await statuses(a, "203.0.113.9", 1)).toEqual([429]);
    expect(await statuses(b, "203.0.113.7", 2)).toEqual([201, 201]);
  });

  it("without it, every client is the proxy's address and all share one bucket", async () => {
    const [a, b] = (await behindProxy([], ["127.0.0.2", "127.0.0.3"])) as [ClientHttp2Session, ClientHttp2Session];
    expect(await statuses(a, "203.0.113.7", 3)).toEqual([201, 201, 429]);
    expect(await statuses(b, "203.0.113.8", 1)).toEqual([429]);
  });
});

// Asked only when the two-node test can run: a redis-server started here is stopped by its afterAll.
const redis = RUN_NGINX && RUN_BROWSER ? await testRedis() : { reason: "no nginx or no Chromium" };
if ("reason" in redis) console.warn(`nginx two-node test skipped: ${redis.reason}`);

interface FailoverProbe {
  received: WireMessage[];
  gaps: string[];
  opens: number;
}

describe.skipIf("reason" in redis)("two Herald nodes on Redis behind one nginx upstream, in Chromium", () => {
  const prefix = uniquePrefix("deploy-nginx");
  const nodes: HeraldChild[] = [];
  let pairProxy: RunningNginx | undefined;
  let pairSession: ClientHttp2Session | undefined;
  let browser: Browser | undefined;

  afterAll(async () => {
    await browser?.close();
    pairSession?.close();
    for (const node of nodes) {
      node.process.kill("SIGKILL");
      await node.exited;
    }
    await pairProxy?.stop();
    if (!("reason" in redis)) {
      await deleteKeys(redis.url, prefix);
      await redis.stop();
    }
  });

  async function sseConnections(node: HeraldChild): Promise<number> {
    const text = await (await fetch(`${node.url}/metrics`)).text();
    return Number(/^herald_connections\{transport="sse"\} (\d+)/m.exec(text)?.[1] ?? 0);
  }

  /** Publishes through the proxy; retries what no node answered, safely, with an Idempotency-Key. */
  async function publishRetrying(mailbox: string, body: string): Promise<WireMessage> {
    let last = "";
    for (let attempt = 0; attempt < 40; attempt++) {
      const response = await publishOn(pairSession as ClientHttp2Session, mailbox, body, {
        "idempotency-key": body,
      }).catch((error: Error) => ({ status: 0, body: error.message }));
      if (response.status === 201 || response.status === 200) return JSON.parse(response.body) as WireMessage;
      last = `${response.status} ${response.body}`;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`publish of ${body} kept failing: ${last}`);
  }

  it("an EventSource through the proxy resumes exactly once, in order, on the other node after its node is killed", async () => {
    if ("reason" in redis) throw new Error(redis.reason);
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing and CI is set: browser tests must run in CI`);
    const start = async () => {
      // Recorded as each starts, so afterAll kills one even if the other fails to.
      nodes.push(await spawnHerald(["--store", "redis", "--redis-url", redis.url, "--redis-prefix", prefix]));
    };
    await Promise.all([start(), start()]);
    pairProxy = await startNginx(nodes.map((node) => upstream(node.url)));
    pairSession = await h2Session(pairProxy);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    // The certificate is the test's own; only this context trusts it.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`${pairProxy.url}/healthz`);
    const protocol = await page.evaluate(
      () => (performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming).nextHopProtocol,
    );
    expect(protocol).toBe("h2");

    const mailbox = "room:failover";
    await page.evaluate((path) => {
      const probe = window as unknown as FailoverProbe;
      probe.received = [];
      probe.gaps = [];
      probe.opens = 0;
      const source = new EventSource(path);
      // Herald opens every stream with a `cursor` event; a second one means EventSource reconnected.
      source.addEventListener("cursor", () => {
        probe.opens++;
      });
      source.addEventListener("message", (event) => probe.received.push(JSON.parse(event.data)));
      source.addEventListener("gap", (event) => probe.gaps.push(event.data));
    }, `/v1/mailboxes/${mailbox}/events?cursor=now`);
    const read = () =>
      page.evaluate(() => {
        const w = window as unknown as FailoverProbe;
        return { received: w.received, gaps: w.gaps, opens: w.opens };
      });
    let state = await read();
    /** Polls the page until `predicate` holds of what it received. */
    const pageUntil = (what: string, predicate: (seen: FailoverProbe) => boolean, timeoutMs = ARRIVE_MS) =>
      until(
        async () => {
          state = await read();
          return predicate(state);
        },
        () => `${what}; got ${JSON.stringify(state)}`,
        timeoutMs,
        100,
      );
    await pageUntil("the EventSource to open", (seen) => seen.opens >= 1);

    // Which node holds the stream? nginx picked one; each node counts its own SSE connections.
    let holder: HeraldChild | undefined;
    await until(
      async () => {
        const counts = await Promise.all(nodes.map(sseConnections));
        holder = nodes[counts.indexOf(1)];
        return holder !== undefined;
      },
      "a node holding the stream",
      ARRIVE_MS,
      100,
    );
    const survivor = nodes.find((node) => node !== holder) as HeraldChild;

    const acked: WireMessage[] = [];
    const BEFORE = 5;
    const KILL_AT = 9;
    const DURING = 25;
    const TOTAL = 35;
    for (let n = 1; n <= BEFORE; n++) acked.push(await publishRetrying(mailbox, `m${n}`));
    await pageUntil(`the first ${BEFORE} messages`, (seen) => seen.received.length >= BEFORE);
    for (let n = BEFORE + 1; n <= DURING; n++) {
      if (n === KILL_AT) {
        holder?.process.kill("SIGKILL");
        await holder?.exited;
      }
      acked.push(await publishRetrying(mailbox, `m${n}`));
    }
    // EventSource reconnects (Last-Event-ID); nginx finds the dead node refusing and passes it on.
    await pageUntil(
      `the reconnect and ${DURING} messages`,
      (seen) => seen.opens >= 2 && seen.received.length >= DURING,
      ARRIVE_MS * 2,
    );
    expect(await sseConnections(survivor)).toBe(1);
    for (let n = DURING + 1; n <= TOTAL; n++) acked.push(await publishRetrying(mailbox, `m${n}`));
    await pageUntil(`all ${TOTAL} messages`, (seen) => seen.received.length >= TOTAL);
    // A repeat would arrive after the last one; give it a moment.
    await new Promise((resolve) => setTimeout(resolve, 500));
    state = await read();
    expect(state.gaps).toEqual([]);
    expect(state.received.map((m) => m.body)).toEqual(acked.map((_, i) => `m${i + 1}`));
    expect(state.received.map((m) => m.id)).toEqual(acked.map((m) => m.id));
    expect(state.received.map((m) => m.seq)).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
    await context.close();
  }, 120_000);
});

describe("deploy/herald.service", () => {
  const unitPath = new URL("../deploy/herald.service", import.meta.url);
  const unit = readFileSync(unitPath, "utf8");
  /** Every `Key=value` of the unit, in order (a key may repeat). */
  const settings = unit
    .split("\n")
    .filter((line) => /^[A-Za-z]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)] as const);
  const value = (key: string) => settings.find(([name]) => name === key)?.[1];

  it("runs `herald serve` under node with flags Herald accepts, and stops within TimeoutStopSec after the drain", () => {
    const command = (value("ExecStart") ?? "").split(/\s+/);
    expect(command.slice(0, 3)).toEqual(["/usr/bin/node", "/opt/herald/bin/herald.js", "serve"]);
    const config = parseServeConfig(command.slice(3), {});
    expect(config.host).toBe("127.0.0.1");
    expect(Number(value("TimeoutStopSec"))).toBeGreaterThan(config.drainTimeoutSeconds + 5);
    expect(Number(value("TimeoutStopSec"))).toBeGreaterThan(DEFAULT_CONFIG.drainTimeoutSeconds + 5);
    expect(value("KillSignal")).toBe("SIGTERM");
    expect(value("ExecReload")).toBeUndefined();
    // The SQLite directory is the one writable path.
    expect(config.store).toBe("sqlite");
    expect(value("ReadWritePaths")).toBe(config.dataDir);
    expect(Number(value("LimitNOFILE"))).toBeGreaterThanOrEqual(65536);
    for (const [key, expected] of [
      ["NoNewPrivileges", "yes"],
      ["ProtectSystem", "strict"],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
    ]) {
      expect(value(key as string), key).toBe(expected);
    }
  });

  const analyze = spawnSync("systemd-analyze", ["--version"], { stdio: "ignore" }).status === 0;
  it.skipIf(!analyze)("passes systemd-analyze verify", () => {
    const result = spawnSync("systemd-analyze", ["verify", unitPath.pathname], { encoding: "utf8" });
    expect(result.status).toBe(0);
    const complaints = `${result.stdout}${result.stderr}`.split("\n").filter((line) => line.includes("herald.service"));
    expect(complaints).toEqual([]);
  });
});

// Last in the file: the long-poll started in beforeAll has been held while everything above ran.
describe.skipIf(!RUN_NGINX)("a long-poll through deploy/nginx.conf", () => {
  it(
    "does not cut a long-poll of 60 s",
    async () => {
      const { response, elapsedMs, cursor } = await longPoll;
      console.log(`long-poll wait=${LONG_POLL_SECONDS} answered after ${elapsedMs} ms through nginx`);
      expect(response.status).toBe(200);
      expect(JSON.parse(response.body)).toEqual({ messages: [], cursor, gap: false });
      // The one timed assertion here: Herald, not the proxy, ended it, at its full wait.
      expect(elapsedMs).toBeGreaterThanOrEqual(LONG_POLL_SECONDS * 1000 - 1000);
    },
    (LONG_POLL_SECONDS + 60) * 1000,
  );
});
