import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { spawnHerald } from "./helpers/child.js";
import { bodies, publish, publishMany, readAfter, StreamClient, type WireMessage } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const servers: RunningHerald[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.shutdown()));
});

describe("slow consumers", () => {
  it("cuts a stalled consumer, which then resumes exactly from its cursor", async () => {
    const herald = await startTestServer({
      config: { maxQueueBytes: 64 * 1024, maxBodyBytes: 256 * 1024, maxMessagesPerMailbox: 10_000 },
    });
    servers.push(herald);
    const base = herald.url;
    await publishMany(base, "firehose", 3);
    // A raw socket that reads the first three events, then stops reading altogether.
    const { port } = new URL(base);
    const socket = connect(Number(port), "127.0.0.1");
    socket.write(`GET /v1/mailboxes/firehose/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    let received = "";
    await new Promise<void>((resolve) => {
      socket.on("data", (chunk) => {
        received += chunk.toString();
        if ((received.match(/event: message/g) ?? []).length >= 3) {
          socket.pause();
          resolve();
        }
      });
    });
    const lastId = [...received.matchAll(/^id: (.+)$/gm)].map((match) => match[1]).pop() as string;
    const big = "z".repeat(100 * 1024);
    let published = 3;
    while (herald.hub.counters.slowConsumersCut === 0 && published < 400) {
      await publish(base, "firehose", { body: big });
      published += 1;
    }
    expect(herald.hub.counters.slowConsumersCut).toBe(1);
    expect(herald.connections.count("sse", "ndjson")).toBe(0);
    socket.destroy();
    const resumed = new StreamClient(`${base}/v1/mailboxes/firehose/events`, { "Last-Event-ID": lastId });
    const messages = await resumed.untilMessages(published - 3, 20_000);
    expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: published - 3 }, (_, i) => i + 4));
    resumed.close();
  });
});

describe("consumers that stop reading during a catch-up from the store", () => {
  it("are cut once the send timeout passes without progress, and resume exactly from their cursor", async () => {
    const herald = await startTestServer({
      config: {
        maxQueueBytes: 64 * 1024,
        maxBodyBytes: 256 * 1024,
        maxMessagesPerMailbox: 10_000,
        sendTimeoutSeconds: 0.3,
      },
    });
    servers.push(herald);
    const base = herald.url;
    // Far more history than the queue bound and the kernel's socket buffers hold.
    const big = "h".repeat(100 * 1024);
    const total = 80;
    for (let i = 0; i < total; i++) await publish(base, "history", { body: big });
    const stalled = new StreamClient(`${base}/v1/mailboxes/history/events`);
    await stalled.untilMessages(3, 10_000);
    stalled.pause();
    const deadline = Date.now() + 10_000;
    while (herald.hub.counters.slowConsumersCut === 0 && Date.now() < deadline) await sleep(50);
    expect(herald.hub.counters.slowConsumersCut).toBe(1);
    await until(() => herald.connections.count("sse") === 0, "the stalled stream to close");
    const held = stalled.messages();
    expect(held.length).toBeLessThan(total);
    stalled.close();
    const last = held.at(-1) as WireMessage;
    // One read, not a stream: a test process busy parsing megabytes could itself look stalled to a 0.3 s timeout.
    const rest = await readAfter(base, "history", last.cursor);
    expect(rest.map((m) => m.seq)).toEqual(Array.from({ length: total - last.seq }, (_, i) => last.seq + 1 + i));
  });
});

describe("drain", () => {
  it("turns /readyz to 503 and refuses publishes with Retry-After while draining", async () => {
    const herald = await startTestServer();
    servers.push(herald);
    await herald.hub.drain();
    const ready = await fetch(`${herald.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.headers.get("connection")).toBe("close");
    const refused = await fetch(`${herald.url}/v1/mailboxes/x/messages`, { method: "POST", body: "late" });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("draining");
  });

  it("on SIGTERM lets an in-flight publish finish and refuses new connections", async () => {
    const child = await spawnHerald([]);
    try {
      const { hostname, port } = new URL(child.url);
      const body = JSON.stringify({ body: "in flight" });
      const socket = connect(Number(port), hostname);
      let answer = "";
      socket.on("data", (chunk) => {
        answer += chunk.toString();
      });
      const ended = new Promise<void>((resolve) => socket.on("close", () => resolve()));
      socket.write(
        `POST /v1/mailboxes/drain-publish/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      child.process.kill("SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 200));
      const refused = await fetch(`${child.url}/healthz`).then(
        () => "answered",
        () => "refused",
      );
      expect(refused).toBe("refused");
      socket.write(body.slice(5));
      await ended;
      expect(answer).toMatch(/^HTTP\/1\.1 201 /);
      expect(answer).toMatch(/\r\nconnection: close\r\n/i);
      expect(answer).toContain('"body":"in flight"');
      expect(await child.exited).toBe(0);
    } finally {
      child.process.kill("SIGKILL");
    }
  });

  it("on SIGTERM answers held long-polls, ends streams and exits 0", async () => {
    const child = await spawnHerald([]);
    try {
      const [first] = await publishMany(child.url, "drain", 2);
      const stream = new StreamClient(`${child.url}/v1/mailboxes/drain/events`);
      await stream.untilMessages(2);
      const held = fetch(`${child.url}/v1/mailboxes/drain/messages?cursor=now&wait=30`);
      const heldAfter = fetch(`${child.url}/v1/mailboxes/drain/messages?cursor=${first?.cursor}&wait=30`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = Date.now();
      child.process.kill("SIGTERM");
      const answer = await held;
      expect(answer.status).toBe(200);
      expect(answer.headers.get("connection")).toBe("close");
      expect(((await answer.json()) as { messages: unknown[] }).messages).toEqual([]);
      expect(bodies(((await (await heldAfter).json()) as { messages: { body: string }[] }).messages)).toEqual(["m2"]);
      await stream.closed;
      expect(stream.ended).toBe(true);
      expect(await child.exited).toBe(0);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      child.process.kill("SIGKILL");
    }
  });
});
