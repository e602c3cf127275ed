import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../../src/server.js";
import type { MailboxStore } from "../../src/store/mailbox-store.js";
import { type BackendKind, storeBackends, type TestBackend } from "../helpers/backends.js";
import { testRedis } from "../helpers/redis.js";
import { startTestServer } from "../helpers/server.js";
import { NtfySocket, ntfyPublish, ntfyPublishOk, TextStream } from "./ntfy-clients.js";

const redis = await testRedis();
/** Messages each topic keeps, so that a resume from the first of a dozen is a gap. */
const CAP = 5;

// Skips Redis only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// HERALD_REQUIRE_REDIS=1 (CI) makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`ntfy API on Redis skipped: ${redis.reason}`);
  describe.skip(`ntfy API on Redis (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
}
afterAll(async () => {
  if (!("reason" in redis)) await redis.stop();
});

const backends = storeBackends(redis, "ntfy").filter((kind) => kind.name !== "sqlite");
let topicCount = 0;
/** A topic no other test touches. */
function topic(label: string): string {
  topicCount += 1;
  return `${label}-${topicCount}-${Date.now().toString(36)}`;
}

function suite(kind: BackendKind): void {
  describe(`ntfy API on ${kind.name}`, () => {
    let backend: TestBackend;
    let store: MailboxStore;
    let herald: RunningHerald;
    let base: string;

    beforeAll(async () => {
      backend = kind.make();
      store = await backend.open(CAP);
      herald = await startTestServer({
        customStore: store,
        config: { heartbeatSeconds: 0.2, maxMessagesPerMailbox: CAP },
      });
      base = herald.url;
    });
    afterAll(async () => {
      await herald.shutdown();
      await store.close();
      await backend.cleanup();
    });

    describe("publishing", () => {
      it("takes the body and ntfy's headers, answers ntfy's JSON, and Herald's own API sees the message", async () => {
        const name = topic("alerts");
        const sent = await ntfyPublishOk(base, name, "Disk full", {
          Title: "Server",
          Priority: "urgent",
          Tags: "warning, skull",
          Click: "https://example.com/disk",
        });
        expect(sent).toMatchObject({
          event: "message",
          topic: name,
          message: "Disk full",
          title: "Server",
          priority: 5,
          tags: ["warning", "skull"],
          click: "https://example.com/disk",
        });
        expect(typeof sent.id).toBe("string");
        expect(sent.expires).toBeGreaterThan(sent.time);
        const read = await fetch(`${base}/v1/mailboxes/${name}/messages`);
        const { messages } = (await read.json()) as { messages: Record<string, unknown>[] };
        expect(messages).toHaveLength(1);
        expect(messages[0]).toMatchObject({
          body: "Disk full",
          title: "Server",
          priority: 5,
          tags: ["warning", "skull"],
          data: { click: "https://example.com/disk" },
        });
      });

      it("reads the X- and one-letter headers, the query forms, priority names, and 'triggered' for an empty body", async () => {
        const name = topic("forms");
        const short = await ntfyPublishOk(base, name, "", { t: "Short", p: "max", ta: "a" });
        expect(short).toMatchObject({ message: "triggered", title: "Short", priority: 5, tags: ["a"] });
        const prefixed = await ntfyPublishOk(base, name, "x", { "X-Title": "Prefixed", "X-Priority": "low" });
        expect(prefixed).toMatchObject({ title: "Prefixed", priority: 2 });
        const query = await fetch(
          `${base}/ntfy/${name}?title=Q&priority=high&tags=a,b&message=from%20the%20query&click=https://x.example`,
          { method: "POST" },
        );
        expect(query.status).toBe(200);
        expect(await query.json()).toMatchObject({
          title: "Q",
          priority: 4,
          tags: ["a", "b"],
          message: "from the query",
          click: "https://x.example",
        });
        // Absent fields are left out, as ntfy leaves them out.
        const plain = await ntfyPublishOk(base, name, "plain");
        expect(Object.keys(plain).sort()).toEqual(["event", "expires", "id", "message", "time", "topic"]);
      });

      it("ignores a browser's RFC 9218 Priority header", async () => {
        const sent = await ntfyPublishOk(base, topic("rfc9218"), "hi", { Priority: "u=1, i" });
        expect(sent.priority).toBeUndefined();
      });

      it("publishes JSON at the prefix, with or without a trailing slash", async () => {
        const name = topic("json");
        for (const path of ["/ntfy", "/ntfy/"]) {
          const response = await fetch(`${base}${path}`, {
            method: "POST",
            body: JSON.stringify({
              topic: name,
              message: "JSON body",
              title: "T",
              tags: ["x"],
              priority: 4,
              click: "https://c.example",
              actions: [{ action: "view", label: "Open", url: "https://o.example" }],
            }),
          });
          expect(response.status).toBe(200);
          expect(await response.json()).toMatchObject({
            topic: name,
            message: "JSON body",
            title: "T",
            tags: ["x"],
            priority: 4,
            click: "https://c.example",
            actions: [{ action: "view", label: "Open", url: "https://o.example" }],
          });
        }
        const empty = await fetch(`${base}/ntfy`, { method: "POST", body: JSON.stringify({ topic: name }) });
        expect(await empty.json()).toMatchObject({ message: "triggered" });
      });

      it("answers clear 400s: bad topic, priority, JSON field, delay, unsupported feature", async () => {
        const cases: [Promise<Response>, string][] = [
          [ntfyPublish(base, "no%20spaces", "x"), "bad_mailbox"],
          [ntfyPublish(base, "a".repeat(65), "x"), "bad_mailbox"],
          [ntfyPublish(base, topic("bad"), "x", { Priority: "6" }), "bad_parameter"],
          [ntfyPublish(base, topic("bad"), "x", { Delay: "tomorrow, 10am" }), "bad_parameter"],
          [ntfyPublish(base, topic("bad"), "x", { Attach: "https://f.example/a.jpg" }), "bad_parameter"],
          [ntfyPublish(base, topic("bad"), "x", { Email: "a@b.example" }), "bad_parameter"],
          [fetch(`${base}/ntfy`, { method: "POST", body: '{"topic":"ok","mesage":"typo"}' }), "bad_message"],
          [fetch(`${base}/ntfy`, { method: "POST", body: '{"message":"no topic"}' }), "bad_mailbox"],
          [fetch(`${base}/ntfy`, { method: "POST", body: "not json" }), "bad_json"],
        ];
        for (const [pending, code] of cases) {
          const response = await pending;
          expect(response.status).toBe(400);
          expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
        }
      });

      it("schedules with Delay (a duration or a Unix time) through Herald's scheduled delivery", async () => {
        const name = topic("later");
        const before = Math.floor(Date.now() / 1000);
        const delayed = await ntfyPublishOk(base, name, "in half an hour", { Delay: "30m" });
        expect(delayed.time).toBeGreaterThanOrEqual(before + 1800);
        expect(delayed.time).toBeLessThanOrEqual(before + 1802);
        const at = before + 3600;
        const timed = await ntfyPublishOk(base, name, "at a time", { "X-Delay": String(at) });
        expect(timed.time).toBe(at);
        const worded = await fetch(`${base}/ntfy/${name}?delay=2%20hours`, { method: "POST", body: "worded" });
        expect(worded.status).toBe(200);
        const listed = await fetch(`${base}/v1/mailboxes/${name}/scheduled`);
        const { scheduled } = (await listed.json()) as { scheduled: { id: string; body: string }[] };
        expect(scheduled.map((entry) => entry.body)).toEqual(["in half an hour", "at a time", "worded"]);
        expect(scheduled[0]?.id).toBe(delayed.id);
        // Nothing was stored yet.
        const read = await fetch(`${base}/v1/mailboxes/${name}/messages`);
        expect(((await read.json()) as { messages: unknown[] }).messages).toEqual([]);
      });
    });

    describe("subscribing", () => {
      it("streams JSON lines: open first, live only without since, then messages, and keepalives", async () => {
        const name = topic("live");
        await ntfyPublishOk(base, name, "before");
        const stream = await TextStream.open(`${base}/ntfy/${name}/json`);
        expect(stream.status).toBe(200);
        expect(stream.contentType).toContain("application/x-ndjson");
        await stream.waitFor((s) => s.events.length >= 1, "the open event");
        expect(stream.events[0]).toMatchObject({ event: "open", topic: name });
        const sent = await ntfyPublishOk(base, name, "after", { Title: "T" });
        await stream.waitFor((s) => s.messages().length >= 1, "the live message");
        await stream.waitFor((s) => s.events.some((e) => e.event === "keepalive"), "a keepalive");
        await stream.close();
        expect(stream.messages()).toEqual([sent]);
        const keepalive = stream.events.find((e) => e.event === "keepalive");
        expect(keepalive).toMatchObject({ topic: name });
        expect(typeof keepalive?.time).toBe("number");
      });

      it("serves several topics in one stream, each message naming its topic", async () => {
        const a = topic("multi-a");
        const b = topic("multi-b");
        const stream = await TextStream.open(`${base}/ntfy/${a},${b}/json`);
        await stream.waitFor((s) => s.events.length >= 1, "the open event");
        expect(stream.events[0]).toMatchObject({ event: "open", topic: `${a},${b}` });
        await ntfyPublishOk(base, a, "to a");
        await ntfyPublishOk(base, b, "to b");
        await stream.waitFor((s) => s.messages().length >= 2, "both messages");
        await stream.close();
        expect(stream.messages().map((m) => [m.topic, m.message])).toEqual([
          [a, "to a"],
          [b, "to b"],
        ]);
      });

      it("answers what is stored with poll=1 and ends, in every format", async () => {
        const name = topic("poll");
        const one = await ntfyPublishOk(base, name, "one");
        const two = await ntfyPublishOk(base, name, "two\nlines");
        const json = await fetch(`${base}/ntfy/${name}/json?poll=1`);
        const lines = (await json.text())
          .trim()
          .split("\n")
          .map((line) => JSON.parse(line));
        expect(lines).toEqual([one, two]);
        const sse = await fetch(`${base}/ntfy/${name}/sse?poll=1`);
        expect(sse.headers.get("content-type")).toContain("text/event-stream");
        expect(await sse.text()).toBe(
          `id: ${one.id}\ndata: ${JSON.stringify(one)}\n\nid: ${two.id}\ndata: ${JSON.stringify(two)}\n\n`,
        );
        const raw = await fetch(`${base}/ntfy/${name}/raw?poll=1`);
        expect(raw.headers.get("content-type")).toContain("text/plain");
        expect(await raw.text()).toBe("one\ntwo lines\n");
        const since = await fetch(`${base}/ntfy/${name}/json?poll=1&since=${one.id}`);
        expect(
          (await since.text())
            .trim()
            .split("\n")
            .map((line) => JSON.parse(line)),
        ).toEqual([two]);
      });

      it("resumes exactly from since=<id>, also across several topics", async () => {
        const a = topic("resume-a");
        const b = topic("resume-b");
        const a1 = await ntfyPublishOk(base, a, "a1");
        await new Promise((resolve) => setTimeout(resolve, 5));
        const b1 = await ntfyPublishOk(base, b, "b1");
        const a2 = await ntfyPublishOk(base, a, "a2");
        const stream = await TextStream.open(`${base}/ntfy/${a}/json?since=${a1.id}`);
        await stream.waitFor((s) => s.messages().length >= 1, "the message after a1");
        expect(stream.messages()).toEqual([a2]);
        await stream.close();
        // Topic b has no position in a1's id: it starts at a1's time, so b1 (published after a1) is there.
        const pollBoth = async (since: string) => {
          const both = await fetch(`${base}/ntfy/${a},${b}/json?poll=1&since=${since}`);
          const text = (await both.text()).trim();
          return text === "" ? [] : text.split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
        };
        const withoutId = (event: object) => {
          const { id: _id, ...rest } = event as Record<string, unknown>;
          return rest;
        };
        const got = await pollBoth(a1.id);
        expect(got.map(withoutId)).toEqual([withoutId(b1), withoutId(a2)]);
        // On several topics each id is the whole subscription's cursor: resuming from one is exact on both.
        const b2 = await ntfyPublishOk(base, b, "b2");
        expect((await pollBoth(String(got[0]?.id))).map(withoutId)).toEqual([withoutId(a2), withoutId(b2)]);
        const rest = await pollBoth(String(got[1]?.id));
        expect(rest.map(withoutId)).toEqual([withoutId(b2)]);
        expect(await pollBoth(String(rest[0]?.id))).toEqual([]);
      });

      it("reads since=all, latest, a duration, a Unix time and none", async () => {
        const name = topic("since");
        const first = await ntfyPublishOk(base, name, "first");
        await new Promise((resolve) => setTimeout(resolve, 1100));
        const cutoff = Math.floor(Date.now() / 1000);
        const second = await ntfyPublishOk(base, name, "second");
        const third = await ntfyPublishOk(base, name, "third");
        const poll = async (since: string) => {
          const response = await fetch(`${base}/ntfy/${name}/json?poll=1&since=${since}`);
          expect(response.status).toBe(200);
          return (await response.text())
            .split("\n")
            .filter(Boolean)
            .map((line) => JSON.parse(line));
        };
        expect(await poll("all")).toEqual([first, second, third]);
        expect(await poll("latest")).toEqual([third]);
        expect(await poll("10m")).toEqual([first, second, third]);
        expect(await poll(String(cutoff))).toEqual([second, third]);
        expect(await poll("none")).toEqual([]);
        const stream = await TextStream.open(`${base}/ntfy/${name}/json?since=latest`);
        await stream.waitFor((s) => s.messages().length >= 1, "the latest message");
        await stream.close();
        expect(stream.messages()).toEqual([third]);
        const bad = await fetch(`${base}/ntfy/${name}/json?poll=1&since=yesterday!`);
        expect(bad.status).toBe(400);
      });

      it("filters with ntfy's semantics: all tags, a list of priorities, exact message and title", async () => {
        const name = topic("filter");
        await ntfyPublishOk(base, name, "only a", { Tags: "a" });
        const both = await ntfyPublishOk(base, name, "a and b", { Tags: "a,b,c", Priority: "4" });
        const plain = await ntfyPublishOk(base, name, "no priority");
        const poll = async (query: string) => {
          const response = await fetch(`${base}/ntfy/${name}/json?poll=1&${query}`);
          expect(response.status).toBe(200);
          return (await response.text())
            .split("\n")
            .filter(Boolean)
            .map((line) => JSON.parse(line).message);
        };
        expect(await poll("tags=a,b")).toEqual([both.message]);
        expect(await poll("priority=high,5")).toEqual([both.message]);
        // A message without a priority counts as 3 (default).
        expect(await poll("priority=default")).toEqual(["only a", plain.message]);
        expect(await poll("message=no%20priority")).toEqual([plain.message]);
        expect((await fetch(`${base}/ntfy/${name}/json?poll=1&priority=7`)).status).toBe(400);
        // Live streams filter the same way, and filtered-out messages are not gaps.
        const stream = await TextStream.open(`${base}/ntfy/${name}/json?tags=x,y`);
        await stream.waitFor((s) => s.events.length >= 1, "the open event");
        await ntfyPublishOk(base, name, "x only", { Tags: "x" });
        const match = await ntfyPublishOk(base, name, "x and y", { Tags: "y,x" });
        await stream.waitFor((s) => s.messages().length >= 1, "the matching message");
        await stream.close();
        expect(stream.messages()).toEqual([match]);
        expect(stream.events.some((e) => e.event === "gap")).toBe(false);
      });

      it("streams SSE the way ntfy does: event lines for open and keepalive, bare data for messages", async () => {
        const name = topic("sse");
        const stream = await TextStream.open(`${base}/ntfy/${name}/sse`);
        expect(stream.contentType).toContain("text/event-stream");
        await stream.waitFor((s) => s.sse.length >= 1, "the open event");
        const sent = await ntfyPublishOk(base, name, "over SSE");
        await stream.waitFor((s) => s.sse.some((e) => e.event === "message"), "the message");
        await stream.waitFor((s) => s.sse.some((e) => e.event === "keepalive"), "a keepalive");
        await stream.close();
        expect(stream.sse[0]).toMatchObject({ event: "open", data: { event: "open", topic: name } });
        const message = stream.sse.find((e) => e.event === "message");
        expect(message).toEqual({ event: "message", id: sent.id, data: sent });
        expect(stream.text).toContain(`\nid: ${sent.id}\ndata: ${JSON.stringify(sent)}\n\n`);
        // EventSource comes back with Last-Event-ID; it resumes like since=<id>.
        const next = await ntfyPublishOk(base, name, "missed");
        const resumed = await TextStream.open(`${base}/ntfy/${name}/sse`, { "Last-Event-ID": sent.id });
        await resumed.waitFor((s) => s.sse.some((e) => e.event === "message"), "the missed message");
        await resumed.close();
        expect(resumed.sse.filter((e) => e.event === "message").map((e) => e.data)).toEqual([next]);
      });

      it("streams raw text: an empty line to open, then one line per message", async () => {
        const name = topic("raw");
        const stream = await TextStream.open(`${base}/ntfy/${name}/raw`);
        expect(stream.contentType).toContain("text/plain");
        await stream.waitFor((s) => s.text.length >= 1, "the open line");
        await ntfyPublishOk(base, name, "first line\nsecond line");
        await stream.waitFor((s) => s.text.includes("first line"), "the message");
        await stream.close();
        expect(stream.text.replace(/^\n+/, "").split("\n")[0]).toBe("first line second line");
      });

      it("serves the same JSON over a WebSocket", async () => {
        const name = topic("ws");
        const socket = await NtfySocket.open(`${base.replace("http", "ws")}/ntfy/${name}/ws`);
        await socket.waitFor((events) => events.length >= 1, "the open event");
        const sent = await ntfyPublishOk(base, name, "over a WebSocket", { Tags: "w" });
        await socket.waitFor((events) => events.some((e) => e.event === "message"), "the message");
        socket.close();
        expect(socket.events[0]).toMatchObject({ event: "open", topic: name });
        expect(socket.events.filter((e) => e.event === "message")).toEqual([sent]);
        // Only …/ws paths upgrade: another ntfy path is refused.
        await expect(NtfySocket.open(`${base.replace("http", "ws")}/ntfy/${name}/json`)).rejects.toThrow();
      });

      it("says so with a gap event when since=<id> is no longer retained", async () => {
        const name = topic("gap");
        const first = await ntfyPublishOk(base, name, "m1");
        for (let n = 2; n <= CAP + 3; n++) await ntfyPublishOk(base, name, `m${n}`);
        const response = await fetch(`${base}/ntfy/${name}/json?poll=1&since=${first.id}`);
        const events = (await response.text())
          .split("\n")
          .filter(Boolean)
          .map((line) => JSON.parse(line));
        expect(events[0]).toMatchObject({ event: "gap", topic: name, gaps: [{ topic: name, reason: "trimmed" }] });
        expect(events.slice(1).map((e: { message: string }) => e.message)).toEqual(["m4", "m5", "m6", "m7", "m8"]);
        const stream = await TextStream.open(`${base}/ntfy/${name}/json?since=${first.id}`);
        await stream.waitFor((s) => s.messages().length >= CAP, "the retained messages");
        await stream.close();
        expect(stream.events.map((e) => e.event).slice(0, 2)).toEqual(["open", "gap"]);
      });

      it("refuses bad topic lists with 400", async () => {
        const response = await fetch(`${base}/ntfy/ok,not.valid/json`);
        expect(response.status).toBe(400);
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe("bad_mailbox");
      });
    });
  });
}

for (const kind of backends) suite(kind);
