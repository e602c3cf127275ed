import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { type BackendKind, storeBackends, type TestBackend } from "./helpers/backends.js";
import { StreamClient } from "./helpers/clients.js";
import { openReader, READER_TRANSPORTS, type ReaderClient } from "./helpers/reader-clients.js";
import { testRedis } from "./helpers/redis.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

/** Server-side filters (`tags`, `priority`, `key`) and `mode=latest`, on every transport and every store. */

interface Item {
  body: string;
  tags?: string[];
  priority?: number;
  key?: string;
}

// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips Redis here.
const redis = await testRedis();
if ("reason" in redis) console.warn(`Redis cases of the delivery view skipped: ${redis.reason}`);
afterAll(async () => {
  if (!("reason" in redis)) await redis.stop();
});

const servers: RunningHerald[] = [];
const backends: TestBackend[] = [];
const clients: { close(): void }[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const server of servers.splice(0)) await server.shutdown();
  for (const backend of backends.splice(0)) await backend.cleanup();
});

async function serve(kind: BackendKind, maxMessages = 1000, maxQueueBytes?: number): Promise<string> {
  const backend = kind.make();
  backends.push(backend);
  const server = await startTestServer({
    customStore: await backend.open(maxMessages),
    config: { maxMessagesPerMailbox: maxMessages, ...(maxQueueBytes ? { maxQueueBytes } : {}) },
  });
  servers.push(server);
  return server.url;
}

/** Publishes items in order, in batches of up to 100 per request and under the 64 KiB body limit. */
async function publishItems(base: string, mailbox: string, items: readonly Item[]): Promise<void> {
  const perRequest = Math.max(1, Math.min(100, Math.floor(48_000 / JSON.stringify(items[0]).length)));
  for (let i = 0; i < items.length; i += perRequest) {
    const response = await fetch(`${base}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: items.slice(i, i + perRequest).map((item) => ({ mailbox, ...item })) }),
    });
    expect(response.status).toBe(201);
  }
}

async function track<T extends { close(): void }>(client: Promise<T>): Promise<T> {
  const opened = await client;
  clients.push(opened);
  return opened;
}

function bodiesOf(client: ReaderClient): string[] {
  return client.of("message").map((frame) => frame.body as string);
}

/** The cursor a client holds after its frames: the last one any frame carried. */
function heldCursor(client: ReaderClient): string {
  const withCursor = client.frames().filter((frame) => typeof frame.cursor === "string");
  return withCursor[withCursor.length - 1]?.cursor as string;
}

const MIXED: Item[] = [
  { body: "a1", tags: ["ci"], priority: 4 },
  { body: "a2", tags: ["ci"], priority: 2 },
  { body: "a3", tags: ["deploy"], priority: 5 },
  { body: "a4", tags: ["other"], priority: 5 },
  { body: "a5" },
  { body: "a6", tags: ["deploy", "x"], priority: 4 },
  { body: "a7", tags: ["ci"] },
];
const WANTED = ["a1", "a3", "a6"];
const FILTER = { tags: "ci,deploy", priority: "4" };

const KINDS = storeBackends(redis, "delivery-view");

describe.each(KINDS.map((kind) => [kind.name, kind] as const))(
  "filters and latest mode on the %s store",
  (_, found) => {
    const kind = (): BackendKind => found;

    it.each(READER_TRANSPORTS)("%s delivers only what passes the filter, replayed and live", async (transport) => {
      const url = await serve(kind());
      await publishItems(url, "feed", MIXED);
      const client = await track(openReader(transport, url, ["feed"], { params: FILTER }));
      await client.until((c) => bodiesOf(c).length === 3, "replayed matches");
      await publishItems(url, "feed", [
        { body: "b1", tags: ["ci"], priority: 1 },
        { body: "b2", tags: ["deploy"], priority: 4 },
        { body: "b3", tags: ["nope"], priority: 5 },
      ]);
      await client.until((c) => bodiesOf(c).length === 4, "live match");
      // The tail (b3) was filtered out: a cursor frame moves the client past it.
      await client.until((c) => c.frames()[c.frames().length - 1]?.type === "cursor", "cursor frame");
      expect(bodiesOf(client)).toEqual([...WANTED, "b2"]);
      const resumed = await track(openReader(transport, url, ["feed"], { params: FILTER, cursor: heldCursor(client) }));
      await publishItems(url, "feed", [{ body: "c1", tags: ["ci"], priority: 5 }]);
      await resumed.until((c) => bodiesOf(c).length === 1, "the next match");
      expect(bodiesOf(resumed)).toEqual(["c1"]);
    });

    it("filters by key on a read and moves the cursor past what it left out", async () => {
      const url = await serve(kind());
      await publishItems(url, "feed", [
        { body: "1", key: "cpu" },
        { body: "2", key: "mem" },
        { body: "3", key: "disk" },
        { body: "4" },
      ]);
      const first = await fetch(`${url}/v1/mailboxes/feed/messages?key=cpu,disk`);
      const answer = (await first.json()) as { messages: { body: string }[]; cursor: string; gap: boolean };
      expect(answer.messages.map((m) => m.body)).toEqual(["1", "3"]);
      const again = await fetch(`${url}/v1/mailboxes/feed/messages?key=cpu,disk&cursor=${answer.cursor}`);
      const second = (await again.json()) as { messages: unknown[]; cursor: string };
      // The cursor already moved past "4": nothing is read again, and it comes back unchanged.
      expect(second.messages).toEqual([]);
      expect(second.cursor).toBe(answer.cursor);
      const head = (await (await fetch(`${url}/v1/mailboxes/feed/messages?cursor=${answer.cursor}`)).json()) as {
        messages: unknown[];
      };
      expect(head.messages).toEqual([]);
    });

    it("a long-poll waits through messages its filter leaves out and answers with the next match", async () => {
      const url = await serve(kind());
      const poll = fetch(`${url}/v1/mailboxes/feed/messages?cursor=now&wait=10&tags=alert`);
      await until(() => servers[0]?.hub.watcherCount("feed") === 1, "the long-poll waits");
      await publishItems(url, "feed", [{ body: "quiet" }]);
      await publishItems(url, "feed", [{ body: "loud", tags: ["alert"] }]);
      const answer = (await (await poll).json()) as { messages: { body: string }[] };
      expect(answer.messages.map((m) => m.body)).toEqual(["loud"]);
    });

    it("messages filtered out and then trimmed are not a gap for the filtered subscriber", async () => {
      const url = await serve(kind(), 5);
      const client = await track(openReader("ndjson", url, ["feed"], { params: { tags: "wanted" } }));
      await publishItems(url, "feed", [{ body: "w1", tags: ["wanted"] }]);
      await client.until((c) => bodiesOf(c).length === 1, "the first match");
      await publishItems(
        url,
        "feed",
        Array.from({ length: 20 }, (_, i) => ({ body: `noise${i}` })),
      );
      await client.until((c) => c.frames()[c.frames().length - 1]?.type === "cursor", "moved past the noise");
      client.close();
      const resumed = await track(
        openReader("sse", url, ["feed"], { params: { tags: "wanted" }, cursor: heldCursor(client) }),
      );
      await publishItems(url, "feed", [{ body: "w2", tags: ["wanted"] }]);
      await resumed.until((c) => bodiesOf(c).length === 1, "the next match");
      expect(resumed.of("gap")).toEqual([]);
      // Without the filter the same cursor did miss messages that are gone: that is a gap.
      const afterFirst = client.of("message")[0]?.cursor as string;
      const unfiltered = await fetch(`${url}/v1/mailboxes/feed/messages?cursor=${afterFirst}`);
      expect(((await unfiltered.json()) as { gap: boolean }).gap).toBe(true);
    });

    it.each(READER_TRANSPORTS)(
      "%s in latest mode resumes with the newest message per key and a notice",
      async (transport) => {
        const url = await serve(kind());
        const items: Item[] = [];
        for (let i = 1; i <= 30; i++) items.push({ body: `${"abc"[i % 3]}${i}`, key: "abc"[i % 3] as string });
        items.splice(10, 0, { body: "plain1" });
        items.push({ body: "plain2" });
        await publishItems(url, "feed", items);
        const client = await track(openReader(transport, url, ["feed"], { params: { mode: "latest" } }));
        await client.until((c) => bodiesOf(c).includes("plain2"), "the conflated replay");
        // Newest per key in publish order; keyless ones are never skipped.
        expect(bodiesOf(client)).toEqual(["plain1", "b28", "c29", "a30", "plain2"]);
        expect(client.of("conflated")).toEqual([{ type: "conflated", mailbox: "feed", skipped: 27 }]);
      },
    );

    it("a read in latest mode answers the newest per key with a conflated list", async () => {
      const url = await serve(kind());
      await publishItems(url, "feed", [
        { body: "x1", key: "x" },
        { body: "y1", key: "y" },
        { body: "x2", key: "x" },
      ]);
      const answer = (await (await fetch(`${url}/v1/mailboxes/feed/messages?mode=latest`)).json()) as {
        messages: { body: string }[];
        conflated: unknown[];
      };
      expect(answer.messages.map((m) => m.body)).toEqual(["y1", "x2"]);
      expect(answer.conflated).toEqual([{ mailbox: "feed", skipped: 1 }]);
    });

    it("a slow latest-mode subscriber is not cut, never sees a stale value, and ends with the newest of every key", async () => {
      const url = await serve(kind(), 10_000, 256 * 1024);
      const stream = new StreamClient(`${url}/v1/mailboxes/feed/stream?mode=latest`);
      clients.push(stream);
      const everything = new StreamClient(`${url}/v1/mailboxes/feed/stream`);
      clients.push(everything);
      await Promise.all([stream.opened, everything.opened]);
      stream.pause();
      everything.pause();
      const padding = "p".repeat(4000);
      const keys = ["k0", "k1", "k2", "k3", "k4"];
      const total = 2500;
      const items: Item[] = [];
      for (let i = 1; i <= total; i++) items.push({ body: `${i} ${padding}`, key: keys[i % keys.length] as string });
      await publishItems(url, "feed", items);
      // The subscriber that wants everything is cut as a slow consumer; the latest-mode one is not.
      everything.resume();
      await everything.until(() => everything.ended, 20_000);
      stream.resume();
      const newest = new Map<string, number>();
      await stream.until(() => {
        for (const message of stream.messages())
          newest.set(message.key as string, Number.parseInt(message.body as string, 10));
        return newest.size === keys.length && [...newest.values()].every((seq) => seq > total - keys.length);
      }, 20_000);
      expect(stream.ended).toBe(false);
      const seen = new Map<string, number>();
      for (const message of stream.messages()) {
        const value = Number.parseInt(message.body as string, 10);
        expect(value).toBeGreaterThan(seen.get(message.key as string) ?? 0);
        seen.set(message.key as string, value);
      }
      expect(stream.messages().length).toBeLessThan(total);
      const notices = stream.objects.filter((frame) => frame.type === "conflated");
      expect(notices.length).toBeGreaterThan(0);
    });
  },
);

describe("filter parameters", () => {
  it("refuses malformed filters and modes with a clear 400", async () => {
    const server = await startTestServer();
    servers.push(server);
    for (const query of ["priority=9", "priority=x", "mode=fast", `key=${encodeURIComponent("a b")}`]) {
      const response = await fetch(`${server.url}/v1/mailboxes/feed/messages?${query}`);
      expect(response.status, query).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("bad_parameter");
    }
  });
});
