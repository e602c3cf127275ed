import { publish as ntfyClientPublish } from "ntfy";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../../src/server.js";
import { hsToken, makeKey, SECRET, startAuthServer } from "../helpers/auth.js";
import { startTestServer } from "../helpers/server.js";
import { NtfySocket, TextStream } from "./ntfy-clients.js";

const publisher = makeKey("alerts", ["alerts-*"]);
let herald: RunningHerald;
let token: string;
const logLines: string[] = [];

beforeAll(async () => {
  herald = await startAuthServer({
    auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } },
    logLines,
  });
  token = await hsToken({ sub: "phone", mailboxes: ["alerts-*"] });
});
afterAll(() => herald.shutdown());

function b64(text: string, urlSafe = false): string {
  return Buffer.from(text).toString(urlSafe ? "base64url" : "base64");
}

describe("ntfy auth over Herald's keys and tokens", () => {
  it("publishes with Bearer, ?auth= (raw url-safe or std base64) and Basic with an empty username", async () => {
    const put = (query: string, headers: Record<string, string> = {}) =>
      fetch(`${herald.url}/ntfy/alerts-disk${query}`, { method: "PUT", body: "x", headers });
    expect((await put("")).status).toBe(401);
    expect((await put("", { Authorization: `Bearer ${publisher.key}` })).status).toBe(200);
    expect((await put(`?auth=${b64(`Bearer ${publisher.key}`, true).replace(/=+$/, "")}`)).status).toBe(200);
    expect((await put(`?auth=${encodeURIComponent(b64(`Bearer ${publisher.key}`))}`)).status).toBe(200);
    expect((await put("", { Authorization: `Basic ${b64(`:${publisher.key}`)}` })).status).toBe(200);
    // A username is an ntfy user; Herald has none.
    const named = await put("", { Authorization: `Basic ${b64(`phil:${publisher.key}`)}` });
    expect(named.status).toBe(401);
    expect((await put("?auth=bm90IGEgaGVhZGVy")).status).toBe(401);
    // Herald's scopes apply: this key publishes only to alerts-*.
    const outside = await fetch(`${herald.url}/ntfy/other`, {
      method: "PUT",
      body: "x",
      headers: { Authorization: `Bearer ${publisher.key}` },
    });
    expect(outside.status).toBe(403);
    // ?auth= carries the credential in the URL; the request log names the parameter but leaves its value out.
    const logged = logLines.join("\n");
    expect(logged).toMatch(/auth=/);
    expect(logged).not.toContain(b64(`Bearer ${publisher.key}`, true).slice(0, 20));
  });

  it("subscribes with a token in ?auth=, as ntfy's WebSocket and EventSource clients send it", async () => {
    expect((await fetch(`${herald.url}/ntfy/alerts-a/json?poll=1`)).status).toBe(401);
    const auth = b64(`Bearer ${token}`, true);
    expect((await fetch(`${herald.url}/ntfy/other/json?poll=1&auth=${auth}`)).status).toBe(403);
    expect((await fetch(`${herald.url}/ntfy/alerts-a/auth?auth=${auth}`)).status).toBe(200);
    const stream = await TextStream.open(`${herald.url}/ntfy/alerts-a/json?auth=${auth}`);
    const socket = await NtfySocket.open(`${herald.url.replace("http", "ws")}/ntfy/alerts-a/ws?auth=${auth}`);
    await stream.waitFor((s) => s.events.length >= 1, "the open event");
    await socket.waitFor((events) => events.length >= 1, "the open event");
    await fetch(`${herald.url}/ntfy/alerts-a`, {
      method: "POST",
      body: "secured",
      headers: { Authorization: `Bearer ${publisher.key}` },
    });
    await stream.waitFor((s) => s.messages().length >= 1, "the message");
    await socket.waitFor((events) => events.some((e) => e.event === "message"), "the message");
    await stream.close();
    socket.close();
    expect(stream.messages()[0]?.message).toBe("secured");
  });
});

describe("the ntfy npm client (ntfy@1.15.6)", () => {
  it("publishes to Herald's ntfy API when its server URL ends with the prefix and a slash", async () => {
    const open = await startTestServer();
    try {
      const answer = (await ntfyClientPublish({
        server: `${open.url}/ntfy/`,
        topic: "npm-client",
        message: "from the npm client",
        title: "Client",
        priority: 4,
        tags: ["robot"],
      })) as Record<string, unknown>;
      expect(answer).toMatchObject({ topic: "npm-client", message: "from the npm client", title: "Client" });
      const polled = await fetch(`${open.url}/ntfy/npm-client/json?poll=1`);
      expect(JSON.parse(await polled.text())).toMatchObject({ priority: 4, tags: ["robot"] });
    } finally {
      await open.shutdown();
    }
  });
});
