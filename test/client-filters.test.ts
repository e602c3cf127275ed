import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type ConflatedEvent,
  type CursorStore,
  type GapEvent,
  type HeraldClientError,
  type HeraldMessage,
  latest,
  type SubscribeOptions,
  type Subscription,
  subscribe,
  type TransportName,
} from "../client/src/index.js";
import type { RunningHerald } from "../src/server.js";
import { publishBatch } from "./helpers/batch.js";
import { testClientOptions } from "./helpers/client-options.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

/** The client's filters, cursor frames, `mode: "latest"` and `latest()`, against a real server. */

const TRANSPORTS: readonly TransportName[] = ["sse", "long-poll", "websocket"];

interface Item {
  body: string;
  tags?: string[];
  priority?: number;
  key?: string;
}

/** One subscription and everything it heard. */
interface Watched {
  readonly subscription: Subscription;
  readonly messages: HeraldMessage[];
  readonly gaps: GapEvent[];
  readonly conflated: ConflatedEvent[];
  readonly errors: HeraldClientError[];
  bodies(): (string | undefined)[];
}

let herald: RunningHerald;
beforeAll(async () => {
  herald = await startTestServer();
});
afterAll(() => herald?.shutdown());
const subscriptions: Subscription[] = [];
afterEach(() => {
  for (const subscription of subscriptions.splice(0)) subscription.close();
});

function watch(url: string, mailbox: string, options: SubscribeOptions): Watched {
  const seen = { messages: [] as HeraldMessage[], gaps: [] as GapEvent[], conflated: [] as ConflatedEvent[] };
  const errors: HeraldClientError[] = [];
  const subscription = subscribe(
    [mailbox],
    {
      onMessage: (message) => seen.messages.push(message),
      onGap: (gap) => seen.gaps.push(gap),
      onConflated: (event) => seen.conflated.push(event),
      onError: (error) => errors.push(error),
    },
    { ...testClientOptions(url), ...options },
  );
  subscriptions.push(subscription);
  return { subscription, ...seen, errors, bodies: () => seen.messages.map((message) => message.body) };
}

/** A cursor store that remembers what was saved under which key. */
function memoryStore(): CursorStore & { saved: Map<string, string> } {
  const saved = new Map<string, string>();
  return {
    saved,
    load: (key) => saved.get(key),
    save: (key, cursor) => {
      saved.set(key, cursor);
    },
  };
}

const show = (watched: Watched) => () =>
  `bodies ${JSON.stringify(watched.bodies())}, conflated ${JSON.stringify(watched.conflated)}, ` +
  `errors ${watched.errors.map((error) => error.message).join("; ")}`;

describe.each(TRANSPORTS)("client filters and latest mode over %s", (transport) => {
  /** The server is shared: each transport's tests have mailboxes of their own. */
  const box = (name: string) => `${name}:${transport}`;

  it("delivers only messages that pass the filter, retained and live", async () => {
    await publishBatch(herald.url, box("feed:f"), [
      { body: "a1", tags: ["ci"], priority: 4 },
      { body: "a2", tags: ["ci"], priority: 2 },
      { body: "a3", tags: ["deploy"], priority: 5 },
      { body: "a4", tags: ["other"], priority: 5 },
      { body: "a5" },
    ]);
    const filtered = watch(herald.url, box("feed:f"), { transport, filter: { tags: ["deploy", "ci"], priority: 4 } });
    const byKey = watch(herald.url, box("feed:f"), { transport, filter: { key: ["cpu", "disk"] } });
    await until(() => filtered.messages.length === 2, show(filtered));
    await until(() => byKey.subscription.status.state === "open", show(byKey));
    await publishBatch(herald.url, box("feed:f"), [
      { body: "b1", tags: ["ci"], priority: 3 },
      { body: "b2", tags: ["ci"], priority: 4, key: "cpu" },
      { body: "b3", key: "mem" },
      { body: "b4", key: "disk" },
    ]);
    await until(() => filtered.messages.length === 3 && byKey.messages.length === 2, show(filtered));
    expect(filtered.bodies()).toEqual(["a1", "a3", "b2"]);
    expect(byKey.bodies()).toEqual(["b2", "b4"]);
    expect(byKey.messages.map((message) => message.key)).toEqual(["cpu", "disk"]);
    expect([...filtered.gaps, ...byKey.gaps]).toEqual([]);
  });

  it("adopts the cursor past a filtered-out tail: a resume neither repeats nor reports a gap", async () => {
    const store = memoryStore();
    const options: SubscribeOptions = { transport, filter: { tags: ["wanted"] }, cursorStore: store };
    const first = watch(herald.url, box("feed:tail"), options);
    await until(() => first.subscription.status.state === "open", show(first));
    await publishBatch(herald.url, box("feed:tail"), [{ body: "w1", tags: ["wanted"] }]);
    await until(() => first.messages.length === 1, show(first));
    const afterMatch = first.messages[0]?.cursor;
    // Noise that expires soon: a cursor left after w1 would find it gone, which is a gap.
    const noise = Array.from({ length: 4 }, (_, i) => ({ body: `noise${i}`, ttl: 0.5 }));
    await publishBatch(herald.url, box("feed:tail"), noise);
    // The server says where the filter moved the subscription; the client saves it and tells no handler.
    await until(
      () => first.subscription.cursor !== afterMatch && [...store.saved.values()][0] === first.subscription.cursor,
      () => `cursor still after the match; ${show(first)()}`,
    );
    first.subscription.close();
    expect(first.bodies()).toEqual(["w1"]);
    expect(first.gaps).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 600));
    const gone = await fetch(`${herald.url}/v1/mailboxes/${box("feed:tail")}/messages?cursor=${afterMatch}`);
    expect(((await gone.json()) as { gap: boolean }).gap).toBe(true);

    await publishBatch(herald.url, box("feed:tail"), [{ body: "w2", tags: ["wanted"] }]);
    const second = watch(herald.url, box("feed:tail"), options);
    await until(() => second.messages.length === 1, show(second));
    await publishBatch(herald.url, box("feed:tail"), [{ body: "w3", tags: ["wanted"] }]);
    await until(() => second.messages.length === 2, show(second));
    expect(second.bodies()).toEqual(["w2", "w3"]);
    expect(second.gaps).toEqual([]);
    // Saved under a key of its own filter: an unfiltered subscription of the mailbox never resumes from it.
    expect([...store.saved.keys()]).toEqual([`${herald.url}|${box("feed:tail")}?tags=wanted`]);
  });

  it("in latest mode resumes with the newest message per key and tells onConflated", async () => {
    const items: Item[] = [{ body: "x0", key: "x" }];
    for (let i = 1; i <= 30; i++) items.push({ body: `${"abc"[i % 3]}${i}`, key: "abc"[i % 3] as string });
    items.splice(10, 0, { body: "plain1" });
    items.push({ body: "plain2" });
    await publishBatch(herald.url, box("feed:latest"), items);
    const response = await fetch(`${herald.url}/v1/mailboxes/${box("feed:latest")}/messages?limit=1`);
    const afterFirst = ((await response.json()) as { messages: HeraldMessage[] }).messages[0]?.cursor;
    const watched = watch(herald.url, box("feed:latest"), { transport, mode: "latest", cursor: afterFirst });
    await until(() => watched.bodies().includes("plain2"), show(watched));
    // Newest per key in publish order; keyless ones are never skipped.
    expect(watched.bodies()).toEqual(["plain1", "b28", "c29", "a30", "plain2"]);
    expect(watched.conflated).toEqual([{ mailbox: box("feed:latest"), skipped: 27 }]);
    // Live messages the subscription keeps up with all arrive. (A long-poll that finds two values of a key
    // after its cursor gets the newer only, so they are published one at a time.)
    await publishBatch(herald.url, box("feed:latest"), [{ body: "a31", key: "a" }]);
    await until(() => watched.messages.length === 6, show(watched));
    await publishBatch(herald.url, box("feed:latest"), [{ body: "a32", key: "a" }]);
    await until(() => watched.messages.length === 7, show(watched));
    expect(watched.bodies().slice(5)).toEqual(["a31", "a32"]);
    expect(watched.conflated).toHaveLength(1);
  });

  it("shows a latest() snapshot, then subscribes from its cursor: nothing missed, nothing twice", async () => {
    await publishBatch(herald.url, box("feed:snap"), [
      { body: "cpu 10", key: "cpu" },
      { body: "mem 50", key: "mem" },
      { body: "hello" },
      { body: "cpu 12", key: "cpu" },
    ]);
    const snapshot = await latest(box("feed:snap"), { url: herald.url });
    expect(snapshot.messages.map((message) => message.body)).toEqual(["mem 50", "cpu 12"]);
    expect(snapshot.messages.every((message) => typeof message.cursor === "string")).toBe(true);
    await publishBatch(herald.url, box("feed:snap"), [{ body: "cpu 13", key: "cpu" }]);
    const watched = watch(herald.url, box("feed:snap"), { transport, mode: "latest", cursor: snapshot.cursor });
    await until(() => watched.messages.length === 1, show(watched));
    await publishBatch(herald.url, box("feed:snap"), [{ body: "mem 55", key: "mem" }]);
    await until(() => watched.messages.length === 2, show(watched));
    expect(watched.bodies()).toEqual(["cpu 13", "mem 55"]);
    expect(watched.conflated).toEqual([]);
    expect(watched.gaps).toEqual([]);
  });
});

describe("latest()", () => {
  it("bounds the keys with limit, answers an unknown mailbox empty, and throws the server's errors", async () => {
    await publishBatch(herald.url, "feed:keys", [
      { body: "1", key: "a" },
      { body: "2", key: "b" },
      { body: "3", key: "c" },
    ]);
    const two = await latest("feed:keys", { url: herald.url, limit: 2 });
    expect(two.messages.map((message) => message.key)).toEqual(["b", "c"]);
    const none = await latest("feed:nobody", { url: herald.url });
    expect(none.messages).toEqual([]);
    expect(typeof none.cursor).toBe("string");
    await expect(latest("bad name", { url: herald.url })).rejects.toMatchObject({ status: 400, code: "bad_mailbox" });
    await expect(latest("feed:keys", { url: herald.url, limit: 0 })).rejects.toMatchObject({
      status: 400,
      code: "bad_parameter",
    });
  });
});

describe("subscribe options", () => {
  it("refuses a filter the server would refuse, before connecting", () => {
    const options = { url: "http://127.0.0.1:1", cursorStore: null };
    expect(() => subscribe(["a"], { onMessage() {} }, { ...options, filter: { priority: 9 } })).toThrow(
      /priority must be an integer from 1 to 5/,
    );
    expect(() => subscribe(["a"], { onMessage() {} }, { ...options, mode: "fast" as "latest" })).toThrow(
      /mode must be "all" or "latest"/,
    );
  });
});
