import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { MAX_JSON_DEPTH } from "../src/core/json-text.js";
import { MAX_ROWS_PER_READ } from "../src/core/read-plan.js";
import type { RunningHerald } from "../src/server.js";
import type { MailboxStore } from "../src/store/mailbox-store.js";
import { createMemoryStore } from "../src/store/memory-store.js";
import { hsToken, SECRET, startAuthServer } from "./helpers/auth.js";
import { StreamClient, type WireMessage } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

let herald: RunningHerald | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await herald?.shutdown();
  herald = undefined;
});

function running(): RunningHerald {
  if (herald === undefined) throw new Error("no server");
  return herald;
}

/** A memory store that records the `limit` of every read the hub makes. */
function countingStore(): { store: MailboxStore; limits: number[] } {
  const inner = createMemoryStore({ maxMailboxes: 1000, maxMessagesPerMailbox: 1000, maxBytes: 64 * 1024 * 1024 });
  const limits: number[] = [];
  const read: MailboxStore["read"] = (mailbox, position, limit) => {
    limits.push(limit);
    return inner.read(mailbox, position, limit);
  };
  const store = new Proxy(inner, {
    get(target, property) {
      if (property === "read") return read;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store, limits };
}

describe("one-shot reads", () => {
  it("take at most MAX_ROWS_PER_READ rows over all their mailboxes, and still deliver everything in order", async () => {
    const { store, limits } = countingStore();
    herald = await startTestServer({ customStore: store });
    const mailboxes = Array.from({ length: 64 }, (_, i) => `m${i}`);
    const rounds = 20;
    for (let round = 0; round < rounds; round++) {
      const response = await fetch(`${running().url}/v1/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: mailboxes.map((mailbox) => ({ mailbox, body: `${round}:${mailbox}` })) }),
      });
      expect(response.status).toBe(201);
    }
    const query = mailboxes.map((mailbox) => `mailbox=${mailbox}`).join("&");
    const received: string[] = [];
    let cursor = "";
    for (let request = 0; request < 20; request++) {
      limits.length = 0;
      const url = `${running().url}/v1/messages?${query}&limit=1000${cursor ? `&cursor=${cursor}` : ""}`;
      const answer = (await (await fetch(url)).json()) as { messages: WireMessage[]; cursor: string; gap: boolean };
      expect(answer.gap).toBe(false);
      expect(limits.reduce((sum, limit) => sum + limit, 0)).toBeLessThanOrEqual(MAX_ROWS_PER_READ);
      if (answer.messages.length === 0) break;
      received.push(...answer.messages.map((message) => message.body as string));
      cursor = answer.cursor;
    }
    const expected = Array.from({ length: rounds }, (_, round) => mailboxes.map((m) => `${round}:${m}`)).flat();
    expect(received).toEqual(expected);
  });
});

describe("sockets per address", () => {
  function idleSocket(port: number): { socket: Socket; answered: Promise<string>; closed: Promise<void> } {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    let text = "";
    socket.setEncoding("utf8");
    const answered = new Promise<string>((resolve) => {
      socket.on("data", (chunk: string) => {
        text += chunk;
        if (text.includes("\r\n\r\n")) resolve(text);
      });
    });
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    cleanups.push(() => socket.destroy());
    return { socket, answered, closed };
  }

  it("cuts a client address's connections beyond limits.connectionsPerAddress, and lets it back in later", async () => {
    herald = await startAuthServer({ limits: { connectionsPerAddress: 3 } });
    const { port } = running();
    const held = [idleSocket(port), idleSocket(port), idleSocket(port)];
    for (const client of held) expect(await client.answered).toMatch(/^HTTP\/1\.1 200/);
    const refused = idleSocket(port);
    await refused.closed;
    expect(running().access.counters.rateLimited.connection).toBe(1);
    held[0]?.socket.destroy();
    await held[0]?.closed;
    // The server sees the close a moment after the client does: retry until it has.
    let admitted: string | undefined;
    for (let attempt = 0; attempt < 50 && admitted === undefined; attempt++) {
      const next = idleSocket(port);
      admitted = await Promise.race([next.answered, next.closed.then(() => undefined)]);
    }
    expect(admitted).toMatch(/^HTTP\/1\.1 200/);
  });
});

describe("deeply nested JSON", () => {
  const deep = (levels: number) => `{"data":${"[".repeat(levels)}${"]".repeat(levels)}}`;

  it("is a 400 bad_json on publish and on a WebSocket frame, with no unhandled error logged", async () => {
    const logLines: string[] = [];
    herald = await startAuthServer({ logLines });
    const publish = (body: string) =>
      fetch(`${running().url}/v1/mailboxes/m/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    const refused = await publish(deep(20_000));
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "bad_json",
      message: `The body nests deeper than ${MAX_JSON_DEPTH} levels`,
    });
    expect((await publish(deep(MAX_JSON_DEPTH - 1))).status).toBe(201);
    // Brackets inside strings are text, not nesting.
    expect((await publish(JSON.stringify({ body: "[".repeat(10_000) }))).status).toBe(201);

    const ws = new WebSocket(`${running().url.replace(/^http/, "ws")}/v1/ws`);
    const frames: Record<string, unknown>[] = [];
    ws.on("message", (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
    await new Promise((resolve) => ws.once("open", resolve));
    ws.send(`{"type":"publish","mailbox":"m","message":${deep(20_000)}}`);
    await until(() => frames.length > 0, "an answer");
    expect(frames[0]).toMatchObject({ type: "error", code: "bad_json" });
    ws.close();
    expect(logLines.join("\n")).not.toContain("unhandled error");
  });
});

describe("request logs and client addresses", () => {
  it("redact a token parameter whose name is percent-encoded", async () => {
    const logLines: string[] = [];
    herald = await startAuthServer({ auth: { tokens: { hs256Secret: SECRET } }, logLines });
    const token = await hsToken({ mailboxes: ["user:alice"] });
    const read = await fetch(`${running().url}/v1/mailboxes/user:alice/messages?%74oken=${token}&%54OKEN=${token}`);
    expect(read.status).toBe(200);
    await until(() => logLines.some((line) => line.includes("/v1/mailboxes/user:alice/messages")), "the log line");
    const all = logLines.join("\n");
    expect(all).not.toContain(token.split(".")[2]);
    expect(all).toContain("?%74oken=[REDACTED]&%54OKEN=[REDACTED]");
  });

  it("count a client whose forwarded address is not an address as itself, not as the proxy", async () => {
    herald = await startAuthServer({ limits: { streamsPerVisitor: 1, trustedProxies: ["127.0.0.1", "::1"] } });
    const open = async (forwarded: string) => {
      const stream = new StreamClient(`${running().url}/v1/mailboxes/a/events`, { "x-forwarded-for": forwarded });
      cleanups.push(() => stream.close());
      await stream.opened;
      return stream.status;
    };
    expect(await open("unknown-client-a")).toBe(200);
    expect(await open("unknown-client-b")).toBe(200);
    expect(await open("unknown-client-a")).toBe(429);
  });
});
