import { afterAll, afterEach, describe, expect, it } from "vitest";
import { parseCursor } from "../src/core/cursor.js";
import { MAX_LATEST_KEYS } from "../src/core/latest.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { storeBackends } from "./helpers/backends.js";
import { publish, StreamClient, type WireMessage } from "./helpers/clients.js";
import { testRedis } from "./helpers/redis.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

interface LatestJson {
  messages: WireMessage[];
  cursor: string;
}

interface ReadJson extends LatestJson {
  gap: boolean;
}

const redis = await testRedis();
if ("reason" in redis) console.warn(`GET …/latest on Redis skipped: ${redis.reason}`);

const servers: RunningHerald[] = [];
const removals: (() => Promise<void>)[] = [];
const streams: StreamClient[] = [];
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  for (const server of servers.splice(0)) await server.shutdown();
  for (const remove of removals.splice(0)) await remove();
});
afterAll(async () => {
  if (!("reason" in redis)) await redis.stop();
});

async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  const response = await fetch(url, { headers });
  expect(response.status).toBe(200);
  return (await response.json()) as T;
}

/** The seq a single-mailbox cursor stands at (tests may look inside; clients may not). */
function seqOf(cursor: string, mailbox: string): number {
  return parseCursor(cursor, [mailbox]).get(mailbox)?.seq ?? -1;
}

describe.each(storeBackends(redis, "latest"))("GET /v1/mailboxes/{mailbox}/latest on $name", (kind) => {
  const server = async (): Promise<string> => {
    const backend = kind.make();
    removals.push(() => backend.cleanup());
    const started = await startTestServer({ customStore: await backend.open() });
    servers.push(started);
    return started.url;
  };

  it("answers the newest message of each key, with read cursors, and the head as the cursor", async () => {
    const base = await server();
    const box = "metrics:host-1";
    for (const [key, value] of [
      ["cpu", 10],
      ["mem", 50],
      [undefined, 0],
      ["cpu", 12],
      ["price:ACME/usd", 7],
      ["mem", 55],
    ] as const) {
      await publish(base, box, key === undefined ? { body: "no key" } : { key, data: value });
    }
    const response = await fetch(`${base}/v1/mailboxes/${box}/latest`);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const latest = (await response.json()) as LatestJson;
    expect(latest.messages.map((m) => [m.key, m.data, m.seq])).toEqual([
      ["cpu", 12, 4],
      ["price:ACME/usd", 7, 5],
      ["mem", 55, 6],
    ]);
    // Each message and the answer carry the cursors a read of the whole mailbox gives.
    const read = await getJson<ReadJson>(`${base}/v1/mailboxes/${box}/messages`);
    const cursorOfSeq = new Map(read.messages.map((m) => [m.seq, m.cursor]));
    for (const message of latest.messages) expect(message.cursor).toBe(cursorOfSeq.get(message.seq));
    expect(latest.cursor).toBe(read.cursor);
    // Nothing follows the snapshot's cursor yet.
    const after = await getJson<ReadJson>(`${base}/v1/mailboxes/${box}/messages?cursor=${latest.cursor}`);
    expect(after).toMatchObject({ messages: [], gap: false });
  });

  it("bounds the keys by ?limit, keeping the most recently published, and refuses a bad limit", async () => {
    const base = await server();
    for (const key of ["a", "b", "c", "a", "d"]) await publish(base, "feed", { key });
    const two = await getJson<LatestJson>(`${base}/v1/mailboxes/feed/latest?limit=2`);
    expect(two.messages.map((m) => [m.key, m.seq])).toEqual([
      ["a", 4],
      ["d", 5],
    ]);
    expect(seqOf(two.cursor, "feed")).toBe(5);
    for (const limit of ["0", String(MAX_LATEST_KEYS + 1), "2.5", "x", ""]) {
      const response = await fetch(`${base}/v1/mailboxes/feed/latest?limit=${limit}`);
      expect({ limit, status: response.status }).toEqual({ limit, status: 400 });
      expect(await response.json()).toMatchObject({ error: { code: "bad_parameter" } });
    }
    expect((await fetch(`${base}/v1/mailboxes/bad%20name/latest`)).status).toBe(400);
    const post = await fetch(`${base}/v1/mailboxes/feed/latest`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET");
  });

  it("answers a mailbox nobody published to like a read, and its cursor then receives the first message", async () => {
    const base = await server();
    const latest = await getJson<LatestJson>(`${base}/v1/mailboxes/fresh/latest`);
    const read = await getJson<ReadJson>(`${base}/v1/mailboxes/fresh/messages`);
    expect(latest).toEqual({ messages: [], cursor: read.cursor });
    const sse = new StreamClient(`${base}/v1/mailboxes/fresh/events?cursor=${latest.cursor}`);
    streams.push(sse);
    await sse.until(() => sse.events.some((event) => event.event === "cursor"));
    await publish(base, "fresh", { key: "k", body: "first" });
    const [first] = await sse.untilMessages(1);
    expect(first).toMatchObject({ seq: 1, key: "k" });
    expect(sse.events.filter((event) => event.event === "gap")).toEqual([]);
  });

  it("snapshot, then subscribe with its cursor over SSE: nothing missed, nothing twice", async () => {
    const base = await server();
    const box = "dashboard";
    const keys = ["cpu", "mem", "disk", undefined];
    const TOTAL = 60;
    let published = 0;
    let streamOpen: () => void = () => {};
    const opened = new Promise<void>((resolve) => {
      streamOpen = resolve;
    });
    // Publishes keep arriving while the snapshot is taken and the stream replays; the last third
    // waits for the stream to be open, so it arrives live.
    const publishing = (async () => {
      for (let n = 1; n <= TOTAL; n++) {
        if (n === 41) await opened;
        const key = keys[n % keys.length];
        await publish(base, box, key === undefined ? { body: `plain ${n}` } : { key, data: n });
        published = n;
      }
    })();
    await Promise.race([publishing, until(() => published >= 20, "20 publishes")]);
    const snapshot = await getJson<LatestJson>(`${base}/v1/mailboxes/${box}/latest`);
    const sse = new StreamClient(`${base}/v1/mailboxes/${box}/events?cursor=${snapshot.cursor}`);
    streams.push(sse);
    await sse.until(() => sse.events.some((event) => event.event === "cursor"));
    streamOpen();
    await publishing;
    const head = seqOf(snapshot.cursor, box);
    expect(head).toBeGreaterThanOrEqual(20);
    const streamed = await sse.untilMessages(TOTAL - head);
    const all = (await getJson<ReadJson>(`${base}/v1/mailboxes/${box}/messages?limit=1000`)).messages;
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
    // The snapshot is the newest value of each key among the messages up to its cursor...
    const newest = new Map<string, WireMessage>();
    for (const message of all) if (message.seq <= head && message.key !== undefined) newest.set(message.key, message);
    expect(snapshot.messages).toEqual([...newest.values()].sort((x, y) => x.seq - y.seq));
    // ...and the stream from it is exactly every later message, once, in order, without a gap.
    expect(streamed.map((m) => m.seq)).toEqual(all.filter((m) => m.seq > head).map((m) => m.seq));
    expect(sse.events.filter((event) => event.event === "gap")).toEqual([]);
  });
});

describe("GET …/latest with auth", () => {
  it("needs the permission to read the mailbox", async () => {
    const publisher = makeKey("app", ["*"]);
    const herald = await startAuthServer({ auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } } });
    servers.push(herald);
    await publish(herald.url, "user:alice", { key: "status", body: "online" }, bearer(publisher.key));
    const latest = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${herald.url}/v1/mailboxes/${path}/latest`, { headers });
    const alice = await hsToken({ sub: "alice", mailboxes: ["user:alice"] });
    const allowed = await latest("user:alice", bearer(alice));
    expect(allowed.status).toBe(200);
    expect(((await allowed.json()) as LatestJson).messages.map((m) => m.body)).toEqual(["online"]);
    const bob = await hsToken({ sub: "bob", mailboxes: ["user:bob"] });
    const refused = await latest("user:alice", bearer(bob));
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: "forbidden" } });
    expect((await latest("user:alice")).status).toBe(401);
    // The token's query parameter works as for every read.
    expect((await fetch(`${herald.url}/v1/mailboxes/user:alice/latest?token=${alice}`)).status).toBe(200);
  });
});
