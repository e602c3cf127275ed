import { randomUUID } from "node:crypto";
import type { Presence } from "../core/presence.js";
import type { PublishCommand, Publisher } from "../core/publish-command.js";
import type { MercureGrant } from "./mercure-token.js";
import { RESERVED_TYPE, updateFields } from "./mercure-update.js";
import { matchesAny, type TopicMatcher } from "./topic-matcher.js";

/** Subscriptions one collection answer lists at most (the standard lets a hub truncate). */
export const MAX_LISTED_SUBSCRIPTIONS = 10_000;
/** A subscription document longer than this is listed without its payload. */
const MAX_DOCUMENT_LENGTH = 4096;

/** The hub publishing its own subscription events: authorized and charged by nobody. */
const HUB_PUBLISHER: Publisher = { name: "mercure-hub", authorize: () => {}, charge: () => {} };

/** One subscription as the subscriptions API and events describe it. */
export type SubscriptionDocument = Record<string, unknown> & { readonly id: string };

export interface ActiveSubscriptionsOptions {
  readonly presence: Presence;
  readonly publishing: PublishCommand;
  /** The hub's subscriptions mailbox: its presence holds the documents, its log the events. */
  readonly mailbox: string;
  readonly onError: (error: unknown) => void;
}

/** The payload of the first subscribe grant that matches the subscription's own matcher string. */
function payloadFor(grant: MercureGrant | undefined, matcher: string): unknown {
  return grant?.subscribe.find((entry) => matchesAny(entry.matchers, [matcher]))?.payload;
}

/**
 * The standard's document for a `match…` subscription; a pre-standard `topic=`
 * selector gets the document pre-standard clients read (`topic`, type "Subscription").
 */
export function subscriptionDocument(
  hubPath: string,
  matcher: TopicMatcher,
  subscriber: string,
  active: boolean,
  payload: unknown,
): SubscriptionDocument {
  const extra = payload === undefined ? {} : { payload };
  if (matcher.type === "selector") {
    const id = `${hubPath}/subscriptions/${encodeURIComponent(matcher.value)}/${encodeURIComponent(subscriber)}`;
    return { id, type: "Subscription", topic: matcher.value, subscriber, active, ...extra };
  }
  const id = `${hubPath}/subscriptions/${matcher.type}/${encodeURIComponent(matcher.value)}/${encodeURIComponent(subscriber)}`;
  return { id, type: "subscription", match_type: matcher.type, match: matcher.value, subscriber, active, ...extra };
}

/** A presence entry the hub made (its info is the document of that very id), or undefined. */
function documentOf(sub: string, info: string): SubscriptionDocument | undefined {
  try {
    const document = JSON.parse(info) as unknown;
    if (typeof document === "object" && document !== null && (document as { id?: unknown }).id === sub) {
      return document as SubscriptionDocument;
    }
  } catch {}
  return undefined;
}

/**
 * Mercure's active subscriptions on top of presence: each subscription of a
 * connection is present on the hub's mailbox under its document's id (so
 * every node lists every node's), and its start and end are published as
 * private updates whose topic is that id.
 */
export class ActiveSubscriptions {
  readonly #options: ActiveSubscriptionsOptions;

  constructor(options: ActiveSubscriptionsOptions) {
    this.#options = options;
  }

  /** Registers a connection's subscriptions and announces them; the returned function ends and announces their end. */
  open(hubPath: string, matchers: readonly TopicMatcher[], grant: MercureGrant | undefined): () => void {
    const subscriber = `urn:uuid:${randomUUID()}`;
    const documents = matchers.map((matcher) =>
      subscriptionDocument(hubPath, matcher, subscriber, true, payloadFor(grant, matcher.value)),
    );
    const leaves = documents.map((document) => {
      let info = JSON.stringify(document);
      if (info.length > MAX_DOCUMENT_LENGTH) info = JSON.stringify({ ...document, payload: undefined });
      return this.#options.presence.enter([this.#options.mailbox], { sub: document.id, info });
    });
    this.#announce(documents);
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      for (const leave of leaves) leave();
      this.#announce(documents.map((document) => ({ ...document, active: false })));
    };
  }

  /** Active subscriptions whose id is `path` or lies under it, over every node. */
  async list(path: string): Promise<SubscriptionDocument[]> {
    const members = await this.#options.presence.members(this.#options.mailbox);
    const documents: SubscriptionDocument[] = [];
    for (const member of members) {
      if (member.info === undefined || (member.sub !== path && !member.sub.startsWith(`${path}/`))) continue;
      const document = documentOf(member.sub, member.info);
      if (document !== undefined) documents.push(document);
      if (documents.length >= MAX_LISTED_SUBSCRIPTIONS) break;
    }
    return documents.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  #announce(documents: readonly SubscriptionDocument[]): void {
    const items = documents.map((document) => ({
      mailbox: this.#options.mailbox,
      fields: updateFields({
        topics: [document.id],
        id: `urn:uuid:${randomUUID()}`,
        data: JSON.stringify(document),
        private: true,
        type: document.type === "subscription" ? RESERVED_TYPE : undefined,
        retry: undefined,
      }),
    }));
    this.#options.publishing.publish(HUB_PUBLISHER, items).catch(this.#options.onError);
  }
}
