import type { Context } from "hono";
import { HeraldError } from "../../errors.js";
import { parsePushSubscription } from "../../push/subscription-input.js";
import type { WebPush } from "../../push/web-push.js";
import type { PushSubscription } from "../../store/push-subscription-store.js";
import type { AppDeps } from "../deps.js";
import { checkCrossSite } from "../middleware/admission.js";
import type { Caller } from "../middleware/caller.js";
import { readBody } from "./body.js";

/** A PushSubscription's JSON is a few hundred bytes; 64 mailbox names add at most 8 KiB. */
const MAX_SUBSCRIPTION_BYTES = 16 * 1024;
/** The shortest a subscription lives, whatever the browser says of its end (see createPushSubscription). */
const MIN_LIFETIME_MS = 3600_000;
/** Subscription ids are nanoids; anything else names nothing. */
const SUBSCRIPTION_ID = /^[A-Za-z0-9_-]{1,64}$/;

const JSON_HEADERS = { "Content-Type": "application/json", "Cache-Control": "no-store" };

function webPush(deps: AppDeps): WebPush {
  if (deps.push === undefined) throw new HeraldError("push_unavailable");
  return deps.push;
}

/**
 * Whose subscription it is, for the bounds and for who may delete it: a token's sub, an API key, or (no
 * credentials, where reads are open) the client's address, so that one client cannot take every slot by
 * naming new readers. Prefixed, so no token sub can pass for a key or an address.
 */
function ownerOf(caller: Caller): string {
  if (caller.kind === "token") return `sub:${caller.name}`;
  if (caller.kind === "key") return `key:${caller.name}`;
  return `address:${caller.visitor}`;
}

function subscriptionJson(subscription: PushSubscription): string {
  return JSON.stringify({
    id: subscription.id,
    mailboxes: subscription.mailboxes,
    created: new Date(subscription.createdAtMs).toISOString(),
    updated: new Date(subscription.updatedAtMs).toISOString(),
    expires: new Date(subscription.expiresAtMs).toISOString(),
  });
}

/** GET /v1/push/vapid-public-key: what a page passes to pushManager.subscribe as applicationServerKey. */
export function vapidPublicKeyRoute(c: Context, deps: AppDeps): Response {
  const push = webPush(deps);
  return c.body(JSON.stringify({ publicKey: push.settings.vapid.publicKey }), 200, {
    "Content-Type": "application/json",
    "Cache-Control": "public, max-age=300",
  });
}

/**
 * POST /v1/push/subscriptions: a browser's PushSubscription and the mailboxes
 * to push, each readable by the caller, as for any read. 201 when new, 200
 * when the endpoint was subscribed and is updated.
 */
export async function createPushSubscription(c: Context, deps: AppDeps): Promise<Response> {
  const push = webPush(deps);
  const caller = await deps.access.authenticate(c, false);
  checkCrossSite(c, deps.access, caller, "write");
  const body = await readBody(c, MAX_SUBSCRIPTION_BYTES);
  const input = parsePushSubscription(body.kind === "json" ? body.value : undefined, push.settings.allowedHosts);
  deps.access.checkRead(caller, input.mailboxes);
  deps.access.publisherFor(caller).charge();
  const { maxSubscriptionsPerUser, maxSubscriptions, subscriptionTtlSeconds } = push.settings;
  const now = Date.now();
  if (input.expirationTime !== undefined && input.expirationTime <= now) {
    throw new HeraldError("bad_message", '"expirationTime" has passed: subscribe the browser again');
  }
  // The browser's own end of the subscription, when it said one and it comes first; but not sooner than
  // MIN_LIFETIME_MS, or a client could make its subscriptions lapse at once and pass the per-user bound.
  // (Kept longer than the push service does, one answers 410 and is deleted.)
  const ttlMs = subscriptionTtlSeconds * 1000;
  const expiresAtMs = Math.max(
    Math.min(now + ttlMs, input.expirationTime ?? Number.POSITIVE_INFINITY),
    now + Math.min(ttlMs, MIN_LIFETIME_MS),
  );
  const result = await push.subscriptions.save(
    { endpoint: input.endpoint, keys: input.keys, mailboxes: input.mailboxes, owner: ownerOf(caller), expiresAtMs },
    { maxPerOwner: maxSubscriptionsPerUser, maxTotal: maxSubscriptions },
    now,
  );
  if (result.status === "full") {
    throw new HeraldError(
      "too_many_push_subscriptions",
      result.bound === "owner"
        ? `At most ${maxSubscriptionsPerUser} push subscriptions per user (push.maxSubscriptionsPerUser); delete one first`
        : `The server holds its maximum of ${maxSubscriptions} push subscriptions (push.maxSubscriptions)`,
    );
  }
  return c.body(subscriptionJson(result.subscription), result.status === "created" ? 201 : 200, JSON_HEADERS);
}

/** The subscription `id` names, when the caller may see it: its owner, or an admin key. */
async function ownSubscription(
  c: Context,
  deps: AppDeps,
  push: WebPush,
  action: "read" | "write",
): Promise<PushSubscription> {
  const id = c.req.param("id") ?? "";
  const caller = await deps.access.authenticate(c, false);
  checkCrossSite(c, deps.access, caller, action);
  const subscription = SUBSCRIPTION_ID.test(id) ? await push.subscriptions.get(id) : undefined;
  // Someone else's is as unknown as one that never was, so ids cannot be probed; a lapsed one is gone.
  const mine = subscription !== undefined && (subscription.owner === ownerOf(caller) || caller.key?.admin === true);
  if (subscription === undefined || !mine || subscription.expiresAtMs <= Date.now()) {
    throw new HeraldError("not_found", `No push subscription "${id.slice(0, 64)}"`);
  }
  return subscription;
}

/** GET /v1/push/subscriptions/{id}: its mailboxes and times (to check it still exists). */
export async function getPushSubscription(c: Context, deps: AppDeps): Promise<Response> {
  const push = webPush(deps);
  return c.body(subscriptionJson(await ownSubscription(c, deps, push, "read")), 200, JSON_HEADERS);
}

/** DELETE /v1/push/subscriptions/{id}: no more pushes to that browser. */
export async function deletePushSubscription(c: Context, deps: AppDeps): Promise<Response> {
  const push = webPush(deps);
  const subscription = await ownSubscription(c, deps, push, "write");
  await push.subscriptions.remove(subscription.id);
  return c.body(null, 204);
}
