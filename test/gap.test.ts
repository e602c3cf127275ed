import { afterEach, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bodies, publish, publishMany, StreamClient, type WireMessage } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

const servers: RunningHerald[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.shutdown()));
});

async function start(options: Parameters<typeof startTestServer>[0] = {}): Promise<string> {
  const herald = await startTestServer(options);
  servers.push(herald);
  return herald.url;
}

interface Answer {
  messages: WireMessage[];
  cursor: string;
  gap: boolean;
  gaps?: { mailbox: string; reason: string }[];
}

async function read(base: string, path: string): Promise<Answer> {
  const response = await fetch(`${base}${path}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Answer;
}

describe("gaps are said out loud", () => {
  it("after the per-mailbox cap trimmed unseen messages", async () => {
    const base = await start({ config: { maxMessagesPerMailbox: 5 } });
    const [first] = await publishMany(base, "feed", 1);
    await publishMany(base, "feed", 9, 2);
    const answer = await read(base, `/v1/mailboxes/feed/messages?cursor=${first?.cursor}`);
    expect(answer.gap).toBe(true);
    expect(answer.gaps).toEqual([{ mailbox: "feed", reason: "trimmed" }]);
    expect(bodies(answer.messages)).toEqual(["m6", "m7", "m8", "m9", "m10"]);
    const after = await read(base, `/v1/mailboxes/feed/messages?cursor=${answer.cursor}`);
    expect(after).toMatchObject({ messages: [], gap: false });
  });

  it("after TTL expiry, on SSE as an event before the first message", async () => {
    const base = await start();
    const [first] = await publishMany(base, "ttl", 1);
    await publish(base, "ttl", { body: "short", ttl: 0.2 });
    await publish(base, "ttl", { body: "long" });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const client = new StreamClient(`${base}/v1/mailboxes/ttl/events`, { "Last-Event-ID": first?.cursor as string });
    await client.untilMessages(1);
    expect(client.events.map((event) => event.event)).toEqual(["cursor", "gap", "message"]);
    const gap = JSON.parse(client.events[1]?.data as string);
    expect(gap).toMatchObject({ type: "gap", gaps: [{ mailbox: "ttl", reason: "expired" }] });
    expect(client.events[1]?.id).toBe(gap.cursor);
    expect(bodies(client.messages())).toEqual(["long"]);
    client.close();
  });

  it("when the trailing messages after a cursor expired", async () => {
    const base = await start();
    const [first] = await publishMany(base, "tail", 1);
    await publish(base, "tail", { body: "gone", ttl: 0.1 });
    await new Promise((resolve) => setTimeout(resolve, 250));
    const answer = await read(base, `/v1/mailboxes/tail/messages?cursor=${first?.cursor}`);
    expect(answer).toMatchObject({ messages: [], gap: true, gaps: [{ mailbox: "tail", reason: "expired" }] });
    const again = await read(base, `/v1/mailboxes/tail/messages?cursor=${answer.cursor}`);
    expect(again.gap).toBe(false);
  });

  it("after the mailbox was evicted and recreated (new epoch), on ndjson", async () => {
    const base = await start({ config: { maxMailboxes: 2 } });
    const [kept] = await publishMany(base, "victim", 2);
    await publish(base, "other-1", "x");
    await publish(base, "other-2", "x");
    await publish(base, "victim", { body: "reborn" });
    const client = new StreamClient(`${base}/v1/mailboxes/victim/stream?cursor=${kept?.cursor}`);
    await client.untilMessages(1);
    const objects = client.objects.filter((object) => object.type !== "heartbeat" && object.type !== "cursor");
    expect(objects[0]).toMatchObject({ type: "gap", gaps: [{ mailbox: "victim", reason: "epoch" }] });
    expect(objects[1]).toMatchObject({ type: "message", body: "reborn", seq: 1 });
    client.close();
  });

  it("after a restart of the memory store", async () => {
    const first = await startTestServer();
    const [message] = await publishMany(first.url, "restart", 3);
    await first.shutdown();
    const base = await start();
    await publish(base, "restart", { body: "after" });
    const answer = await read(base, `/v1/mailboxes/restart/messages?cursor=${message?.cursor}`);
    expect(answer.gap).toBe(true);
    expect(answer.gaps).toEqual([{ mailbox: "restart", reason: "epoch" }]);
    expect(bodies(answer.messages)).toEqual(["after"]);
  });

  it("for a cursor issued before the mailbox existed, once its first messages are trimmed", async () => {
    const base = await start({ config: { maxMessagesPerMailbox: 3 } });
    const before = await read(base, "/v1/mailboxes/later/messages");
    const now = await read(base, "/v1/mailboxes/later-too/messages?cursor=now");
    await publishMany(base, "later", 5);
    await publishMany(base, "later-too", 5);
    for (const [mailbox, cursor] of [
      ["later", before.cursor],
      ["later-too", now.cursor],
    ]) {
      const answer = await read(base, `/v1/mailboxes/${mailbox}/messages?cursor=${cursor}`);
      expect(answer.gaps).toEqual([{ mailbox, reason: "trimmed" }]);
      expect(answer.messages.map((m) => m.seq)).toEqual([3, 4, 5]);
    }
    // Nothing trimmed: the same kind of cursor gets everything, without a gap.
    const fresh = await read(base, "/v1/mailboxes/intact/messages");
    await publishMany(base, "intact", 2);
    const answer = await read(base, `/v1/mailboxes/intact/messages?cursor=${fresh.cursor}`);
    expect(answer).toMatchObject({ gap: false });
    expect(bodies(answer.messages)).toEqual(["m1", "m2"]);
  });

  it("for a cursor beyond the head of the same epoch", async () => {
    const base = await start();
    const [, , third] = await publishMany(base, "ahead", 3);
    const cursor = third?.cursor as string;
    const decoded = JSON.parse(Buffer.from(cursor, "base64url").toString());
    decoded[0][2] = 99;
    const forged = Buffer.from(JSON.stringify(decoded)).toString("base64url");
    const answer = await read(base, `/v1/mailboxes/ahead/messages?cursor=${forged}`);
    expect(answer.gap).toBe(true);
    expect(bodies(answer.messages)).toEqual(["m1", "m2", "m3"]);
  });

  it("for a cursor with messages in an epoch the server never had, even on an unknown mailbox", async () => {
    const base = await start();
    const foreign = Buffer.from(JSON.stringify([["AAAAAAAAAA", "nope", 4]])).toString("base64url");
    // The forged key matches no mailbox, so it reads as "not mentioned": earliest, no gap.
    expect((await read(base, `/v1/mailboxes/unknown/messages?cursor=${foreign}`)).gap).toBe(false);
    const other = await startTestServer();
    servers.push(other);
    const [m] = await publishMany(other.url, "unknown", 1);
    const answer = await read(base, `/v1/mailboxes/unknown/messages?cursor=${m?.cursor}`);
    expect(answer).toMatchObject({ messages: [], gap: true, gaps: [{ mailbox: "unknown", reason: "epoch" }] });
  });
});
