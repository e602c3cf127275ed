import { afterAll, describe, expect, it } from "vitest";
import { SIGNERS } from "../src/hooks/signers.js";
import type { HookScheme } from "../src/hooks/verifiers.js";
import type { RunningHerald } from "../src/server.js";
import type { MailboxStore } from "../src/store/mailbox-store.js";
import { storeBackends, type TestBackend } from "./helpers/backends.js";
import { deliver, githubHeaders, nowSeconds, readMailbox, startHookServer } from "./helpers/hooks.js";
import { testRedis } from "./helpers/redis.js";

// Issue 10, items 12 and 13: replays are recognised atomically and, where the
// store is durable, across restarts; a publisher cannot take a delivery's key.

const SECRETS: Readonly<Record<HookScheme, string>> = {
  github: "replay-gh",
  stripe: "whsec_replay",
  "standard-webhooks": `whsec_${Buffer.from("replay-standard-webhooks-key-012").toString("base64")}`,
  "hmac-sha256": "replay-plain",
};
const HOOK_OF: Readonly<Record<HookScheme, string>> = {
  github: "gh",
  stripe: "pay",
  "standard-webhooks": "svc",
  "hmac-sha256": "plain",
};
const PARALLEL_REPLAYS = 10;
const ID_HEADER = "X-Request-Id";
const SIG_HEADER = "X-Sig";
const CONFIG = {
  hooks: (Object.keys(HOOK_OF) as HookScheme[]).map((scheme) => ({
    id: HOOK_OF[scheme],
    mailbox: HOOK_OF[scheme],
    verify: {
      scheme,
      secret: SECRETS[scheme],
      ...(scheme === "hmac-sha256" ? { header: SIG_HEADER, idHeader: ID_HEADER } : {}),
    },
    title: "{{note}}",
  })),
  // Room for every parallel replay at once: the in-flight cap is not what these tests are about.
  limits: { hooksPerVisitor: PARALLEL_REPLAYS, maxHooksInFlight: PARALLEL_REPLAYS },
};

/** Opens the store on the same data each time, as a restarted server would. */
type Backend = TestBackend;

const redis = await testRedis();
if ("reason" in redis) console.warn(`Redis webhook replay tests skipped: ${redis.reason}`);
afterAll(async () => {
  if (!("reason" in redis)) await redis.stop();
});

/** `durable`: the store keeps its data across a restart of the server. */
const BACKENDS: readonly { name: string; durable: boolean; make: () => Backend }[] = storeBackends(
  redis,
  "hook-replay",
).map((kind) => ({ name: kind.name, durable: kind.name !== "memory", make: kind.make }));

/** Longest the barrier below holds appends waiting for the rest of the party. */
const BARRIER_WAIT_MS = 5000;

/**
 * The store, except that appends wait until `parties` of them are pending: the
 * deliveries are then all between their replay check and their publish at
 * once, the window a check-then-remember leaves open, however fast the store.
 */
function withAppendBarrier(store: MailboxStore, parties: number): MailboxStore {
  const waiting: (() => void)[] = [];
  let open = false;
  const release = () => {
    open = true;
    for (const resolve of waiting.splice(0)) resolve();
  };
  return new Proxy(store, {
    get(target, property) {
      if (property === "append") {
        return async (items: Parameters<MailboxStore["append"]>[0]) => {
          if (!open) {
            await new Promise<void>((resolve) => {
              waiting.push(resolve);
              if (waiting.length === 1) setTimeout(release, BARRIER_WAIT_MS).unref();
              if (waiting.length >= parties) release();
            });
          }
          return target.append(items);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const payload = (note: string, id = note) => JSON.stringify({ id, note });

function signed(scheme: HookScheme, body: string, id: string): Record<string, string> {
  const headers = SIGNERS[scheme]({
    secret: SECRETS[scheme],
    body: Buffer.from(body),
    nowSeconds: nowSeconds(),
    id,
    header: SIG_HEADER,
  });
  return scheme === "hmac-sha256" ? { ...headers, [ID_HEADER]: id } : headers;
}

/** A server on a fresh store of the backend; `restart` shuts it down and serves the same data again. */
async function serve(backend: Backend, cap?: number, wrap = (store: MailboxStore) => store) {
  let herald: RunningHerald = await startHookServer(CONFIG, {}, {}, { store: wrap(await backend.open(cap)) });
  return {
    get url() {
      return herald.url;
    },
    async restart() {
      await herald.shutdown();
      herald = await startHookServer(CONFIG, {}, {}, { store: await backend.open(cap) });
    },
    async stop() {
      await herald.shutdown();
      await backend.cleanup();
    },
  };
}

describe.each(BACKENDS)("on the $name store", ({ durable, make }) => {
  it(`stores ${PARALLEL_REPLAYS} parallel copies of one signed GitHub body under fresh delivery ids once`, async () => {
    const server = await serve(make(), undefined, (store) => withAppendBarrier(store, PARALLEL_REPLAYS));
    try {
      const body = payload("parallel");
      const ids = Array.from({ length: PARALLEL_REPLAYS }, (_, i) => `fresh-${i}`);
      const answers = await Promise.all(
        ids.map((id) => deliver(server.url, "gh", body, githubHeaders(SECRETS.github, body, id))),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([...Array(PARALLEL_REPLAYS - 1).fill(200), 202]);
      expect(answers.filter((answer) => answer.json.duplicate === true)).toHaveLength(PARALLEL_REPLAYS - 1);
      expect(new Set(answers.map((answer) => answer.json.id)).size).toBe(1);
      expect(await readMailbox(server.url, "gh")).toHaveLength(1);
      // Any of those ids sent again, or yet another one, is the same delivery.
      const later = await deliver(server.url, "gh", body, githubHeaders(SECRETS.github, body, "fresh-later"));
      expect(later).toMatchObject({ status: 200, json: { id: answers[0]?.json.id, duplicate: true } });
    } finally {
      await server.stop();
    }
  });

  it.each(Object.keys(HOOK_OF) as HookScheme[])(
    "delivers a %s delivery whose id a publisher used first in the old hook key format",
    async (scheme) => {
      const server = await serve(make());
      const hook = HOOK_OF[scheme];
      try {
        const deliveryId = `${hook}-squatted`;
        const squat = await fetch(`${server.url}/v1/mailboxes/${hook}/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": `hook:${hook}:${deliveryId}` },
          body: JSON.stringify({ title: "squatter" }),
        });
        expect(squat.status).toBe(201);
        // The keys hooks use now contain spaces, which a publisher cannot send.
        const spaced = await fetch(`${server.url}/v1/mailboxes/${hook}/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": `hook ${hook} id ${deliveryId}` },
          body: JSON.stringify({ title: "squatter" }),
        });
        expect(spaced.status).toBe(400);
        const body = payload("real", deliveryId);
        const answer = await deliver(server.url, hook, body, signed(scheme, body, deliveryId));
        expect(answer.status).toBe(202);
        expect(answer.json).toMatchObject({ deliveryId, duplicate: false });
        expect((await readMailbox(server.url, hook)).map((message) => message.title)).toEqual(["squatter", "real"]);
      } finally {
        await server.stop();
      }
    },
  );

  it.runIf(durable)(
    "recognises a GitHub body resent under a fresh delivery id after a restart, even once out of retention",
    async () => {
      const server = await serve(make(), 1);
      try {
        const [first, second] = [payload("first"), payload("second")];
        const accepted = await deliver(server.url, "gh", first, githubHeaders(SECRETS.github, first, "d-1"));
        expect(accepted.status).toBe(202);
        // With one message retained, the second delivery trims the first out of the log.
        expect((await deliver(server.url, "gh", second, githubHeaders(SECRETS.github, second, "d-2"))).status).toBe(
          202,
        );
        const titles = async () => (await readMailbox(server.url, "gh")).map((message) => message.title);
        // Some stores trim in the background.
        await expect.poll(titles).toEqual(["second"]);
        await server.restart();
        const replay = await deliver(server.url, "gh", first, githubHeaders(SECRETS.github, first, "d-fresh"));
        expect(replay).toMatchObject({ status: 200, json: { id: accepted.json.id, duplicate: true } });
        const retried = await deliver(server.url, "gh", second, githubHeaders(SECRETS.github, second, "d-2"));
        expect(retried).toMatchObject({ status: 200, json: { duplicate: true } });
        expect(await titles()).toEqual(["second"]);
      } finally {
        await server.stop();
      }
    },
  );
});
