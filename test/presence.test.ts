import { afterEach, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { openReader, READER_TRANSPORTS, type ReaderClient } from "./helpers/reader-clients.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

interface PresenceJson {
  mailbox: string;
  count: number;
  members?: { sub: string; info: unknown; connections: number; since: string }[];
}

async function presenceOf(base: string, mailbox: string, headers: Record<string, string> = {}): Promise<PresenceJson> {
  const response = await fetch(`${base}/v1/mailboxes/${mailbox}/presence`, { headers });
  expect(response.status).toBe(200);
  return (await response.json()) as PresenceJson;
}

const subsOf = (answer: PresenceJson) => (answer.members ?? []).map((member) => member.sub).sort();

describe.each(READER_TRANSPORTS)("presence over %s", (transport) => {
  let herald: RunningHerald | undefined;
  const clients: ReaderClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await herald?.shutdown();
    herald = undefined;
  });
  const open = async (base: string, mailboxes: string[], options: Parameters<typeof openReader>[3]) => {
    const client = await openReader(transport, base, mailboxes, options);
    clients.push(client);
    return client;
  };

  it("announces a reader once however many connections it holds, and its leave when the last one goes", async () => {
    herald = await startTestServer();
    const { url } = herald;
    const watcher = await open(url, ["room"], { reader: "watcher", presence: true });
    await watcher.until((c) => c.of("presence").length === 1, "the snapshot");
    expect(watcher.of("presence")[0]).toMatchObject({ mailbox: "room", count: 1, members: [{ sub: "watcher" }] });
    const aliceTab1 = await open(url, ["room"], { reader: "alice" });
    const aliceTab2 = await open(url, ["room"], { reader: "alice" });
    const bob = await open(url, ["room"], { reader: "bob" });
    await watcher.until((c) => c.of("join").length === 2, "two joins");
    expect(watcher.of("join").map((join) => join.sub)).toEqual(["alice", "bob"]);
    expect(watcher.of("join")[1]).toEqual({
      type: "join",
      mailbox: "room",
      sub: "bob",
      info: null,
      since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      count: 3,
    });
    const answer = await presenceOf(url, "room");
    expect(answer.count).toBe(3);
    expect(answer.members?.find((member) => member.sub === "alice")?.connections).toBe(2);
    expect(Date.parse(answer.members?.[0]?.since ?? "")).toBeGreaterThan(Date.now() - 60_000);
    aliceTab1.close();
    await until(async () => (await presenceOf(url, "room")).members?.find((m) => m.sub === "alice")?.connections === 1);
    expect(watcher.of("leave")).toEqual([]);
    aliceTab2.close();
    bob.close();
    await watcher.until((c) => c.of("leave").length === 2, "two leaves");
    expect(
      watcher
        .of("leave")
        .map((leave) => leave.sub)
        .sort(),
    ).toEqual(["alice", "bob"]);
    expect(watcher.of("join")).toHaveLength(2);
    expect(subsOf(await presenceOf(url, "room"))).toEqual(["watcher"]);
    // Presence events carry no cursor: a reconnecting client resumes where its messages left it.
    const presenceFrames = watcher.frames().filter((f) => ["presence", "join", "leave"].includes(f.type as string));
    expect(presenceFrames.length).toBeGreaterThanOrEqual(5);
    for (const frame of presenceFrames) expect(frame.cursor).toBeUndefined();
  });

  it("leaves out connections without a reader, and streams that did not ask get no presence events", async () => {
    herald = await startTestServer();
    const plain = await open(herald.url, ["quiet"], { reader: "carol" });
    await open(herald.url, ["quiet"], {});
    await until(async () => (await presenceOf(herald?.url as string, "quiet")).count === 1);
    expect(subsOf(await presenceOf(herald.url, "quiet"))).toEqual(["carol"]);
    const watcher = await open(herald.url, ["quiet"], { presence: true });
    await watcher.until((c) => c.of("presence").length === 1, "the snapshot");
    await open(herald.url, ["quiet"], { reader: "dave" });
    await watcher.until((c) => c.of("join").length === 1, "dave joining");
    expect(plain.frames().filter((frame) => ["presence", "join", "leave"].includes(frame.type as string))).toEqual([]);
  });

  it("past presence.maxMembers sends a throttled count and lists no members, and lists them again well below it", async () => {
    herald = await startTestServer({ presenceSettings: { maxMembers: 2 } });
    const { url } = herald;
    const watcher = await open(url, ["big"], { reader: "w", presence: true });
    await watcher.until((c) => c.of("presence").length === 1, "the snapshot");
    const r1 = await open(url, ["big"], { reader: "r1" });
    await watcher.until((c) => c.of("join").length === 1, "r1 joining");
    let r2 = await open(url, ["big"], { reader: "r2" });
    await watcher.until((c) => c.of("presence").some((event) => event.count === 3), "a count of 3");
    expect(watcher.of("presence").find((event) => event.count === 3)).not.toHaveProperty("members");
    expect(watcher.of("join").map((join) => join.sub)).toEqual(["r1"]);
    expect(await presenceOf(url, "big")).toEqual({ mailbox: "big", count: 3 });
    // Hovering at the bound: no full listing each time it dips to the bound, at most a count a second.
    for (let flip = 0; flip < 5; flip++) {
      r2.close();
      await until(async () => (await presenceOf(url, "big")).count === 2);
      r2 = await open(url, ["big"], { reader: "r2" });
      await until(async () => (await presenceOf(url, "big")).count === 3);
    }
    expect(
      watcher
        .of("presence")
        .slice(1)
        .filter((event) => event.members !== undefined),
    ).toEqual([]);
    // Well below the bound (90% of it) the members are listed again, then joins and leaves resume.
    r2.close();
    r1.close();
    // (The first presence event is the opening snapshot, a listing too.)
    await watcher.until(
      (c) =>
        c
          .of("presence")
          .slice(1)
          .some((event) => event.members !== undefined),
      "a listing",
    );
    expect(watcher.of("presence").at(-1)?.members, JSON.stringify(watcher.of("presence"))).toEqual([
      expect.objectContaining({ sub: "w" }),
    ]);
    expect(watcher.of("leave")).toEqual([]);
    await open(url, ["big"], { reader: "r3" });
    await watcher.until((c) => c.of("join").some((join) => join.sub === "r3"), "r3 joining");
  });
});

describe("presence of long-polls and tokens", () => {
  let herald: RunningHerald | undefined;
  const clients: ReaderClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await herald?.shutdown();
    herald = undefined;
  });

  it("counts a long-poller while it waits and for the grace after, without flickering between polls", async () => {
    herald = await startTestServer({ presenceSettings: { longPollGraceSeconds: 2 } });
    const { url } = herald;
    const watcher = await openReader("ndjson", url, ["poll"], { reader: "w", presence: true });
    clients.push(watcher);
    await watcher.until((c) => c.of("presence").length === 1, "the snapshot");
    for (let poll = 0; poll < 3; poll++) {
      const response = await fetch(`${url}/v1/mailboxes/poll/messages?wait=0.3&reader=poller&cursor=now`);
      expect(response.status).toBe(200);
    }
    expect(subsOf(await presenceOf(url, "poll"))).toEqual(["poller", "w"]);
    await watcher.until((c) => c.of("leave").length === 1, "the poller to leave after the grace");
    expect(watcher.of("join").map((join) => join.sub)).toEqual(["poller"]);
    expect(subsOf(await presenceOf(url, "poll"))).toEqual(["w"]);
  });

  it("names a token holder by its sub and shows its info; a reader that differs from the token is refused", async () => {
    const publisher = makeKey("app", ["*"]);
    herald = await startAuthServer({ auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } } });
    const { url } = herald;
    const token = await hsToken({ sub: "alice", mailboxes: ["team"], info: { name: "Alice", avatar: "a.png" } });
    const alice = await openReader("sse", url, ["team"], { presence: true, headers: bearer(token) });
    clients.push(alice);
    await alice.until((c) => c.of("presence").length === 1, "the snapshot");
    expect(alice.of("presence")[0]?.members).toEqual([
      expect.objectContaining({ sub: "alice", info: { name: "Alice", avatar: "a.png" }, connections: 1 }),
    ]);
    const answer = await presenceOf(url, "team", bearer(token));
    expect(answer.members?.[0]?.info).toEqual({ name: "Alice", avatar: "a.png" });
    const refused = await fetch(`${url}/v1/mailboxes/team/events?reader=mallory`, { headers: bearer(token) });
    expect(refused.status).toBe(400);
    const other = await hsToken({ sub: "eve", mailboxes: ["elsewhere"] });
    expect((await fetch(`${url}/v1/mailboxes/team/presence`, { headers: bearer(other) })).status).toBe(403);
    expect((await fetch(`${url}/v1/mailboxes/team/presence`)).status).toBe(401);
  });
});
