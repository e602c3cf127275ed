import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";
import { bearer, hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { publish, publishMany } from "./helpers/clients.js";
import { openReader, READER_TRANSPORTS, type ReaderClient } from "./helpers/reader-clients.js";
import { startTestServer } from "./helpers/server.js";

interface ReadStateJson {
  mailbox: string;
  seq: number;
  cursor: string;
  unread: number;
}

async function mark(
  base: string,
  mailbox: string,
  body: unknown,
  query = "?reader=alice",
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${base}/v1/mailboxes/${mailbox}/read${query}`, {
    method: "PUT",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function stateOf(base: string, mailbox: string, query = "?reader=alice"): Promise<ReadStateJson> {
  const response = await fetch(`${base}/v1/mailboxes/${mailbox}/read${query}`);
  expect(response.status).toBe(200);
  return (await response.json()) as ReadStateJson;
}

const servers: RunningHerald[] = [];
const clients: ReaderClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const server of servers.splice(0)) await server.shutdown();
});

async function server(options: Parameters<typeof startTestServer>[0] = {}): Promise<RunningHerald> {
  const started = await startTestServer(options);
  servers.push(started);
  return started;
}

describe("read state over HTTP", () => {
  it("moves forward by seq or cursor, ignores older marks, refuses marks past the head", async () => {
    const { url } = await server();
    const published = await publishMany(url, "inbox", 4);
    expect(await stateOf(url, "inbox")).toMatchObject({ mailbox: "inbox", seq: 0, unread: 4 });
    const bySeq = await mark(url, "inbox", { seq: 2 });
    expect(bySeq.status).toBe(200);
    expect(await bySeq.json()).toMatchObject({ seq: 2, unread: 2 });
    const byCursor = await mark(url, "inbox", { cursor: published[2]?.cursor });
    const after = (await byCursor.json()) as ReadStateJson;
    expect(after).toMatchObject({ seq: 3, unread: 1 });
    // The cursor answered resumes right after the last read message.
    const rest = await fetch(`${url}/v1/mailboxes/inbox/messages?cursor=${after.cursor}`);
    expect(((await rest.json()) as { messages: { body: string }[] }).messages.map((m) => m.body)).toEqual(["m4"]);
    const older = await mark(url, "inbox", { seq: 1 });
    expect(older.status).toBe(200);
    expect(await older.json()).toMatchObject({ seq: 3, unread: 1 });
    const past = await mark(url, "inbox", { seq: 5 });
    expect(past.status).toBe(400);
    expect(await past.json()).toMatchObject({ error: { code: "bad_parameter" } });
    expect(await stateOf(url, "inbox")).toMatchObject({ seq: 3, unread: 1 });
    expect(await stateOf(url, "inbox", "?reader=bob")).toMatchObject({ seq: 0, unread: 4 });
  });

  it("answers one entry per mailbox from GET /v1/read", async () => {
    const { url } = await server();
    await publishMany(url, "a", 2);
    await mark(url, "a", { seq: 1 });
    const response = await fetch(`${url}/v1/read?mailbox=a&mailbox=never-used&reader=alice`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { mailboxes: ReadStateJson[] };
    expect(body.mailboxes.map(({ mailbox, seq, unread }) => ({ mailbox, seq, unread }))).toEqual([
      { mailbox: "a", seq: 1, unread: 1 },
      { mailbox: "never-used", seq: 0, unread: 0 },
    ]);
  });

  it("says what is wrong with a bad mark, and changes nothing", async () => {
    const { url } = await server();
    await publishMany(url, "inbox", 2);
    const cases: [unknown, string, number, string][] = [
      [{ seq: 1 }, "", 400, "bad_parameter"],
      [{ seq: 1, cursor: "x" }, "?reader=alice", 400, "bad_parameter"],
      [{}, "?reader=alice", 400, "bad_parameter"],
      [{ seq: -1 }, "?reader=alice", 400, "bad_parameter"],
      [{ seq: 1, extra: true }, "?reader=alice", 400, "bad_parameter"],
      [{ cursor: "not a cursor!" }, "?reader=alice", 400, "bad_cursor"],
      ["{not json", "?reader=alice", 400, "bad_json"],
      [{ seq: 1 }, "?reader=bad%20name", 400, "bad_parameter"],
    ];
    for (const [body, query, status, code] of cases) {
      const response = await mark(url, "inbox", body, query);
      expect({ body, status: response.status }).toEqual({ body, status });
      expect(await response.json()).toMatchObject({ error: { code } });
    }
    expect(await stateOf(url, "inbox")).toMatchObject({ seq: 0, unread: 2 });
  });

  it("is kept across a restart on SQLite", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "herald-read-"));
    try {
      const open = () => createSqliteStore({ dataDir, sync: "full", maxMessagesPerMailbox: 100, maxBytes: 1 << 24 });
      const first = await startTestServer({ customStore: open() });
      await publishMany(first.url, "inbox", 3);
      expect((await mark(first.url, "inbox", { seq: 2 })).status).toBe(200);
      await first.shutdown();
      const second = await server({ customStore: open() });
      expect(await stateOf(second.url, "inbox")).toMatchObject({ seq: 2, unread: 1 });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("belongs to the token's sub; marking with the cookie from a foreign page is refused", async () => {
    const publisher = makeKey("app", ["*"]);
    const herald = await startAuthServer({
      auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET }, cors: { origins: ["https://app.example"] } },
    });
    servers.push(herald);
    await publish(herald.url, "user:alice", { body: "hi" }, bearer(publisher.key));
    const token = await hsToken({ sub: "alice", mailboxes: ["user:alice"] });
    const ok = await mark(herald.url, "user:alice", { seq: 1 }, "", bearer(token));
    expect(ok.status).toBe(200);
    const other = await hsToken({ sub: "bob", mailboxes: ["user:bob"] });
    expect((await mark(herald.url, "user:alice", { seq: 1 }, "", bearer(other))).status).toBe(403);
    expect((await mark(herald.url, "user:alice", { seq: 1 }, "")).status).toBe(401);
    const cookie = { cookie: `herald_token=${token}`, origin: "https://evil.example" };
    const crossSite = await mark(herald.url, "user:alice", { seq: 1 }, "", cookie);
    expect(crossSite.status).toBe(403);
    expect(await crossSite.json()).toMatchObject({ error: { code: "origin_not_allowed" } });
  });
});

describe("readers that name themselves where reads are open", () => {
  it("are marked anonymous, so `?reader=alice` neither moves nor sees the token holder alice's state", async () => {
    const publisher = makeKey("app", ["*"]);
    const herald = await startAuthServer({
      auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET }, reads: "open" },
    });
    servers.push(herald);
    await publish(herald.url, "news", { body: "one" }, bearer(publisher.key));
    await publish(herald.url, "news", { body: "two" }, bearer(publisher.key));
    const token = await hsToken({ sub: "alice", mailboxes: ["news"] });
    expect((await mark(herald.url, "news", { seq: 1 }, "", bearer(token))).status).toBe(200);
    const impostor = await mark(herald.url, "news", { seq: 2 }, "?reader=alice");
    expect(impostor.status).toBe(200);
    const own = await fetch(`${herald.url}/v1/mailboxes/news/read`, { headers: bearer(token) });
    expect(await own.json()).toMatchObject({ seq: 1, unread: 1 });
    const watcher = await openReader("ndjson", herald.url, ["news"], { reader: "alice", presence: true });
    clients.push(watcher);
    await watcher.until((c) => c.of("presence").length === 1, "the snapshot");
    expect(watcher.of("presence")[0]?.members).toEqual([expect.objectContaining({ sub: "anonymous:alice" })]);
  });
});

describe.each(READER_TRANSPORTS)("read events and unread counts over %s", (transport) => {
  const open = async (base: string, options: Parameters<typeof openReader>[3]) => {
    const client = await openReader(transport, base, ["inbox"], options);
    clients.push(client);
    return client;
  };

  it("tells every connection of the reader when its position moves, and counts unread after each message", async () => {
    const { url } = await server();
    await publishMany(url, "inbox", 2);
    const counting = await open(url, { reader: "alice", unread: true });
    const otherTab = await open(url, { reader: "alice" });
    const bob = await open(url, { reader: "bob", unread: true });
    await counting.until((c) => c.of("unread").at(-1)?.unread === 2 && c.of("message").length === 2, "unread 2");
    await publishMany(url, "inbox", 2, 3);
    await counting.until((c) => c.of("unread").at(-1)?.unread === 4, "unread 4");
    expect(counting.of("unread").map((event) => event.unread)).toEqual([2, 3, 4]);
    expect(counting.of("unread")[0]).toEqual({ type: "unread", mailbox: "inbox", unread: 2 });
    expect((await mark(url, "inbox", { seq: 3 })).status).toBe(200);
    for (const tab of [counting, otherTab]) {
      await tab.until((c) => c.of("read").length === 1, "the read event");
      expect(tab.of("read")[0]).toMatchObject({ type: "read", mailbox: "inbox", seq: 3, unread: 1 });
    }
    await publish(url, "inbox", { body: "m5" });
    await counting.until((c) => c.of("unread").at(-1)?.unread === 2, "unread 2 after the read and one more");
    await bob.until((c) => c.of("unread").at(-1)?.unread === 5, "bob's own count");
    expect(bob.of("read")).toEqual([]);
  });

  it("refuses unread counts without a reader", async () => {
    const { url } = await server();
    await expect(openReader(transport, url, ["inbox"], { unread: true })).rejects.toThrow(/refused/);
  });
});
