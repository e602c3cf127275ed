import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningHerald } from "../src/server.js";
import { publish, publishMany } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

type Frame = Record<string, unknown> & { type: string };

/** A `ws` client that records every frame and can wait for a condition on them. */
class WsClient {
  readonly frames: Frame[] = [];
  readonly socket: WebSocket;
  closeCode: number | undefined;
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.socket = new WebSocket(url.replace(/^http/, "ws"), options);
    this.socket.on("message", (data) => this.frames.push(JSON.parse(String(data)) as Frame));
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("open", () => resolve());
      this.socket.once("error", reject);
    });
    this.closed = new Promise((resolve) => {
      this.socket.once("close", (code) => {
        this.closeCode = code;
        resolve(code);
      });
    });
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  ofType(type: string): Frame[] {
    return this.frames.filter((frame) => frame.type === type);
  }

  bodies(): unknown[] {
    return this.ofType("message").map((frame) => frame.body);
  }

  async until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out; frames: ${JSON.stringify(this.frames).slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async untilType(type: string, count = 1): Promise<Frame[]> {
    await this.until(() => this.ofType(type).length >= count);
    return this.ofType(type);
  }

  close(): void {
    this.socket.terminate();
  }
}

let server: RunningHerald | undefined;
const clients: WsClient[] = [];

async function start(config: Parameters<typeof startTestServer>[0] = {}): Promise<RunningHerald> {
  server = await startTestServer(config);
  return server;
}

async function connect(options?: WebSocket.ClientOptions): Promise<WsClient> {
  const client = new WsClient(`${(server as RunningHerald).url}/v1/ws`, options);
  clients.push(client);
  await client.opened;
  return client;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.shutdown();
  server = undefined;
});

describe("GET /v1/ws", () => {
  it("delivers HTTP and WebSocket publishes to a subscriber, with a cursor on each", async () => {
    const herald = await start();
    const client = await connect();
    client.send({ type: "subscribe", mailboxes: ["room:ws"], ref: 1 });
    const [subscribed] = await client.untilType("subscribed");
    expect(subscribed).toEqual({ type: "subscribed", mailboxes: ["room:ws"], cursor: expect.any(String), ref: 1 });
    await publish(herald.url, "room:ws", { body: "over http" });
    client.send({ type: "publish", mailbox: "room:ws", message: { body: "over ws", data: { n: 1 } }, ref: "p1" });
    const messages = await client.untilType("message", 2);
    expect(messages.map((m) => m.body)).toEqual(["over http", "over ws"]);
    expect(messages.every((m) => typeof m.cursor === "string" && m.mailbox === "room:ws")).toBe(true);
    const [published] = await client.untilType("published");
    expect(published?.ref).toBe("p1");
    expect(published?.duplicate).toBe(false);
    expect((published?.message as Frame | undefined)?.body).toBe("over ws");
    expect(herald.connections.count("ws")).toBe(1);
  });

  it("resumes exactly after the cursor of the last message it got", async () => {
    const herald = await start();
    await publishMany(herald.url, "user:resume", 5);
    const first = await connect();
    first.send({ type: "subscribe", mailboxes: ["user:resume"] });
    const seen = await first.untilType("message", 5);
    const cursor = seen[2]?.cursor as string;
    first.close();
    await publishMany(herald.url, "user:resume", 2, 6);
    const second = await connect();
    second.send({ type: "subscribe", mailboxes: ["user:resume"], cursor });
    await second.untilType("message", 4);
    await publish(herald.url, "user:resume", { body: "m8" });
    await second.untilType("message", 5);
    expect(second.bodies()).toEqual(["m4", "m5", "m6", "m7", "m8"]);
  });

  it("sends a gap frame before the retained messages when the cap trimmed some after the cursor", async () => {
    const herald = await start({ config: { maxMessagesPerMailbox: 2 } });
    const [first] = await publishMany(herald.url, "feed:trimmed", 5);
    const client = await connect();
    client.send({ type: "subscribe", mailboxes: ["feed:trimmed"], cursor: first?.cursor });
    await client.untilType("message", 2);
    // A ping answered in order proves nothing else was queued behind the retained messages.
    client.send({ type: "ping", ref: "after" });
    await client.untilType("pong");
    expect(client.frames.map((frame) => frame.type)).toEqual(["subscribed", "gap", "message", "message", "pong"]);
    expect(client.frames[1]).toEqual({
      type: "gap",
      gaps: [{ mailbox: "feed:trimmed", reason: "trimmed" }],
      cursor: expect.any(String),
    });
    expect(client.bodies()).toEqual(["m4", "m5"]);
    expect(client.ofType("message").map((m) => m.seq)).toEqual([4, 5]);
  });

  it("unsubscribes, and a second subscribe replaces the first", async () => {
    const herald = await start();
    const client = await connect();
    client.send({ type: "subscribe", mailboxes: ["a"], cursor: "now" });
    client.send({ type: "subscribe", mailboxes: ["b"], cursor: "now" });
    await client.untilType("subscribed", 2);
    await publish(herald.url, "a", { body: "to a" });
    await publish(herald.url, "b", { body: "to b" });
    await client.untilType("message", 1);
    client.send({ type: "unsubscribe" });
    await client.untilType("unsubscribed");
    await publish(herald.url, "b", { body: "after unsubscribe" });
    client.send({ type: "ping", ref: "last" });
    await client.untilType("pong");
    expect(client.bodies()).toEqual(["to b"]);
    expect(herald.hub.subscriberCount).toBe(0);
  });

  it("answers bad frames with error frames and keeps the connection", async () => {
    await start();
    const client = await connect();
    const cases: [unknown, string][] = [
      ["{not json", "bad_json"],
      [[1, 2], "bad_message"],
      [{ type: "dance" }, "bad_message"],
      [{ type: "subscribe", mailboxes: [] }, "bad_message"],
      [{ type: "subscribe", mailboxes: ["bad name!"] }, "bad_mailbox"],
      [{ type: "subscribe", mailboxes: ["ok"], cursor: "%%%" }, "bad_cursor"],
      [{ type: "subscribe", mailboxes: ["ok"], curser: "x" }, "bad_message"],
      [{ type: "publish", mailbox: "ok", message: { titel: "typo" } }, "bad_message"],
      [{ type: "publish", mailbox: "ok", message: { body: 1 }, ref: "r" }, "bad_message"],
    ];
    for (const [frame, _code] of cases) client.send(frame);
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    const errors = await client.untilType("error", cases.length + 1);
    expect(errors.map((e) => e.code)).toEqual([...cases.map(([, code]) => code), "bad_message"]);
    expect(errors.every((e) => typeof e.message === "string" && (e.message as string).length > 0)).toBe(true);
    expect(errors[8]?.ref).toBe("r");
    client.send({ type: "ping" });
    await client.untilType("pong");
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
  });

  it("refuses a plain GET with a JSON error", async () => {
    const herald = await start();
    const response = await fetch(`${herald.url}/v1/ws`);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("bad_parameter");
  });

  it("cuts a client that stops reading, which then resumes by cursor and loses nothing", async () => {
    const herald = await start({ config: { maxQueueBytes: 64 * 1024, maxBodyBytes: 256 * 1024 } });
    const slow = await connect();
    slow.send({ type: "subscribe", mailboxes: ["feed:big"] });
    await slow.untilType("subscribed");
    await publish(herald.url, "feed:big", { body: "first" });
    const [first] = await slow.untilType("message");
    slow.socket.pause();
    const big = "x".repeat(128 * 1024);
    let sent = 1;
    // The kernel's socket buffers absorb a few MB before the server's own queue grows.
    while (herald.hub.counters.slowConsumersCut === 0 && sent < 400) {
      await publish(herald.url, "feed:big", { body: big, title: String(++sent) });
    }
    expect(herald.hub.counters.slowConsumersCut).toBe(1);
    expect(herald.connections.count("ws")).toBe(0);
    expect(herald.hub.subscriberCount).toBe(0);
    slow.socket.resume();
    await slow.closed;
    const resumed = await connect();
    resumed.send({ type: "subscribe", mailboxes: ["feed:big"], cursor: first?.cursor });
    await resumed.until(() => resumed.ofType("message").length >= sent - 1, 20_000);
    expect(resumed.ofType("message").map((m) => Number(m.title))).toEqual(
      Array.from({ length: sent - 1 }, (_, i) => i + 2),
    );
  });

  it("pings, and terminates a client that stops answering", async () => {
    const herald = await start({ config: { heartbeatSeconds: 0.1 } });
    const lively = await connect();
    let pings = 0;
    lively.socket.on("ping", () => pings++);
    const mute = await connect({ autoPong: false });
    await mute.closed;
    expect(mute.closeCode).toBe(1006);
    expect(pings).toBeGreaterThan(0);
    expect(lively.socket.readyState).toBe(WebSocket.OPEN);
    expect(herald.connections.count("ws")).toBe(1);
  });

  it("closes with 1001 when the server drains", async () => {
    const herald = await start();
    const idle = await connect();
    const subscribed = await connect();
    subscribed.send({ type: "subscribe", mailboxes: ["x"] });
    await subscribed.untilType("subscribed");
    await herald.shutdown();
    expect(await idle.closed).toBe(1001);
    expect(await subscribed.closed).toBe(1001);
  });
});
