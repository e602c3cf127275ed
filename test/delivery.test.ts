import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bodies, publish, publishMany, StreamClient, type WireMessage } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

let herald: RunningHerald;
let base: string;
let counter = 0;
const fresh = (prefix = "box") => `${prefix}:${++counter}:${Date.now()}`;

beforeAll(async () => {
  herald = await startTestServer();
  base = herald.url;
});
afterAll(async () => {
  await herald.shutdown();
});

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `m${from + i}`);

async function longPoll(path: string): Promise<{ messages: WireMessage[]; cursor: string; gap: boolean }> {
  const response = await fetch(`${base}${path}`);
  expect(response.status).toBe(200);
  return (await response.json()) as { messages: WireMessage[]; cursor: string; gap: boolean };
}

describe("publish then receive", () => {
  it("delivers a live message over SSE with id, event and data", async () => {
    const mailbox = fresh();
    const client = new StreamClient(`${base}/v1/mailboxes/${mailbox}/events?cursor=now`);
    await client.opened;
    expect(client.status).toBe(200);
    expect(client.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(client.headers["cache-control"]).toBe("no-cache");
    expect(client.headers["x-accel-buffering"]).toBe("no");
    await client.until(() => client.raw.startsWith("retry: "));
    const sent = await publish(base, mailbox, { title: "Deploy", body: "done", priority: 4, tags: ["ci"] });
    const [received] = await client.untilMessages(1);
    expect(received).toMatchObject({ id: sent.id, seq: 1, title: "Deploy", body: "done", priority: 4, tags: ["ci"] });
    expect(client.events.find((event) => event.event === "message")?.id).toBe(sent.cursor);
    expect(received?.cursor).toBe(sent.cursor);
    client.close();
  });

  it("delivers over ndjson with a type on every line", async () => {
    const mailbox = fresh();
    const client = new StreamClient(`${base}/v1/mailboxes/${mailbox}/stream`);
    await client.opened;
    expect(client.headers["content-type"]).toBe("application/x-ndjson");
    await client.until(() => client.lines.length >= 1);
    await publish(base, mailbox, "plain text");
    const [received] = await client.untilMessages(1);
    expect(received?.body).toBe("plain text");
    expect(client.objects[0]).toEqual({ type: "cursor", cursor: expect.any(String) });
    client.close();
  });

  it("long-poll wakes on a publish", async () => {
    const mailbox = fresh();
    const polled = longPoll(`/v1/mailboxes/${mailbox}/messages?cursor=now&wait=10`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await publish(base, mailbox, { body: "wake" });
    const answer = await polled;
    expect(bodies(answer.messages)).toEqual(["wake"]);
    expect(answer.gap).toBe(false);
    expect(answer.cursor).toBe(answer.messages[0]?.cursor);
  });

  it("long-poll times out with the request's cursor unchanged", async () => {
    const mailbox = fresh();
    const [last] = await publishMany(base, mailbox, 1);
    const started = Date.now();
    const answer = await longPoll(`/v1/mailboxes/${mailbox}/messages?cursor=${last?.cursor}&wait=0.3`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(answer).toEqual({ messages: [], cursor: last?.cursor, gap: false });
  });

  it("long-poll stops holding as soon as its client leaves", async () => {
    const mailbox = fresh();
    const leaving = new AbortController();
    const polled = fetch(`${base}/v1/mailboxes/${mailbox}/messages?cursor=now&wait=30`, { signal: leaving.signal });
    await until(() => herald.hub.watcherCount(mailbox) === 1, "the long-poll to be held");
    leaving.abort();
    await expect(polled).rejects.toThrow();
    // Long before its 30 s wait is up.
    await until(() => herald.hub.watcherCount(mailbox) === 0, "the held long-poll to be let go", 2000);
  });

  it("long-poll echoes a cursor that does not mention every mailbox unchanged", async () => {
    const a = fresh("a");
    const [only] = await publishMany(base, a, 1);
    const answer = await longPoll(`/v1/messages?mailbox=${a}&mailbox=${fresh("b")}&cursor=${only?.cursor}&wait=0.2`);
    expect(answer).toEqual({ messages: [], cursor: only?.cursor, gap: false });
  });

  it("opens every stream with its cursor, so a drop before the first message loses nothing", async () => {
    const mailbox = fresh();
    await publishMany(base, mailbox, 2);
    const sse = new StreamClient(`${base}/v1/mailboxes/${mailbox}/events?cursor=now`);
    await sse.until(() => sse.events.length >= 1);
    expect(sse.events[0]?.event).toBe("cursor");
    const opening = sse.events[0]?.id as string;
    expect(JSON.parse(sse.events[0]?.data as string)).toEqual({ type: "cursor", cursor: opening });
    sse.close();
    await publish(base, mailbox, { body: "while away" });
    const back = new StreamClient(`${base}/v1/mailboxes/${mailbox}/events?cursor=now`, { "Last-Event-ID": opening });
    expect(bodies(await back.untilMessages(1))).toEqual(["while away"]);
    back.close();
    const ndjson = new StreamClient(`${base}/v1/mailboxes/${mailbox}/stream?cursor=${opening}`);
    await ndjson.until(() => ndjson.lines.length >= 1);
    expect(JSON.parse(ndjson.lines[0] as string)).toEqual({ type: "cursor", cursor: opening });
    expect(bodies(await ndjson.untilMessages(1))).toEqual(["while away"]);
    ndjson.close();
  });

  it("reads from the earliest without a cursor and honours limit", async () => {
    const mailbox = fresh();
    await publishMany(base, mailbox, 5);
    const first = await longPoll(`/v1/mailboxes/${mailbox}/messages?limit=2`);
    expect(bodies(first.messages)).toEqual(["m1", "m2"]);
    expect(first.cursor).toBe(first.messages[1]?.cursor);
    const rest = await longPoll(`/v1/mailboxes/${mailbox}/messages?cursor=${first.cursor}`);
    expect(bodies(rest.messages)).toEqual(["m3", "m4", "m5"]);
    const none = await longPoll(`/v1/mailboxes/${mailbox}/messages?cursor=now`);
    expect(none.messages).toEqual([]);
  });

  it("answers an unknown mailbox with nothing and a usable cursor", async () => {
    const mailbox = fresh();
    const empty = await longPoll(`/v1/mailboxes/${mailbox}/messages`);
    expect(empty.messages).toEqual([]);
    await publish(base, mailbox, { body: "first" });
    const next = await longPoll(`/v1/mailboxes/${mailbox}/messages?cursor=${empty.cursor}`);
    expect(bodies(next.messages)).toEqual(["first"]);
    expect(next.gap).toBe(false);
  });
});

describe("exact resume", () => {
  // Publish 10, disconnect after 3, publish 5 more, reconnect: exactly 4..15 in order.
  for (const transport of ["events", "stream"] as const) {
    it(`resumes exactly over ${transport === "events" ? "SSE (Last-Event-ID)" : "ndjson (?cursor=)"}`, async () => {
      const mailbox = fresh();
      await publishMany(base, mailbox, 10);
      const first = new StreamClient(`${base}/v1/mailboxes/${mailbox}/${transport}`);
      const seen = await first.untilMessages(10);
      first.close();
      const third = seen[2] as WireMessage;
      await publishMany(base, mailbox, 5, 11);
      const url =
        transport === "events"
          ? `${base}/v1/mailboxes/${mailbox}/events?cursor=garbage-is-ignored-when-header-set`
          : `${base}/v1/mailboxes/${mailbox}/stream?cursor=${third.cursor}`;
      const headers: Record<string, string> = transport === "events" ? { "Last-Event-ID": third.cursor } : {};
      const second = new StreamClient(url, headers);
      const resumed = await second.untilMessages(12);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(bodies(second.messages())).toEqual(range(4, 15));
      expect(resumed.map((m) => m.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 4));
      second.close();
    });
  }

  it("resumes exactly over long-poll", async () => {
    const mailbox = fresh();
    await publishMany(base, mailbox, 10);
    const firstPage = await longPoll(`/v1/mailboxes/${mailbox}/messages?limit=3`);
    await publishMany(base, mailbox, 5, 11);
    const got: string[] = [];
    let cursor = firstPage.cursor;
    for (let i = 0; i < 10; i++) {
      const page = await longPoll(`/v1/mailboxes/${mailbox}/messages?cursor=${cursor}&limit=4`);
      if (page.messages.length === 0) break;
      got.push(...(bodies(page.messages) as string[]));
      cursor = page.cursor;
    }
    expect(got).toEqual(range(4, 15));
  });

  it("resumes several mailboxes with one cursor", async () => {
    const a = fresh("a");
    const b = fresh("b");
    await publish(base, a, { body: "a1" });
    await publish(base, b, { body: "b1" });
    await publish(base, a, { body: "a2" });
    const stream = new StreamClient(`${base}/v1/events?mailbox=${a}&mailbox=${b}`);
    const seen = await stream.untilMessages(3);
    expect(bodies(seen)).toEqual(["a1", "b1", "a2"]);
    stream.close();
    await publish(base, b, { body: "b2" });
    await publish(base, a, { body: "a3" });
    const lastCursor = seen[2]?.cursor as string;
    const page = await longPoll(`/v1/messages?mailbox=${a}&mailbox=${b}&cursor=${lastCursor}`);
    expect(bodies(page.messages)).toEqual(["b2", "a3"]);
    expect(page.gap).toBe(false);
    // The same cursor resumes the ndjson form too, and a later cursor resumes after it.
    const ndjson = new StreamClient(`${base}/v1/stream?mailbox=${b}&mailbox=${a}&cursor=${page.messages[0]?.cursor}`);
    expect(bodies(await ndjson.untilMessages(1))).toEqual(["a3"]);
    ndjson.close();
  });

  it("starts a mailbox the cursor does not mention from its earliest message, without a gap", async () => {
    const a = fresh("a");
    const b = fresh("b");
    const [a1] = await publishMany(base, a, 1);
    await publish(base, b, { body: "b-early" });
    const page = await longPoll(`/v1/messages?mailbox=${a}&mailbox=${b}&cursor=${a1?.cursor}`);
    expect(bodies(page.messages)).toEqual(["b-early"]);
    expect(page.gap).toBe(false);
  });
});

describe("concurrency", () => {
  it("loses and duplicates nothing when publishing while a subscriber replays", async () => {
    const mailbox = fresh();
    await publishMany(base, mailbox, 300);
    const client = new StreamClient(`${base}/v1/mailboxes/${mailbox}/events`);
    const publishing = (async () => {
      for (let i = 301; i <= 400; i++) await publish(base, mailbox, { body: `m${i}` });
    })();
    await publishing;
    const all = await client.untilMessages(400, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(client.messages().map((m) => m.seq)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    expect(new Set(all.map((m) => m.id)).size).toBe(400);
    client.close();
  });

  it("delivers concurrent publishes to every subscriber in seq order", async () => {
    const mailbox = fresh();
    const clients = Array.from({ length: 20 }, () => new StreamClient(`${base}/v1/mailboxes/${mailbox}/stream`));
    await Promise.all(clients.map((client) => client.until(() => client.lines.length >= 1)));
    await Promise.all(Array.from({ length: 50 }, (_, i) => publish(base, mailbox, { body: `p${i}` })));
    for (const client of clients) {
      const seqs = (await client.untilMessages(50)).map((m) => m.seq);
      expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      client.close();
    }
  });
});

describe("order across mailboxes", () => {
  it("replays a batch over several mailboxes in the order it was published, as live delivery does", async () => {
    const a = fresh("a");
    const b = fresh("b");
    const live = new StreamClient(`${base}/v1/stream?mailbox=${a}&mailbox=${b}&cursor=now`);
    await live.until(() => live.lines.length >= 1);
    const response = await fetch(`${base}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        messages: [
          { mailbox: b, body: "1" },
          { mailbox: a, body: "2" },
          { mailbox: b, body: "3" },
          { mailbox: a, body: "4" },
        ],
      }),
    });
    expect(response.status).toBe(201);
    expect(bodies(await live.untilMessages(4))).toEqual(["1", "2", "3", "4"]);
    live.close();
    const replay = await longPoll(`/v1/messages?mailbox=${a}&mailbox=${b}`);
    expect(bodies(replay.messages)).toEqual(["1", "2", "3", "4"]);
  });
});
