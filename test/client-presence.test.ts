import { afterEach, describe, expect, it } from "vitest";
import {
  type HeraldClientError,
  type HeraldMessage,
  markRead,
  type PresenceEvent,
  presence,
  type ReadEvent,
  readState,
  type SubscribeOptions,
  type Subscription,
  subscribe,
  type TransportName,
  type UnreadEvent,
} from "../client/src/index.js";
import type { RunningHerald } from "../src/server.js";
import { hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { testClientOptions } from "./helpers/client-options.js";
import { publishMany } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

/** How long an event may take to arrive over a real socket. */
const WAIT_MS = 10_000;

/** One subscription and everything it heard. */
interface Watched {
  readonly subscription: Subscription;
  readonly messages: HeraldMessage[];
  readonly presence: PresenceEvent[];
  readonly reads: ReadEvent[];
  readonly unread: UnreadEvent[];
  readonly errors: HeraldClientError[];
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(options: Parameters<typeof startTestServer>[0] = {}): Promise<RunningHerald> {
  const herald = await startTestServer(options);
  cleanups.push(() => herald.shutdown());
  return herald;
}

function watch(url: string, mailboxes: string[], options: SubscribeOptions): Watched {
  const seen: Omit<Watched, "subscription"> = { messages: [], presence: [], reads: [], unread: [], errors: [] };
  const subscription = subscribe(
    mailboxes,
    {
      onMessage: (message) => seen.messages.push(message),
      onPresence: (event) => seen.presence.push(event),
      onRead: (event) => seen.reads.push(event),
      onUnread: (event) => seen.unread.push(event),
      onError: (error) => seen.errors.push(error),
    },
    { ...testClientOptions(url), ...options },
  );
  cleanups.push(() => subscription.close());
  return { subscription, ...seen };
}

/** The subs the live presence of `watched` lists on its first mailbox. */
function members(watched: Watched): string[] | undefined {
  return watched.subscription
    .present()
    ?.members?.map((member) => member.sub)
    .sort();
}

const show = (watched: Watched) => () =>
  JSON.stringify({ presence: watched.presence, reads: watched.reads, unread: watched.unread, errors: watched.errors });

describe.each<TransportName>(["sse", "websocket"])("client presence and read state over %s", (transport) => {
  it("sees readers join and leave once per reader, however many connections each holds", async () => {
    const herald = await server();
    const ann = watch(herald.url, ["room:p"], { transport, presence: true, reader: "ann" });
    await until(() => members(ann)?.join() === "ann", show(ann), WAIT_MS);
    expect(ann.presence[0]).toMatchObject({ type: "presence", mailbox: "room:p", count: 1 });
    const bob1 = watch(herald.url, ["room:p"], { transport, reader: "bob" });
    const bob2 = watch(herald.url, ["room:p"], { transport, reader: "bob" });
    await until(() => bob1.subscription.status.state === "open" && bob2.subscription.status.state === "open");
    await until(() => members(ann)?.join() === "ann,bob", show(ann), WAIT_MS);
    expect((await ann.subscription.presence()).members?.find((m) => m.sub === "bob")?.connections).toBe(2);
    bob1.subscription.close();
    await until(async () => (await presence("room:p", { url: herald.url })).members?.length === 2);
    await until(async () => (await presence("room:p", { url: herald.url })).members?.[1]?.connections === 1);
    bob2.subscription.close();
    await until(() => members(ann)?.join() === "ann", show(ann), WAIT_MS);
    expect(ann.presence.map((event) => `${event.type}${"sub" in event ? ` ${event.sub}` : ""}`)).toEqual([
      "presence",
      "join bob",
      "leave bob",
    ]);
    expect(ann.presence[1]).toMatchObject({ type: "join", sub: "bob", info: null, count: 2 });
  });

  it("tells every subscription of a reader when it marks read, and keeps unread counts current", async () => {
    const herald = await server();
    const published = await publishMany(herald.url, "user:reads", 3);
    const phone = watch(herald.url, ["user:reads"], { transport, unread: true, reader: "alice" });
    const laptop = watch(herald.url, ["user:reads"], { transport, unread: true, reader: "alice" });
    for (const device of [phone, laptop]) {
      await until(() => device.messages.length === 3 && device.subscription.unread() === 3, show(device), WAIT_MS);
    }
    const state = await phone.subscription.markRead(phone.messages[1] as HeraldMessage);
    expect(state).toMatchObject({ mailbox: "user:reads", seq: 2, unread: 1 });
    await until(() => laptop.reads.length === 1 && laptop.subscription.unread("user:reads") === 1, show(laptop));
    expect(laptop.reads[0]).toMatchObject({ type: "read", mailbox: "user:reads", seq: 2, unread: 1 });
    expect(laptop.reads[0]?.cursor).toBe(state.cursor);
    // The answer and the stream's event are one move: heard once.
    await until(() => phone.subscription.unread() === 1);
    expect(phone.reads).toHaveLength(1);

    await publishMany(herald.url, "user:reads", 2, 4);
    for (const device of [phone, laptop]) await until(() => device.subscription.unread() === 3, show(device));
    expect(laptop.unread.map((event) => event.unread).slice(0, 2)).toEqual([3, 1]);

    // Older positions change nothing; the standalone helpers see the same state.
    const older = await markRead("user:reads", published[0]?.cursor as string, { url: herald.url, reader: "alice" });
    expect(older).toMatchObject({ seq: 2, unread: 3 });
    expect(await laptop.subscription.readState()).toMatchObject({ seq: 2, unread: 3 });
    const [again, other] = await readState(["user:reads", "user:none"], { url: herald.url, reader: "alice" });
    expect(again).toMatchObject({ mailbox: "user:reads", seq: 2, unread: 3 });
    expect(other).toMatchObject({ mailbox: "user:none", seq: 0, unread: 0 });

    await laptop.subscription.markRead("user:reads", laptop.messages[4]?.cursor as string);
    for (const device of [phone, laptop]) await until(() => device.subscription.unread() === 0, show(device));
    expect(phone.reads.map((event) => event.seq)).toEqual([2, 5]);
    expect(await readState("user:reads", { url: herald.url, reader: "alice" })).toMatchObject({ seq: 5, unread: 0 });
  });
});

describe("client presence and read state over long-poll", () => {
  it("is present while it polls, and hears presence and read moves after each poll", async () => {
    const herald = await server({ presenceSettings: { longPollGraceSeconds: 0.3 } });
    await publishMany(herald.url, "room:lp", 2);
    const watcher = watch(herald.url, ["room:lp"], { transport: "sse", presence: true, reader: "watcher" });
    await until(() => members(watcher)?.join() === "watcher", show(watcher), WAIT_MS);
    const poller = watch(herald.url, ["room:lp"], {
      transport: "long-poll",
      presence: true,
      unread: true,
      reader: "poller",
    });
    await until(() => members(watcher)?.join() === "poller,watcher", show(watcher), WAIT_MS);
    await until(() => members(poller)?.join() === "poller,watcher", show(poller), WAIT_MS);
    await until(() => poller.messages.length === 2 && poller.subscription.unread() === 2, show(poller), WAIT_MS);

    // A move made elsewhere arrives with the poll after it.
    await markRead("room:lp", poller.messages[0]?.cursor as string, { url: herald.url, reader: "poller" });
    await until(() => poller.reads.length === 1 && poller.subscription.unread() === 1, show(poller), WAIT_MS);
    // Its own move is heard at once, from the answer, and not again from the next poll.
    await poller.subscription.markRead(poller.messages[1] as HeraldMessage);
    expect(poller.subscription.unread()).toBe(0);
    await publishMany(herald.url, "room:lp", 1, 3);
    await until(() => poller.subscription.unread() === 1, show(poller), WAIT_MS);
    expect(poller.reads.map((event) => event.seq)).toEqual([1, 2]);

    const late = watch(herald.url, ["room:lp"], { transport: "sse", reader: "late" });
    await until(() => members(poller)?.join() === "late,poller,watcher", show(poller), WAIT_MS);
    late.subscription.close();
    await until(() => members(poller)?.join() === "poller,watcher", show(poller), WAIT_MS);
    expect(poller.presence.map((event) => event.type)).toEqual(["presence", "join", "leave"]);

    poller.subscription.close();
    // The poller stays for the grace period after its last poll, then leaves.
    await until(() => members(watcher)?.join() === "watcher", show(watcher), WAIT_MS);
    expect(watcher.presence.slice(-1)[0]).toMatchObject({ type: "leave", sub: "poller" });
  });
});

describe("client reader events, robustness", () => {
  it("skips event names it does not know, and reader events nobody handles", async () => {
    const herald = await server();
    const frames = [
      'event: future\ndata: {"not":"known"\n\n',
      'event: presence\ndata: {"type":"something-new","mailbox":"x"}\n\n',
      'event: read\ndata: {"type":"read","mailbox":"user:r","seq":1,"cursor":"c","unread":0}\n\n',
    ];
    // A stream whose first bytes are events this client must pass over; then Herald's real stream.
    const fakeFetch: typeof fetch = async (input, init) => {
      const real = await fetch(input, init);
      if (!String(input).includes("/v1/events")) return real;
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          for (const frame of frames) controller.enqueue(encoder.encode(frame));
          const reader = (real.body as ReadableStream<Uint8Array>).getReader();
          for (;;) {
            const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
            if (done || !value) break;
            controller.enqueue(value);
          }
          controller.close();
        },
      });
      return new Response(body, { status: real.status, headers: real.headers });
    };
    const messages: string[] = [];
    const subscription = subscribe(
      ["user:r"],
      { onMessage: (message) => messages.push(message.body ?? "") },
      { url: herald.url, transport: "sse", cursorStore: null, fetch: fakeFetch, reader: "r", presence: true },
    );
    cleanups.push(() => subscription.close());
    await until(() => subscription.status.state === "open");
    await publishMany(herald.url, "user:r", 2);
    await until(
      () => messages.length === 2,
      () => JSON.stringify(messages),
      WAIT_MS,
    );
    expect(subscription.present()).toMatchObject({ mailbox: "user:r", count: 1 });
    expect(subscription.unread()).toBeUndefined();
  });

  it("takes the reader from the token, and shows its info claim to others", async () => {
    const publisher = makeKey("ci", ["*"]);
    const herald = await startAuthServer({ auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } } });
    cleanups.push(() => herald.shutdown());
    const tokenOf = (sub: string, name: string) => () =>
      hsToken({ sub, mailboxes: ["room:auth"], info: { name }, expiresIn: 600 });
    const carol = watch(herald.url, ["room:auth"], {
      transport: "sse",
      presence: true,
      token: tokenOf("carol", "Carol"),
    });
    const dave = watch(herald.url, ["room:auth"], {
      transport: "websocket",
      unread: true,
      token: tokenOf("dave", "Dave"),
    });
    await until(() => members(carol)?.join() === "carol,dave", show(carol), WAIT_MS);
    expect(carol.subscription.present()?.members?.find((m) => m.sub === "dave")?.info).toEqual({ name: "Dave" });
    await until(() => dave.subscription.unread() === 0, show(dave), WAIT_MS);
    const answer = await dave.subscription.presence();
    expect(answer.members?.map((m) => m.info)).toEqual([{ name: "Carol" }, { name: "Dave" }]);
    // A reader name that is not the token's sub is refused.
    await expect(
      markRead("room:auth", "W10", { url: herald.url, token: tokenOf("dave", "Dave"), reader: "eve" }),
    ).rejects.toMatchObject({ status: 400 });
  });
});
