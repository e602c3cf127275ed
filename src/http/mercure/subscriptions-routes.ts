import type { Context } from "hono";
import { HeraldError } from "../../errors.js";
import { insufficientScope, missingToken } from "../../mercure/mercure-token.js";
import { matchesAny } from "../../mercure/topic-matcher.js";
import type { AppDeps } from "../deps.js";
import { hubUrlOf, mercureOf, presentedToken } from "./mercure-request.js";

const MATCHER_TYPES = new Set(["exact", "urlpattern"]);

/** The request path with each segment percent-encoded one canonical way, as subscription ids are. */
function canonicalPath(c: Context): string {
  return new URL(c.req.url).pathname
    .split("/")
    .map((segment) => {
      try {
        return encodeURIComponent(decodeURIComponent(segment));
      } catch {
        throw new HeraldError("bad_parameter", "The path has a malformed percent-encoding");
      }
    })
    .join("/");
}

/** True when the path names one subscription rather than a collection. */
function namesOneSubscription(path: string, hubPath: string): boolean {
  const segments = path.slice(`${hubPath}/subscriptions/`.length).split("/");
  const [first] = segments;
  if (first !== undefined && MATCHER_TYPES.has(first)) return segments.length === 3;
  return segments.length === 2;
}

/**
 * GET /.well-known/mercure/subscriptions[/…]: the active subscriptions under
 * the path (a collection), or the one it names. The token must grant
 * `subscribe` on the path itself; the Link header carries the last event id
 * to subscribe to the subscription events from.
 */
export async function mercureSubscriptions(c: Context, deps: AppDeps): Promise<Response> {
  const mercure = mercureOf(deps);
  const active = mercure.subscriptions;
  if (active === undefined) {
    throw new HeraldError(
      "not_found",
      'Active subscriptions are off; set "subscriptions": true in the mercure section',
    );
  }
  const hubUrl = hubUrlOf(c);
  const hubPath = new URL(hubUrl).pathname;
  const path = canonicalPath(c);
  const presented = presentedToken(c);
  if (presented === undefined) throw missingToken("The subscriptions API");
  const grant = await mercure.tokens.verify(presented.token, "subscribe", hubUrl);
  if (!grant.subscribe.some((entry) => matchesAny(entry.matchers, [path]))) {
    throw insufficientScope(`reading ${path}`);
  }
  const [lastEventId, documents] = await Promise.all([
    mercure.locator.lastEventId([mercure.settings.mailbox, mercure.settings.subscriptionsMailbox]),
    active.list(path),
  ]);
  const headers = {
    "Content-Type": "application/json",
    Link: `<${hubUrl}>; rel="mercure"; last-event-id="${lastEventId.replace(/["\\]/g, "\\$&")}"; type="mercure"; content-type="application/json"`,
    "Cache-Control": "must-revalidate",
  };
  const single = documents.find((document) => document.id === path);
  if (single) return c.body(JSON.stringify(single), 200, headers);
  if (path !== `${hubPath}/subscriptions` && namesOneSubscription(path, hubPath)) {
    throw new HeraldError("not_found", "No such active subscription");
  }
  const body = { id: path, type: "subscriptions", lastEventID: lastEventId, subscriptions: documents };
  return c.body(JSON.stringify(body), 200, headers);
}
