import type { Context } from "hono";
import { HeraldError } from "../../errors.js";
import type { MercureSettings } from "../../mercure/mercure-config.js";
import { insufficientScope, type MercureGrant, missingToken } from "../../mercure/mercure-token.js";
import { addressesHub, parseUpdateForm, updateFields } from "../../mercure/mercure-update.js";
import { subscriberFilter } from "../../mercure/subscriber-filter.js";
import { compileMatcher, type MatcherType, matchesEach, type TopicMatcher } from "../../mercure/topic-matcher.js";
import type { AppDeps } from "../deps.js";
import { readRawBody } from "../routes/body.js";
import { openStream } from "../routes/open-stream.js";
import { MERCURE_FORMAT } from "./mercure-format.js";
import { hubUrlOf, MERCURE_PATH, mercureCaller, mercureOf, presentedToken } from "./mercure-request.js";

const MATCHER_PARAMETERS: Readonly<Record<string, MatcherType>> = {
  match: "exact",
  match_exact: "exact",
  match_urlpattern: "urlpattern",
  topic: "selector",
};

interface SubscribeRequest {
  readonly matchers: readonly TopicMatcher[];
  readonly lastEventId: string | undefined;
}

/**
 * The topic matchers and resume point of a subscribe request: `match`,
 * `match_exact`, `match_urlpattern` (the standard) and `topic` (pre-standard
 * selectors: strings or URI templates); `Last-Event-ID`, else `last_event_id`,
 * else the pre-standard `lastEventID`. Any other `match…` name is a 400.
 */
function subscribeRequest(c: Context, settings: MercureSettings, hubUrl: string): SubscribeRequest {
  const query = new URL(c.req.url).searchParams;
  const matchers: TopicMatcher[] = [];
  for (const [name, value] of query) {
    const type = MATCHER_PARAMETERS[name];
    if (type === undefined) {
      if (name.toLowerCase().startsWith("match")) {
        throw new HeraldError("bad_parameter", `Unknown topic matcher parameter "${name.slice(0, 64)}"`);
      }
      continue;
    }
    if (value.length > settings.maxValueLength) {
      throw new HeraldError("bad_parameter", `A topic matcher is at most ${settings.maxValueLength} characters`);
    }
    matchers.push(compileMatcher(type, value, hubUrl, `"${name}"`));
  }
  if (matchers.length === 0) {
    throw new HeraldError(
      "bad_parameter",
      "Name at least one topic: ?match=<topic>, ?match_urlpattern=<pattern> or ?topic=",
    );
  }
  if (matchers.length > settings.maxMatchers) {
    throw new HeraldError("bad_parameter", `A subscription carries at most ${settings.maxMatchers} topic matchers`);
  }
  const lastEventId =
    c.req.header("last-event-id") ?? query.get("last_event_id") ?? query.get("lastEventID") ?? undefined;
  if (lastEventId !== undefined && lastEventId.length > settings.maxValueLength) {
    throw new HeraldError("bad_parameter", `Last-Event-ID is at most ${settings.maxValueLength} characters`);
  }
  return { matchers, lastEventId };
}

/**
 * The hub's logs a subscriber reads: its updates, and the subscription events
 * too when they are on and one of its matchers could select their topics
 * (`*`, a pattern or template, or an exact topic in the hub's namespace).
 */
function mailboxesFor(settings: MercureSettings, matchers: readonly TopicMatcher[], hubUrl: string): string[] {
  if (!settings.subscriptions) return [settings.mailbox];
  const eventsMayMatch = matchers.some(
    (matcher) => matcher.value === "*" || matcher.type !== "exact" || addressesHub(matcher.value, hubUrl),
  );
  return eventsMayMatch ? [settings.mailbox, settings.subscriptionsMailbox] : [settings.mailbox];
}

/**
 * GET /.well-known/mercure: an SSE stream of the hub's updates that the
 * matchers select and the token (if any) may read, from the update after
 * `Last-Event-ID` when one is sent (exactly, when it is still retained), live otherwise.
 */
export async function mercureSubscribe(c: Context, deps: AppDeps): Promise<Response> {
  const mercure = mercureOf(deps);
  const { settings } = mercure;
  const hubUrl = hubUrlOf(c);
  const request = subscribeRequest(c, settings, hubUrl);
  const presented = presentedToken(c);
  let tokenGrant: MercureGrant | undefined;
  if (presented) tokenGrant = await mercure.tokens.verify(presented.token, "subscribe", hubUrl);
  else if (!settings.anonymousSubscribers) throw missingToken("Subscribing");
  const caller = mercureCaller(c, deps.access, presented, tokenGrant, settings.mailbox);
  const grant = { caller, release: deps.access.hold(caller, "stream") };
  const mailboxes = mailboxesFor(settings, request.matchers, hubUrl);
  return openStream(c, deps, "sse", mailboxes, grant, MERCURE_FORMAT, async () => {
    const resume = await mercure.locator.resume(request.lastEventId, mailboxes);
    const headers: Record<string, string> =
      resume.lastEventId === undefined
        ? {}
        : { "Mercure-Last-Event-ID": resume.lastEventId, "Last-Event-ID": resume.lastEventId };
    return {
      cursor: resume.cursor,
      options: { filter: subscriberFilter(request.matchers, tokenGrant, hubUrl) },
      headers,
      opened: () => mercure.subscriptions?.open(new URL(hubUrl).pathname, request.matchers, tokenGrant),
    };
  });
}

/**
 * A form POST is a request any web page can make a visitor's browser send
 * without asking: a publish that a cookie authenticates, or that needs no
 * token at all, must come from a page Herald trusts (browsers send Origin on POST).
 */
function checkAmbientOrigin(c: Context, deps: AppDeps, via: "cookie" | "none"): void {
  const origin = c.req.header("origin");
  if (origin === undefined) {
    if (via === "none") return;
  } else if (deps.access.origins.ambientAllows(origin, c.req.header("host"))) {
    return;
  }
  throw new HeraldError(
    "origin_not_allowed",
    `A publish ${via === "cookie" ? "authenticated by a cookie" : "without a token"} is accepted only from this ` +
      "server's own pages or those in auth.cors.origins; other clients send Authorization: Bearer",
  );
}

/**
 * POST /.well-known/mercure: one update (form fields `topic`…, `data`,
 * `private`, `id`, `type`, `retry`), stored in the hub's mailbox through the
 * publish command; answers 200 text/plain with the update's id.
 */
export async function mercurePublish(c: Context, deps: AppDeps): Promise<Response> {
  const mercure = mercureOf(deps);
  const { settings } = mercure;
  const hubUrl = hubUrlOf(c);
  const presented = presentedToken(c);
  let grant: MercureGrant | undefined;
  if (presented) {
    grant = await mercure.tokens.verify(presented.token, "publish", hubUrl);
    if (presented.via === "cookie") checkAmbientOrigin(c, deps, "cookie");
  } else if (settings.anonymousPublishers) {
    checkAmbientOrigin(c, deps, "none");
  } else {
    throw missingToken("Publishing");
  }
  const contentType = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (contentType !== "application/x-www-form-urlencoded") {
    throw new HeraldError("bad_message", "Send the update as application/x-www-form-urlencoded (topic=…&data=…)");
  }
  const publisher = deps.access.publisherFor(mercureCaller(c, deps.access, presented, grant, settings.mailbox));
  return deps.hub.publishing.admit(publisher, [settings.mailbox], async (store) => {
    const body = await readRawBody(c, deps.config.maxBodyBytes);
    const update = parseUpdateForm(new URLSearchParams(body.toString("utf8")), settings, hubUrl);
    if (grant && !matchesEach(grant.publish, update.topics)) throw insufficientScope("publishing to these topics");
    const [published] = await store([{ mailbox: settings.mailbox, fields: updateFields(update) }]);
    if (published) mercure.locator.remember(published.message);
    return c.body(update.id, 200, { "Content-Type": "text/plain; charset=utf-8" });
  });
}

export { MERCURE_PATH };
