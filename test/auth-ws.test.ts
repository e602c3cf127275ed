import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, noneToken, publishStatus, SECRET, startAuthServer, tamper } from "./helpers/auth.js";

type Frame = Record<string, unknown> & { type: string };

let herald: RunningHerald;
const publisher = makeKey("ci", ["*"]);

beforeAll(async () => {
  herald = await startAuthServer({ auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } } });
});
afterAll(() => herald.shutdown());

interface Opened {
  socket: WebSocket;
  frames: Frame[];
  closed: Promise<number>;
  until(predicate: (frames: Frame[]) => boolean): Promise<void>;
}

/** Opens /v1/ws; resolves the HTTP status of a refused upgrade instead. */
function open(query = "", headers: Record<string, string> = {}): Promise<Opened | number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${herald.url.replace(/^http/, "ws")}/v1/ws${query}`, { headers });
    const frames: Frame[] = [];
    socket.on("message", (data) => frames.push(JSON.parse(String(data)) as Frame));
    const closed = new Promise<number>((done) => socket.once("close", (code) => done(code)));
    socket.once("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
    socket.once("error", reject);
    socket.once("open", () =>
      resolve({
        socket,
        frames,
        closed,
        async until(predicate) {
          for (let i = 0; i < 250 && !predicate(frames); i++) await new Promise((r) => setTimeout(r, 20));
          if (!predicate(frames)) throw new Error(`timed out; frames: ${JSON.stringify(frames)}`);
        },
      }),
    );
  });
}

async function opened(query = "", headers: Record<string, string> = {}): Promise<Opened> {
  const result = await open(query, headers);
  if (typeof result === "number") throw new Error(`upgrade refused with ${result}`);
  return result;
}

describe("WebSocket", () => {
  it("refuses the upgrade with 401 without a valid token", async () => {
    const good = await hsToken({ mailboxes: ["user:alice"] });
    const none = noneToken({ sub: "a", mailboxes: ["*"], exp: Math.floor(Date.now() / 1000) + 600 });
    const expired = await hsToken({ mailboxes: ["user:alice"], expiresIn: -60 });
    const hs384 = await hsToken({ mailboxes: ["user:alice"] }, SECRET, "HS384");
    const hs512 = await hsToken({ mailboxes: ["user:alice"] }, SECRET, "HS512");
    expect(await open()).toBe(401);
    for (const token of [none, hs384, hs512, tamper(good), expired])
      expect(await open(`?token=${token}`), token).toBe(401);
    expect(await open("", bearer(hs512))).toBe(401);
    expect(await open("", { cookie: `herald_token=${hs384}` })).toBe(401);
    (await opened(`?token=${good}`)).socket.close();
  });

  it("checks every mailbox of a subscribe frame and every publish", async () => {
    const token = await hsToken({ mailboxes: ["user:*"], publish: ["user:alice"] });
    const ws = await opened("", bearer(token));
    ws.socket.send(JSON.stringify({ type: "subscribe", mailboxes: ["user:alice", "room:1"], ref: 1 }));
    ws.socket.send(JSON.stringify({ type: "publish", mailbox: "user:bob", message: { body: "x" }, ref: 2 }));
    ws.socket.send(JSON.stringify({ type: "subscribe", mailboxes: ["user:alice", "user:bob"], ref: 3 }));
    ws.socket.send(JSON.stringify({ type: "publish", mailbox: "user:alice", message: { body: "mine" }, ref: 4 }));
    await ws.until((frames) => frames.some((f) => f.type === "message"));
    const byRef = (ref: number) => ws.frames.find((frame) => frame.ref === ref);
    expect(byRef(1)).toMatchObject({ type: "error", code: "forbidden" });
    expect(byRef(2)).toMatchObject({ type: "error", code: "forbidden" });
    expect(byRef(3)).toMatchObject({ type: "subscribed" });
    expect(byRef(4)).toMatchObject({ type: "published" });
    expect(ws.frames.filter((f) => f.type === "message").map((f) => f.body)).toEqual(["mine"]);
    ws.socket.close();
  });

  it("takes the token from the cookie or the query, and lets a key publish but not read", async () => {
    const token = await hsToken({ mailboxes: ["user:carol"] });
    const byCookie = await opened("", { cookie: `herald_token=${token}`, origin: herald.url });
    const byQuery = await opened(`?token=${token}`);
    for (const ws of [byCookie, byQuery])
      ws.socket.send(JSON.stringify({ type: "subscribe", mailboxes: ["user:carol"] }));
    await byCookie.until((f) => f.some((x) => x.type === "subscribed"));
    await byQuery.until((f) => f.some((x) => x.type === "subscribed"));
    const key = await opened("", bearer(publisher.key));
    key.socket.send(JSON.stringify({ type: "subscribe", mailboxes: ["user:carol"], ref: "s" }));
    key.socket.send(JSON.stringify({ type: "publish", mailbox: "user:carol", message: "hi", ref: "p" }));
    await key.until((f) => f.length >= 2);
    expect(key.frames.find((f) => f.ref === "s")).toMatchObject({ type: "error", code: "forbidden" });
    expect(key.frames.find((f) => f.ref === "p")).toMatchObject({ type: "published" });
    await byQuery.until((f) => f.some((x) => x.type === "message" && x.body === "hi"));
    for (const ws of [byCookie, byQuery, key]) ws.socket.close();
  });

  it("sends auth-expired and closes with 4001 when the token expires", async () => {
    const token = await hsToken({ mailboxes: ["user:exp"], expiresIn: 0 });
    const ws = await opened(`?token=${token}`);
    ws.socket.send(JSON.stringify({ type: "subscribe", mailboxes: ["user:exp"] }));
    await publishStatus(herald.url, "user:exp", bearer(publisher.key));
    expect(await ws.closed).toBe(4001);
    expect(ws.frames.at(-1)).toEqual({ type: "auth-expired" });
    // The server sees the close a moment after the client does.
    for (let i = 0; i < 100 && herald.access.connections.streams.total > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(herald.access.connections.streams.total).toBe(0);
  });
});
