import { networkInterfaces } from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { parseAuthSection } from "../src/auth/auth-config.js";
import { createKeyFromArgs } from "../src/cli/key-create.js";
import { redactUrl } from "../src/http/admin-console.js";
import type { StatsSample } from "../src/http/admin-stats.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, publishStatus, SECRET, startAuthServer } from "./helpers/auth.js";
import { publish, StreamClient } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

const ADMIN_API = ["/v1/admin/config", "/v1/admin/stats", "/v1/admin/mailboxes"];

let herald: RunningHerald | undefined;
const streams: StreamClient[] = [];
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  await herald?.shutdown();
  herald = undefined;
});

function open(url: string, headers: Record<string, string> = {}): StreamClient {
  const stream = new StreamClient(url, headers);
  streams.push(stream);
  return stream;
}

function adminKey(name = "ops") {
  const made = makeKey(name, []);
  return { key: made.key, entry: { ...made.entry, admin: true } };
}

/** A non-loopback address of this machine, if it has one. */
function externalAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) if (info.family === "IPv4" && !info.internal) return info.address;
  }
  return undefined;
}

describe("admin access with auth on", () => {
  it("needs an API key with the admin right: 401 without one, 403 with another key", async () => {
    const admin = adminKey();
    const publisher = makeKey("ci", ["*"], { metrics: true });
    herald = await startAuthServer({
      auth: { keys: [admin.entry, publisher.entry], tokens: { hs256Secret: SECRET } },
    });
    const token = await hsToken({ mailboxes: ["*"] });
    for (const path of [...ADMIN_API, "/v1/admin/stats/events"]) {
      expect((await fetch(`${herald.url}${path}`)).status, path).toBe(401);
      expect((await fetch(`${herald.url}${path}`, { headers: bearer(publisher.key) })).status, path).toBe(403);
      expect((await fetch(`${herald.url}${path}`, { headers: bearer(token) })).status, path).toBe(401);
      expect((await fetch(`${herald.url}${path}?token=${token}`)).status, path).toBe(401);
    }
    for (const path of ADMIN_API) {
      expect((await fetch(`${herald.url}${path}`, { headers: bearer(admin.key) })).status, path).toBe(200);
    }
    const events = open(`${herald.url}/v1/admin/stats/events`, bearer(admin.key));
    await events.opened;
    expect(events.status).toBe(200);
    // The page itself holds no data and is served to anyone.
    const page = await fetch(`${herald.url}/admin`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("admin.js");
  });

  it("lets an admin key read, tail and publish to any mailbox (the inspector)", async () => {
    const admin = adminKey();
    herald = await startAuthServer({ auth: { keys: [admin.entry], tokens: { hs256Secret: SECRET } } });
    expect((await publishStatus(herald.url, "user:alice", bearer(admin.key), { title: "hi" })).status).toBe(201);
    const read = await fetch(`${herald.url}/v1/mailboxes/user:alice/messages`, { headers: bearer(admin.key) });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { messages: unknown[] }).messages).toHaveLength(1);
    const presence = await fetch(`${herald.url}/v1/mailboxes/user:alice/presence`, { headers: bearer(admin.key) });
    expect(presence.status).toBe(200);
    const tail = open(`${herald.url}/v1/mailboxes/user:alice/events?cursor=now`, bearer(admin.key));
    await tail.opened;
    expect(tail.status).toBe(200);
    await publishStatus(herald.url, "user:alice", bearer(admin.key), { title: "live" });
    await tail.untilMessages(1);
    expect(tail.messages()[0]?.title).toBe("live");
  });

  it("never shows secrets in the configuration summary", async () => {
    const admin = adminKey();
    const minting = makeKey("login", ["user:*"], { tokens: true });
    herald = await startAuthServer({
      auth: { keys: [admin.entry, minting.entry], tokens: { hs256Secret: SECRET } },
      config: { store: "redis", redisUrl: "redis://svc-user:s3cr3t-pw@redis.internal:6379/0?password=other-pw" },
    });
    const response = await fetch(`${herald.url}/v1/admin/config`, { headers: bearer(admin.key) });
    const text = await response.text();
    for (const secret of [
      SECRET,
      "s3cr3t-pw",
      "other-pw",
      "svc-user",
      admin.key,
      admin.entry.hash,
      minting.entry.hash,
    ]) {
      expect(text).not.toContain(secret);
    }
    const summary = JSON.parse(text);
    expect(summary.store).toMatchObject({ kind: "redis", url: "redis://redis.internal:6379/0" });
    expect(summary.auth).toMatchObject({ mode: "on", reads: "tokens", tokens: { kind: "hs256", canMint: true } });
    expect(summary.auth.keys).toEqual([
      { name: "ops", publish: [], admin: true },
      { name: "login", publish: ["user:*"], tokens: ["user:*"] },
    ]);
    expect(summary.limits.publish).toEqual({ rate: 20, burst: 40 });
    expect(summary.presence.maxMembers).toBeGreaterThan(0);
    expect(summary.schedule.maxDelaySeconds).toBeGreaterThan(0);
  });
});

describe("admin access without auth", () => {
  it("answers loopback peers, and refuses requests a proxy forwarded", async () => {
    herald = await startTestServer();
    for (const path of ADMIN_API) {
      expect((await fetch(`${herald.url}${path}`)).status, path).toBe(200);
      const forwarded = await fetch(`${herald.url}${path}`, { headers: { "x-forwarded-for": "203.0.113.9" } });
      expect(forwarded.status, path).toBe(403);
    }
    const summary = (await (await fetch(`${herald.url}/v1/admin/config`)).json()) as { auth: { mode: string } };
    expect(summary.auth.mode).toBe("off");
  });

  it("refuses a peer that is not on this machine (--insecure on every address)", async (context) => {
    const address = externalAddress();
    if (address === undefined) {
      context.skip("this machine has no non-loopback address to connect from");
      return;
    }
    herald = await startTestServer({ config: { host: "0.0.0.0", insecure: true } });
    const remote = `http://${address}:${herald.port}`;
    for (const path of ADMIN_API) expect((await fetch(`${remote}${path}`)).status, path).toBe(403);
    expect((await fetch(`http://127.0.0.1:${herald.port}/v1/admin/config`)).status).toBe(200);
    // The rest of the API is still served to everyone, as --insecure says.
    expect((await fetch(`${remote}/v1/mailboxes/m/messages`)).status).toBe(200);
  });
});

describe("admin statistics", () => {
  it("streams a history and then a sample each second, with publishes, deliveries and connections", async () => {
    herald = await startTestServer();
    const events = open(`${herald.url}/v1/admin/stats/events`);
    await until(() => events.events.some((event) => event.event === "history"), "the history event");
    const subscriber = open(`${herald.url}/v1/mailboxes/room:1/events`);
    await subscriber.opened;
    for (let i = 0; i < 5; i++) await publish(herald.url, "room:1", { body: `m${i}` });
    await subscriber.untilMessages(5);
    const samples = () =>
      events.events.filter((event) => event.event === "sample").map((event) => JSON.parse(event.data) as StatsSample);
    await until(
      () => samples().some((sample) => sample.publishes > 0) && samples().some((sample) => sample.deliveries > 0),
      () => `a sample with publishes and deliveries: ${JSON.stringify(samples())}`,
      5000,
    );
    const last = samples().at(-1) as StatsSample;
    // This admin stream and the subscriber are both SSE connections.
    expect(last.connections.sse).toBe(2);
    expect(last.store.messages).toBe(5);
    const totalPublishes = samples().reduce((sum, sample) => sum + sample.publishes, 0);
    expect(totalPublishes).toBeGreaterThan(3);
    const history = (await (await fetch(`${herald.url}/v1/admin/stats`)).json()) as { samples: StatsSample[] };
    expect(history.samples.length).toBeGreaterThanOrEqual(samples().length);
  });
});

describe("busiest mailboxes", () => {
  it("ranks by subscribers, then publish rate, with retained messages and bytes, and searches by name", async () => {
    herald = await startTestServer();
    for (let i = 0; i < 6; i++) await publish(herald.url, "room:busy", { body: `message ${i}` });
    await publish(herald.url, "room:quiet", { body: "one" });
    const watcher = open(`${herald.url}/v1/mailboxes/room:watched/events`);
    await watcher.opened;
    await until(() => herald?.hub.watcherCount("room:watched") === 1, "the subscriber");
    type Row = { mailbox: string; subscribers: number; publishesPerSecond: number; retained: number; bytes: number };
    const list = async (query = "") =>
      ((await (await fetch(`${herald?.url}/v1/admin/mailboxes?q=${query}`)).json()) as { mailboxes: Row[] }).mailboxes;
    const rows = await list();
    expect(rows.map((row) => row.mailbox)).toEqual(["room:watched", "room:busy", "room:quiet"]);
    expect(rows[0]).toMatchObject({ subscribers: 1, retained: 0 });
    expect(rows[1]).toMatchObject({ subscribers: 0, retained: 6 });
    expect(rows[1]?.publishesPerSecond).toBeCloseTo(0.6);
    expect(rows[1]?.bytes).toBeGreaterThan(6 * 50);
    expect((await list("BUSY")).map((row) => row.mailbox)).toEqual(["room:busy"]);
    expect(await list("nothing-like-this")).toEqual([]);
    expect((await fetch(`${herald.url}/v1/admin/mailboxes?limit=0`)).status).toBe(400);
    expect((await fetch(`${herald.url}/v1/admin/mailboxes?q=${"x".repeat(200)}`)).status).toBe(400);
  });
});

describe("the admin right", () => {
  it("is made by herald key create --admin and read from the config", () => {
    const created = createKeyFromArgs(["--name", "ops", "--admin"]);
    expect(created.entry).toMatchObject({ name: "ops", publish: [], admin: true });
    const auth = parseAuthSection({ keys: [created.entry], reads: "open" }, {});
    expect(auth.keys[0]?.admin).toBe(true);
    expect(() => parseAuthSection({ keys: [{ ...created.entry, admin: "yes" }], reads: "open" }, {})).toThrow(
      /admin must be true or false/,
    );
  });

  it("redacts credentials and queries from URLs", () => {
    expect(redactUrl("redis://:pw@host:6379")).toBe("redis://host:6379");
    expect(redactUrl("rediss://user:p@ss/w@host:6380/2?password=x")).toBe("rediss://host:6380/2");
    expect(redactUrl("redis-cluster://u:p@a:1,b:2")).toBe("redis-cluster://a:1,b:2");
    expect(redactUrl("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
  });
});
