import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  backoffDelay,
  callbackCursorStore,
  fileCursorStore,
  type HeraldClientError,
  type HeraldMessage,
  publish,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionStatus,
  subscribe,
  type WebSocketConstructor,
} from "../client/src/index.js";
import type { RunningHerald } from "../src/server.js";
import { publishMany } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

/** Records what a subscription delivered and waits for conditions on it. */
class Recorder {
  readonly messages: HeraldMessage[] = [];
  readonly gaps: unknown[] = [];
  readonly statuses: SubscriptionStatus[] = [];
  readonly errors: HeraldClientError[] = [];
  subscription: Subscription | undefined;

  start(url: string, mailboxes: string[], options: SubscribeOptions = {}): this {
    this.subscription = subscribe(
      mailboxes,
      {
        onMessage: (message) => this.messages.push(message),
        onGap: (gap) => this.gaps.push(gap),
        onStatus: (status) => this.statuses.push(status),
        onError: (error) => this.errors.push(error),
      },
      { url, cursorStore: null, ...options },
    );
    return this;
  }

  bodies(): (string | undefined)[] {
    return this.messages.map((message) => message.body);
  }

  get open(): boolean {
    return this.subscription?.status.state === "open";
  }

  async until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out; bodies ${JSON.stringify(this.bodies())}, statuses ${JSON.stringify(this.statuses.slice(-5))}, errors ${this.errors.map((e) => e.message)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  close(): void {
    this.subscription?.close();
  }
}

const cleanups: (() => unknown)[] = [];
let herald: RunningHerald;

async function start(options: Parameters<typeof startTestServer>[0] = {}): Promise<RunningHerald> {
  herald = await startTestServer(options);
  const running = herald;
  cleanups.push(() => running.shutdown());
  return running;
}

function record(url: string, mailboxes: string[], options: SubscribeOptions = {}): Recorder {
  const recorder = new Recorder().start(url, mailboxes, options);
  cleanups.push(() => recorder.close());
  return recorder;
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * Answers /v1/events like a buffering proxy (headers, then nothing) or one that rewrites it ("html"),
 * and passes everything else to Herald.
 */
async function startBufferingProxy(
  target: string,
  mode: "hold" | "html" = "hold",
): Promise<{ url: string; heldStreams: () => number }> {
  const upstream = new URL(target);
  let held = 0;
  const proxy: Server = createServer((req, res) => {
    if ((req.url ?? "").startsWith("/v1/events")) {
      held += 1;
      if (mode === "html") {
        res.writeHead(200, { "Content-Type": "text/html" });
        res.end("<html>Access denied by policy</html>");
        return;
      }
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.flushHeaders();
      return;
    }
    const forward = httpRequest(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        proxy.closeAllConnections();
        proxy.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, heldStreams: () => held };
}

describe("client subscribe", () => {
  it("streams over SSE and reports its status", async () => {
    const server = await start();
    const client = record(server.url, ["user:sse"]);
    await client.until(() => client.open);
    expect(client.subscription?.status).toEqual({ state: "open", transport: "sse", role: "solo" });
    await publishMany(server.url, "user:sse", 3);
    await client.until(() => client.messages.length === 3);
    expect(client.bodies()).toEqual(["m1", "m2", "m3"]);
    expect(server.connections.count("sse", "ndjson")).toBe(1);
  });

  it("resumes from its saved cursor after a restart of the client, without repeats", async () => {
    const server = await start();
    let saved: string | undefined;
    const store = callbackCursorStore(
      () => saved,
      (cursor) => {
        saved = cursor;
      },
    );
    const first = record(server.url, ["user:resume"], { cursorStore: store });
    await publishMany(server.url, "user:resume", 3);
    await first.until(() => first.messages.length === 3);
    first.close();
    await publishMany(server.url, "user:resume", 2, 4);
    const second = record(server.url, ["user:resume"], { cursorStore: store });
    await second.until(() => second.messages.length === 2);
    await publishMany(server.url, "user:resume", 1, 6);
    await second.until(() => second.messages.length === 3);
    expect(second.bodies()).toEqual(["m4", "m5", "m6"]);
  });

  it("keeps its cursor in a file in Node", async () => {
    const server = await start();
    const dir = await mkdtemp(join(tmpdir(), "herald-client-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, "cursor");
    const first = record(server.url, ["user:file"], { cursorStore: fileCursorStore(path) });
    await publishMany(server.url, "user:file", 2);
    await first.until(() => first.messages.length === 2);
    await first.until(() => first.messages[1]?.cursor !== undefined);
    const expected = first.messages[1]?.cursor;
    first.close();
    const deadline = Date.now() + 5000;
    while ((await readFile(path, "utf8").catch(() => "")).trim() !== expected) {
      if (Date.now() > deadline) throw new Error("the cursor file was never written");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await publishMany(server.url, "user:file", 1, 3);
    const second = record(server.url, ["user:file"], { cursorStore: fileCursorStore(path) });
    await second.until(() => second.messages.length === 1);
    expect(second.bodies()).toEqual(["m3"]);
  });

  it("reconnects with its cursor when the server cuts the stream, and drops repeats by id", async () => {
    const server = await start();
    let connects = 0;
    let firstCursor: string | undefined;
    // The second connection asks from an older cursor, as a reconnect racing a write would: the server repeats.
    const racingFetch: typeof fetch = (input, init) => {
      const url = new URL(String(input));
      if (url.pathname === "/v1/events") {
        connects += 1;
        if (connects === 2 && firstCursor) url.searchParams.set("cursor", firstCursor);
      }
      return fetch(url, init);
    };
    const client = record(server.url, ["room:cut"], { fetch: racingFetch, backoff: { baseMs: 20, maxMs: 100 } });
    await client.until(() => client.open);
    await publishMany(server.url, "room:cut", 3);
    await client.until(() => client.messages.length === 3);
    firstCursor = client.messages[0]?.cursor;
    server.connections.endAll("draining");
    await client.until(() => connects === 2 && client.open);
    await publishMany(server.url, "room:cut", 2, 4);
    await client.until(() => client.messages.length === 5);
    await publishMany(server.url, "room:cut", 1, 6);
    await client.until(() => client.messages.length === 6);
    expect(client.bodies()).toEqual(["m1", "m2", "m3", "m4", "m5", "m6"]);
    expect(new Set(client.messages.map((m) => m.id)).size).toBe(6);
  });

  it("retries with backoff until the server comes up, asking the token callback each time", async () => {
    const probe = await start();
    const port = probe.port;
    await probe.shutdown();
    const jitter: number[] = [];
    let tokens = 0;
    const seenAuth: string[] = [];
    const client = record(`http://127.0.0.1:${port}`, ["user:late"], {
      backoff: { baseMs: 20, maxMs: 200 },
      random: () => {
        jitter.push(1);
        return 0.5;
      },
      token: () => `t${++tokens}`,
      fetch: (input, init) => {
        seenAuth.push(new Headers(init?.headers).get("authorization") ?? "");
        return fetch(input, init);
      },
    });
    await client.until(() => client.errors.length >= 3);
    expect(client.errors.every((error) => error.code === "network")).toBe(true);
    expect(jitter.length).toBeGreaterThanOrEqual(3);
    const server = await start({ config: { port } });
    await client.until(() => client.open);
    // An unreachable server is not a reason to give up on SSE.
    expect(client.subscription?.status.transport).toBe("sse");
    await publishMany(server.url, "user:late", 1);
    await client.until(() => client.messages.length === 1);
    expect(tokens).toBeGreaterThanOrEqual(4);
    expect(seenAuth.at(-1)).toBe(`Bearer t${tokens}`);
    expect(new Set(seenAuth).size).toBe(seenAuth.length);
  });

  it("falls back to long-poll when SSE gets no byte through before the deadline", async () => {
    const server = await start();
    const proxy = await startBufferingProxy(server.url);
    const client = record(proxy.url, ["feed:proxied"], { sseDeadlineMs: 300, longPollWaitSeconds: 2 });
    await client.until(() => client.open);
    expect(client.subscription?.status.transport).toBe("long-poll");
    expect(proxy.heldStreams()).toBe(1);
    await publishMany(server.url, "feed:proxied", 2);
    await client.until(() => client.messages.length === 2);
    await publishMany(server.url, "feed:proxied", 1, 3);
    await client.until(() => client.messages.length === 3);
    expect(client.bodies()).toEqual(["m1", "m2", "m3"]);
    expect(server.connections.count("sse", "ndjson")).toBe(0);
  });

  it("falls back to long-poll at once when a proxy answers the event stream with something else", async () => {
    const server = await start();
    const proxy = await startBufferingProxy(server.url, "html");
    const client = record(proxy.url, ["feed:rewritten"], { longPollWaitSeconds: 2 });
    await client.until(() => client.open);
    expect(client.subscription?.status.transport).toBe("long-poll");
    expect(proxy.heldStreams()).toBe(1);
    await publishMany(server.url, "feed:rewritten", 1);
    await client.until(() => client.messages.length === 1);
  });

  it("subscribes over WebSocket when asked, resuming by cursor after a cut", async () => {
    const server = await start();
    const client = record(server.url, ["feed:ws"], {
      transport: "websocket",
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      backoff: { baseMs: 20, maxMs: 100 },
    });
    await client.until(() => client.open);
    expect(client.subscription?.status.transport).toBe("websocket");
    await publishMany(server.url, "feed:ws", 2);
    await client.until(() => client.messages.length === 2);
    server.connections.endAll("draining");
    await publishMany(server.url, "feed:ws", 2, 3);
    await client.until(() => client.messages.length === 4);
    expect(client.bodies()).toEqual(["m1", "m2", "m3", "m4"]);
  });

  it("signals a gap and continues from the earliest retained message", async () => {
    const server = await start({ store: { maxMessagesPerMailbox: 3 } });
    const published = await publishMany(server.url, "feed:gap", 2);
    const cursor = published[0]?.cursor;
    await publishMany(server.url, "feed:gap", 4, 3);
    const client = record(server.url, ["feed:gap"], { cursor });
    await client.until(() => client.messages.length === 3);
    expect(client.gaps).toHaveLength(1);
    expect(client.gaps[0]).toMatchObject({ gaps: [{ mailbox: "feed:gap", reason: "trimmed" }] });
    expect(client.bodies()).toEqual(["m4", "m5", "m6"]);
  });

  it('with cursor "now" delivers only what is published after subscribing', async () => {
    const server = await start();
    await publishMany(server.url, "feed:now", 2);
    const client = record(server.url, ["feed:now"], { cursor: "now" });
    await client.until(() => client.open);
    await publishMany(server.url, "feed:now", 1, 3);
    await client.until(() => client.messages.length === 1);
    expect(client.bodies()).toEqual(["m3"]);
  });
});

describe("client publish and backoff", () => {
  it("publishes with an idempotency key once, and reports errors with the server's code", async () => {
    const server = await start();
    const first = await publish("user:pub", { body: "once" }, { url: server.url, idempotencyKey: "k-1" });
    const again = await publish("user:pub", { body: "once" }, { url: server.url, idempotencyKey: "k-1" });
    expect(again.id).toBe(first.id);
    const text = await publish("user:pub", "plain", { url: server.url });
    expect(text.body).toBe("plain");
    await expect(publish("bad name", "x", { url: server.url })).rejects.toMatchObject({
      status: 400,
      code: "bad_mailbox",
    });
  });

  it("grows the delay exponentially to a ceiling, with jitter within half of it", () => {
    const options = { baseMs: 100, maxMs: 1000 };
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, options, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, options, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
});
