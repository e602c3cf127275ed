import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { DEFAULT_CONFIG } from "../src/config.js";
import { parseFileConfig } from "../src/config-file.js";
import { type RunningHerald, startHerald } from "../src/server.js";
import { createMemoryStore } from "../src/store/memory-store.js";
import { bearer, hsToken, makeKey, SECRET } from "./helpers/auth.js";
import { githubHeaders } from "./helpers/hooks.js";
import { until } from "./helpers/until.js";

const HOOK_SECRET = "hook-secret-for-the-publish-command";
const publisher = makeKey("ci", ["*"]);

let herald: RunningHerald | undefined;
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.terminate();
  await herald?.shutdown();
  herald = undefined;
});

/** Auth on, one GitHub hook, and the given limits: every way to publish is open. */
async function start(limits: unknown = {}): Promise<RunningHerald> {
  const file = parseFileConfig(
    {
      auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } },
      limits,
      hooks: [{ id: "gh", mailbox: "ops", verify: { scheme: "github", secret: HOOK_SECRET }, body: "{{action}}" }],
    },
    {},
  );
  herald = await startHerald(
    { ...DEFAULT_CONFIG, port: 0, drainTimeoutSeconds: 1 },
    createMemoryStore({ maxMailboxes: 100, maxMessagesPerMailbox: 100, maxBytes: 1 << 20 }),
    { auth: file.auth, limits: file.limits, hooks: file.hooks },
  );
  return herald;
}

interface Answer {
  readonly status: number;
  readonly code: string | undefined;
  readonly retryAfter: string | undefined;
}

async function answerOf(response: Response): Promise<Answer> {
  const json = (await response.json()) as { error?: { code: string } };
  return {
    status: response.status,
    code: json.error?.code,
    retryAfter: response.headers.get("retry-after") ?? undefined,
  };
}

function post(server: RunningHerald, body: string): Promise<Answer> {
  const headers = bearer(publisher.key);
  return fetch(`${server.url}/v1/mailboxes/ops/messages`, { method: "POST", headers, body }).then(answerOf);
}

function hook(server: RunningHerald, action: string): Promise<Answer> {
  const body = JSON.stringify({ action });
  const headers = { "content-type": "application/json", ...githubHeaders(HOOK_SECRET, body, `delivery-${action}`) };
  return fetch(`${server.url}/v1/hooks/gh`, { method: "POST", headers, body }).then(answerOf);
}

/** A WebSocket publishing as a token holder; each publish resolves with the answer frame. */
async function websocket(server: RunningHerald): Promise<(body: string) => Promise<Record<string, unknown>>> {
  const token = await hsToken({ sub: "writer", mailboxes: ["ops"], publish: ["ops"] });
  const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}/v1/ws`, { headers: bearer(token) });
  sockets.push(socket);
  const frames: Record<string, unknown>[] = [];
  socket.on("message", (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
  await new Promise((resolve) => socket.once("open", resolve));
  let ref = 0;
  return async (body) => {
    const mine = ++ref;
    socket.send(JSON.stringify({ type: "publish", mailbox: "ops", message: body, ref: mine }));
    await until(() => frames.some((frame) => frame.ref === mine), "the answer");
    return frames.find((frame) => frame.ref === mine) as Record<string, unknown>;
  };
}

describe("the publish command, whatever carries the publish", () => {
  it("refuses every transport alike once the publisher's rate is spent", async () => {
    const server = await start({ publish: { rate: 0.001, burst: 1 } });
    const publishOverWs = await websocket(server);
    expect((await post(server, "first")).status).toBe(201);
    expect((await publishOverWs("first")).type).toBe("published");
    expect((await hook(server, "first")).status).toBe(202);

    const overPost = await post(server, "second");
    const overWs = await publishOverWs("second");
    const overHook = await hook(server, "second");
    expect(overPost).toMatchObject({ status: 429, code: "too_many_requests" });
    expect(overPost.retryAfter).toMatch(/^\d+$/);
    expect(overHook).toMatchObject({ status: 429, code: "too_many_requests", retryAfter: overPost.retryAfter });
    expect(overWs).toMatchObject({ type: "error", code: "too_many_requests" });
    expect(server.hub.counters.published).toBe(3);
  });

  it("refuses every transport alike while draining, with one Retry-After", async () => {
    const server = await start();
    const publishOverWs = await websocket(server);
    void server.hub.drain();
    const overPost = await post(server, "late");
    const overHook = await hook(server, "late");
    const overWs = await publishOverWs("late");
    expect(overPost).toEqual({ status: 503, code: "draining", retryAfter: "1" });
    expect(overHook).toEqual(overPost);
    expect(overWs).toMatchObject({ type: "error", code: "draining" });
    expect(server.hub.counters.published).toBe(0);
  });
});
