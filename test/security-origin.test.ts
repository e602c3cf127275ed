import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";

let herald: RunningHerald | undefined;
afterEach(async () => {
  await herald?.shutdown();
  herald = undefined;
});

function running(): RunningHerald {
  if (herald === undefined) throw new Error("no server");
  return herald;
}

/** Opens /v1/ws; resolves the open socket, or the HTTP status of a refused upgrade. */
function upgrade(headers: Record<string, string>, query = ""): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${running().url.replace(/^http/, "ws")}/v1/ws${query}`, { headers });
    socket.once("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
    socket.once("error", reject);
    socket.once("open", () => resolve(socket));
  });
}

async function upgradeStatus(headers: Record<string, string>, query = ""): Promise<number> {
  const result = await upgrade(headers, query);
  if (typeof result === "number") return result;
  result.close();
  return 101;
}

/** What a hostile page's `<form enctype="text/plain" method="post">` sends. */
function formPost(mailbox: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${running().url}/v1/mailboxes/${mailbox}/messages`, {
    method: "POST",
    headers: { "content-type": "text/plain", ...headers },
    body: "forged=1",
  });
}

/** fetch may not set Host; node:http sends exactly what it is given. */
function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body = "",
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sent = request({ host: "127.0.0.1", port, method, path, headers }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        text += chunk;
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
    });
    sent.on("error", reject);
    sent.end(body);
  });
}

const APP = "https://app.example";
const EVIL = "https://evil.example";

describe("cross-site use of the token cookie", () => {
  it("refuses a WebSocket upgrade and a publish carried by the cookie unless the page is ours or listed", async () => {
    herald = await startAuthServer({ auth: { tokens: { hs256Secret: SECRET }, cors: { origins: [APP] } } });
    const token = await hsToken({ sub: "alice", mailboxes: ["user:alice"], publish: ["user:alice"] });
    const cookie = `herald_token=${token}`;
    const own = running().url;

    expect(await upgradeStatus({ cookie, origin: EVIL })).toBe(403);
    expect(await upgradeStatus({ cookie, origin: "null" })).toBe(403);
    expect(await upgradeStatus({ cookie })).toBe(403);
    expect(await upgradeStatus({ cookie, origin: APP })).toBe(101);
    expect(await upgradeStatus({ cookie, origin: own })).toBe(101);

    const forged = await formPost("user:alice", { cookie, origin: EVIL });
    expect(forged.status).toBe(403);
    expect(((await forged.json()) as { error: { code: string } }).error.code).toBe("origin_not_allowed");
    expect((await formPost("user:alice", { cookie })).status).toBe(403);
    expect((await formPost("user:alice", { cookie, origin: APP })).status).toBe(201);
    expect((await formPost("user:alice", { cookie, origin: own })).status).toBe(201);

    // Credentials a page must hold itself are not ambient: any origin may use them, and they win over the cookie.
    expect(await upgradeStatus({ origin: EVIL }, `?token=${token}`)).toBe(101);
    expect(await upgradeStatus({ cookie, origin: EVIL }, `?token=${token}`)).toBe(101);
    expect((await formPost("user:alice", { ...bearer(token), origin: EVIL })).status).toBe(201);
    // A cross-site read with the cookie is refused too; a same-origin one (no Origin on GET) is not.
    const read = (headers: Record<string, string>) =>
      fetch(`${running().url}/v1/mailboxes/user:alice/messages`, { headers: { cookie, ...headers } });
    expect((await read({ origin: EVIL })).status).toBe(403);
    expect((await read({})).status).toBe(200);
    const stored = (await (await read({})).json()) as { messages: { body: string }[] };
    expect(stored.messages.map((m) => m.body)).toEqual(["forged=1", "forged=1", "forged=1"]);
  });

  it("never lets the cookie act from a wildcard origin", async () => {
    const publisher = makeKey("ci", ["*"]);
    herald = await startAuthServer({
      auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET }, cors: { origins: ["*"] } },
    });
    const token = await hsToken({ mailboxes: ["user:alice"], publish: ["user:alice"] });
    expect(await upgradeStatus({ cookie: `herald_token=${token}`, origin: EVIL })).toBe(403);
    expect((await formPost("user:alice", { cookie: `herald_token=${token}`, origin: EVIL })).status).toBe(403);
  });
});

describe("loopback dev mode", () => {
  it("lets only pages on this machine in: CORS, WebSocket Origin and publishes", async () => {
    herald = await startAuthServer();
    const preflight = (origin: string) =>
      fetch(`${running().url}/v1/mailboxes/m/messages`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST" },
      });
    for (const origin of ["http://localhost:3000", "http://127.0.0.1:5173", "http://[::1]:8000"]) {
      const answer = await preflight(origin);
      expect(answer.status, origin).toBe(204);
      expect(answer.headers.get("access-control-allow-origin")).toBe(origin);
      expect(await upgradeStatus({ origin })).toBe(101);
      expect((await formPost("m", { origin })).status).toBe(201);
    }
    for (const origin of [EVIL, "http://localhost.evil.example", "null"]) {
      expect((await preflight(origin)).headers.get("access-control-allow-origin"), origin).toBeNull();
      expect(await upgradeStatus({ origin }), origin).toBe(403);
      expect((await formPost("m", { origin })).status, origin).toBe(403);
    }
    // curl and other non-browser clients send no Origin.
    expect(await upgradeStatus({})).toBe(101);
    expect((await formPost("m", {})).status).toBe(201);
  });

  it("refuses a Host that is not a loopback name (DNS rebinding), on every route", async () => {
    herald = await startAuthServer();
    const { port } = running();
    const withHost = (host: string, path = "/v1/mailboxes/m/messages") => rawRequest(port, "GET", path, { host });
    const rebound = await withHost(`evil.example:${port}`);
    expect(rebound.status).toBe(403);
    expect((JSON.parse(rebound.body) as { error: { code: string } }).error.code).toBe("host_not_allowed");
    expect((await withHost(`evil.example:${port}`, "/demo/chat")).status).toBe(403);
    expect(await upgradeStatus({ host: "evil.example" })).toBe(403);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, "app.localhost", "localhost"]) {
      expect((await withHost(host)).status, host).toBe(200);
    }
  });

  it("lets auth.cors.origins, given without keys or tokens, widen who may call", async () => {
    herald = await startAuthServer({ auth: { cors: { origins: [APP] } } });
    expect(running().access.authOn).toBe(false);
    expect(await upgradeStatus({ origin: APP })).toBe(101);
    expect(await upgradeStatus({ origin: "http://localhost:3000" })).toBe(403);
    expect((await formPost("m", { origin: APP })).status).toBe(201);
  });

  it("serves any Host with --insecure, but still only loopback pages cross-origin", async () => {
    herald = await startAuthServer({ config: { host: "0.0.0.0", insecure: true } });
    const { port } = running();
    const host = `herald.lan:${port}`;
    expect((await rawRequest(port, "GET", "/v1/mailboxes/m/messages", { host })).status).toBe(200);
    expect(await upgradeStatus({ origin: EVIL })).toBe(403);
    // A page served by Herald itself under that name is same-origin.
    const own = { host, origin: `http://${host}` };
    expect((await rawRequest(port, "POST", "/v1/mailboxes/m/messages", own, "hi")).status).toBe(201);
    const other = { host, origin: EVIL };
    expect((await rawRequest(port, "POST", "/v1/mailboxes/m/messages", other, "hi")).status).toBe(403);
  });
});
