import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, SECRET, startAuthServer } from "./helpers/auth.js";
import { until } from "./helpers/until.js";

let herald: RunningHerald | undefined;
const sockets: WebSocket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.terminate();
  await herald?.shutdown();
  herald = undefined;
});

interface Refusal {
  status: number;
  retryAfter: string | undefined;
}

/** Opens /v1/ws; resolves the open socket, or the status and Retry-After of a refused upgrade. */
function upgrade(headers: Record<string, string> = {}): Promise<WebSocket | Refusal> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${(herald as RunningHerald).url.replace(/^http/, "ws")}/v1/ws`, { headers });
    sockets.push(socket);
    socket.once("unexpected-response", (_request, response) => {
      const retryAfter = response.headers["retry-after"];
      resolve({
        status: response.statusCode ?? 0,
        retryAfter: typeof retryAfter === "string" ? retryAfter : undefined,
      });
      response.resume();
    });
    socket.once("error", reject);
    socket.once("open", () => resolve(socket));
  });
}

describe("WebSocket connection caps", () => {
  it("answers 429 with Retry-After to a second upgrade from a visitor allowed one stream, and frees it on close", async () => {
    herald = await startAuthServer({ auth: { tokens: { hs256Secret: SECRET } }, limits: { streamsPerVisitor: 1 } });
    const alice = bearer(await hsToken({ sub: "alice", mailboxes: ["*"] }));
    const first = await upgrade(alice);
    expect(first).toBeInstanceOf(WebSocket);
    const second = await upgrade(alice);
    expect(second).toMatchObject({ status: 429 });
    expect((second as Refusal).retryAfter).toMatch(/^\d+$/);
    // Another subject is another visitor.
    expect(await upgrade(bearer(await hsToken({ sub: "bob", mailboxes: ["*"] })))).toBeInstanceOf(WebSocket);
    (first as WebSocket).close();
    await until(() => herald?.access.connections.streams.total === 1);
    expect(await upgrade(alice)).toBeInstanceOf(WebSocket);
  });

  it("counts a WebSocket and an SSE stream of one visitor together", async () => {
    herald = await startAuthServer({ limits: { streamsPerVisitor: 1 } });
    const controller = new AbortController();
    const sse = await fetch(`${herald.url}/v1/mailboxes/a/events`, { signal: controller.signal });
    expect(sse.status).toBe(200);
    expect(await upgrade()).toMatchObject({ status: 429 });
    controller.abort();
    await until(() => herald?.access.connections.streams.total === 0);
    expect(await upgrade()).toBeInstanceOf(WebSocket);
  });

  it("answers 503 with Retry-After to an upgrade when maxConnections are held, while publishes still work", async () => {
    herald = await startAuthServer({ limits: { maxConnections: 2 } });
    expect(await upgrade()).toBeInstanceOf(WebSocket);
    expect(await upgrade()).toBeInstanceOf(WebSocket);
    await until(() => herald?.access.connections.streams.total === 2);
    const refused = await upgrade();
    expect(refused).toMatchObject({ status: 503 });
    expect((refused as Refusal).retryAfter).toMatch(/^\d+$/);
    const published = await fetch(`${herald.url}/v1/mailboxes/a/messages`, { method: "POST", body: "still open" });
    expect(published.status).toBe(201);
    sockets[0]?.close();
    await until(() => herald?.access.connections.streams.total === 1);
    expect(await upgrade()).toBeInstanceOf(WebSocket);
  });
});
