import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, publishStatus, SECRET, startAuthServer } from "./helpers/auth.js";
import { StreamClient } from "./helpers/clients.js";

let herald: RunningHerald;
const publisher = makeKey("ci", ["*"]);

beforeAll(async () => {
  herald = await startAuthServer({
    auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } },
    config: { heartbeatSeconds: 0.2 },
  });
});
afterAll(() => herald.shutdown());

describe("a token that expires while in use", () => {
  it("ends SSE with event auth-expired and ndjson with an auth-expired line; the client resumes by cursor", async () => {
    // Expires one second from now, plus the server's clock tolerance.
    const shortLived = await hsToken({ mailboxes: ["user:exp"], expiresIn: 1 });
    const sse = new StreamClient(`${herald.url}/v1/mailboxes/user:exp/events?token=${shortLived}`);
    const ndjson = new StreamClient(`${herald.url}/v1/stream?mailbox=user:exp`, bearer(shortLived));
    await Promise.all([sse.opened, ndjson.opened]);
    await publishStatus(herald.url, "user:exp", bearer(publisher.key), { body: "before" });
    await sse.untilMessages(1);
    await ndjson.untilMessages(1);

    // A long-poll answers (empty) by the token's expiry instead of holding for 60 s (past the test timeout).
    const after = sse.messages()[0]?.cursor as string;
    const poll = await fetch(`${herald.url}/v1/mailboxes/user:exp/messages?cursor=${after}&wait=60`, {
      headers: bearer(shortLived),
    });
    expect(poll.status).toBe(200);
    expect(((await poll.json()) as { messages: unknown[] }).messages).toEqual([]);

    await Promise.all([sse.closed, ndjson.closed]);
    expect(sse.events.at(-1)).toMatchObject({ event: "auth-expired" });
    expect(JSON.parse(sse.events.at(-1)?.data ?? "{}")).toEqual({ type: "auth-expired" });
    expect(ndjson.objects.at(-1)).toEqual({ type: "auth-expired" });
    expect(herald.access.connections.streams.total).toBe(0);

    // A new token (and the old one refused) resumes from the last cursor without losing anything.
    const cursor = sse.messages().at(-1)?.cursor as string;
    await publishStatus(herald.url, "user:exp", bearer(publisher.key), { body: "while away" });
    const stale = await fetch(`${herald.url}/v1/mailboxes/user:exp/messages?cursor=${cursor}`, {
      headers: bearer(shortLived),
    });
    expect(stale.status).toBe(401);
    const fresh = await hsToken({ mailboxes: ["user:exp"] });
    const resumed = new StreamClient(`${herald.url}/v1/mailboxes/user:exp/events?token=${fresh}`, {
      "last-event-id": cursor,
    });
    expect((await resumed.untilMessages(1)).map((m) => m.body)).toEqual(["while away"]);
    resumed.close();
  });

  it("keeps streams of a long-lived token open across heartbeats", async () => {
    const token = await hsToken({ mailboxes: ["user:long"], expiresIn: 3600 });
    const sse = new StreamClient(`${herald.url}/v1/mailboxes/user:long/events`, bearer(token));
    await sse.opened;
    await sse.until(() => (sse.raw.match(/: heartbeat/g) ?? []).length >= 3);
    expect(sse.ended).toBe(false);
    sse.close();
  });
});
