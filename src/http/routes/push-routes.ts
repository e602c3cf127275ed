import type { Context } from "hono";
import { HeraldError } from "../../errors.js";
import { parsePushSubscription } from "../../push/subscription-input.js";
import type { WebPush } from "../../push/web-push.js";
import type { PushSubscription } from "../../store/push-subscription-store.js";
import type { AppDeps } from "../deps.js";
import { checkCrossSite } from "../middleware/admission.js";
import type { Caller } from "../middleware/caller.js";
import { queryReader } from "../middleware/reader-identity.js";
import { readBody } from "./body.js";

/** A PushSubscription's JSON is a few hundred bytes; 64 mailbox names add at most 8 KiB. */
const MAX_SUBSCRIPTION_BYTES = 16 * 1024;
/** Subscription ids are nanoids; anything else names nothing. */
const SUBSCRIPTION_ID = /^[A-Za-z0-9_-]{1,64}$/;

const JSON_HEADERS = { "Content-Type": "application/json", "Cache-Control": "no-store" };

function webPush(deps: AppDeps): WebPush {
  if (deps.push === undefined) throw new HeraldError("push_unavailable");
  return deps.push;
}

/** Whose subscription it is: a token's sub or a named reader; a key by name; else the anonymous caller. */
function ownerOf(c: Context, deps: AppDeps, caller: Caller): string {
  const reader = queryReader(c, caller, deps.access.authOn);
  if (reader !== undefined) return reader.sub;
  return caller.kind === "key" ? `key:${caller.name}` : "anonymous";
}

function subscriptionJson(subscription: PushSubscription): string {
  return JSON.stringify({
    id: subscription.id,
    mailboxes: subscription.mailboxes,
    created: new Date(subscription.createdAtMs).toISOString(),
    updated: new Date(subscription.updatedAtMs).toISOString(),
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
  const owner = ownerOf(c, deps, caller);
  const { maxSubscriptionsPerUser, maxSubscriptions } = push.settings;
  const result = await push.subscriptions.save(
    { ...input, owner },
    { maxPerOwner: maxSubscriptionsPerUser, maxTotal: maxSubscriptions },
    Date.now(),
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
  // Someone else's is as unknown as one that never was, so ids cannot be probed.
  if (subscription === undefined || (subscription.owner !== ownerOf(c, deps, caller) && !caller.key?.admin)) {
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
