import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { type PushFixture, startPushFixture, subscribePush } from "./helpers/push.js";

let fixture: PushFixture;
let herald: RunningHerald;
const users = makeKey("users", ["user:*"]);
const ops = makeKey("ops", []);
const admin = { key: ops.key, entry: { ...ops.entry, admin: true } };

beforeAll(async () => {
  fixture = await startPushFixture();
  herald = await startAuthServer({
    auth: { keys: [users.entry, admin.entry], tokens: { hs256Secret: SECRET } },
    push: fixture.options(),
  });
});
afterAll(async () => {
  await herald?.shutdown();
  await fixture?.close();
});

describe("Web Push with auth on", () => {
  it("subscribes only mailboxes the caller's token may read, and owns it by the token's sub", async () => {
    const alice = bearer(await hsToken({ sub: "alice", mailboxes: ["user:alice"] }));
    const bob = bearer(await hsToken({ sub: "bob", mailboxes: ["user:bob", "user:alice"] }));
    expect((await subscribePush(herald.url, fixture.service.subscribe(), ["user:alice"])).status).toBe(401);
    const refused = await subscribePush(herald.url, fixture.service.subscribe(), ["user:alice", "user:bob"], {
      headers: alice,
    });
    expect(refused.status).toBe(403);
    const created = await subscribePush(herald.url, fixture.service.subscribe(), ["user:alice"], { headers: alice });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const path = `${herald.url}/v1/push/subscriptions/${id}`;
    // Bob may read alice's mailbox, but the subscription is alice's: to him it does not exist.
    expect((await fetch(path, { headers: bob })).status).toBe(404);
    expect((await fetch(path, { method: "DELETE", headers: bob })).status).toBe(404);
    expect((await fetch(path, { headers: alice })).status).toBe(200);
    // An admin key may remove any (a user reporting a device lost, say).
    expect((await fetch(path, { method: "DELETE", headers: bearer(admin.key) })).status).toBe(204);
    expect((await fetch(path, { headers: alice })).status).toBe(404);
  });

  it("refuses a subscription carried by the token cookie from another site's page", async () => {
    const token = await hsToken({ sub: "alice", mailboxes: ["user:alice"] });
    const response = await subscribePush(herald.url, fixture.service.subscribe(), ["user:alice"], {
      headers: { cookie: `herald_token=${token}`, origin: "https://evil.example" },
    });
    expect(response.status).toBe(403);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("origin_not_allowed");
    // Nor may such a page delete one (given its id), though the cookie would identify the owner.
    const created = await subscribePush(herald.url, fixture.service.subscribe(), ["user:alice"], {
      headers: bearer(token),
    });
    const { id } = (await created.json()) as { id: string };
    const path = `${herald.url}/v1/push/subscriptions/${id}`;
    const cookie = { cookie: `herald_token=${token}` };
    expect(
      (await fetch(path, { method: "DELETE", headers: { ...cookie, origin: "https://evil.example" } })).status,
    ).toBe(403);
    expect((await fetch(path, { headers: cookie })).status).toBe(200);
  });

  it("refuses a publisher key: a push subscription reads, and publishing to a mailbox is not reading it", async () => {
    const response = await subscribePush(herald.url, fixture.service.subscribe(), ["user:carol"], {
      headers: bearer(users.key),
    });
    expect(response.status).toBe(403);
  });
});
