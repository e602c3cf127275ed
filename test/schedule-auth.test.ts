import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";

let herald: RunningHerald;
const users = makeKey("users", ["user:*"]);
const rooms = makeKey("rooms", ["room:*"]);

beforeAll(async () => {
  herald = await startAuthServer({ auth: { keys: [users.entry, rooms.entry], tokens: { hs256Secret: SECRET } } });
});
afterAll(() => herald.shutdown());

function scheduleAs(headers: Record<string, string>, mailbox: string): Promise<Response> {
  return fetch(`${herald.url}/v1/mailboxes/${mailbox}/messages?delay=1h`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ body: "later" }),
  });
}

const list = (headers: Record<string, string>, mailbox: string) =>
  fetch(`${herald.url}/v1/mailboxes/${mailbox}/scheduled`, { headers });
const cancel = (headers: Record<string, string>, id: string) =>
  fetch(`${herald.url}/v1/scheduled/${id}`, { method: "DELETE", headers });

describe("scheduled delivery with auth on", () => {
  it("needs publish rights on the mailbox to schedule, list and cancel", async () => {
    expect((await scheduleAs({}, "user:alice")).status).toBe(401);
    expect((await scheduleAs(bearer(rooms.key), "user:alice")).status).toBe(403);
    const scheduled = await scheduleAs(bearer(users.key), "user:alice");
    expect(scheduled.status).toBe(202);
    const { id } = (await scheduled.json()) as { id: string };

    expect((await list({}, "user:alice")).status).toBe(401);
    expect((await list(bearer(rooms.key), "user:alice")).status).toBe(403);
    // A subscriber token may read the mailbox, not see what publishers have scheduled for it.
    const reader = await hsToken({ sub: "alice", mailboxes: ["user:alice"] });
    const asReader = await list(bearer(reader), "user:alice");
    expect(asReader.status).toBe(403);
    expect(((await asReader.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    const listed = await list(bearer(users.key), "user:alice");
    expect(listed.status).toBe(200);
    expect(((await listed.json()) as { scheduled: { id: string }[] }).scheduled.map((entry) => entry.id)).toEqual([id]);
    // A token with publish rights on the mailbox may list too.
    const publisherToken = await hsToken({ sub: "svc", mailboxes: [], publish: ["user:*"] });
    expect((await list(bearer(publisherToken), "user:alice")).status).toBe(200);

    expect((await cancel({}, id)).status).toBe(401);
    // Another mailbox's message answers as an unknown one does: ids cannot be probed.
    const foreign = await cancel(bearer(rooms.key), id);
    const unknown = await cancel(bearer(rooms.key), "unknown-id");
    expect([foreign.status, unknown.status]).toEqual([404, 404]);
    expect((await cancel(bearer(users.key), id)).status).toBe(204);
    expect((await cancel(bearer(users.key), id)).status).toBe(404);
  });
});
