import type { Context } from "hono";
import type { MessageFilter } from "../../core/message-filter.js";
import { HeraldError } from "../../errors.js";
import { ntfyFilter, parseTopicList } from "../../ntfy/ntfy-message.js";
import type { ParamReader } from "../../ntfy/ntfy-publish-input.js";
import { type NtfySince, parseSince } from "../../ntfy/ntfy-since.js";

/** ntfy's readParam: each name as a header first, then each as a query parameter. */
export function paramReader(c: Context): ParamReader {
  return (...names) => {
    for (const name of names) {
      const value = c.req.header(name);
      if (value !== undefined) return value;
    }
    for (const name of names) {
      const value = c.req.query(name);
      if (value !== undefined) return value;
    }
    return undefined;
  };
}

/**
 * ntfy's `Priority` header collides with RFC 9218's (`Priority: u=1, i`, which
 * browsers send on their own): a value in that syntax is not an ntfy priority.
 */
function ntfyPriority(read: ParamReader): string | undefined {
  const value = read("x-priority", "priority", "prio", "p");
  return value !== undefined && /(?:^|,)\s*(?:u=\d|i\s*(?:,|$))/.test(value) ? undefined : value;
}

export function priorityAware(read: ParamReader): ParamReader {
  return (...names) => (names.includes("priority") ? ntfyPriority(read) : read(...names));
}

/** ntfy's yes/no parameters: 1, yes, true / 0, no, false; absent or empty is no. */
function flag(raw: string | undefined, name: string): boolean {
  const value = raw?.trim().toLowerCase();
  if (value === undefined || value === "" || value === "0" || value === "no" || value === "false") return false;
  if (value === "1" || value === "yes" || value === "true") return true;
  throw new HeraldError("bad_parameter", `"${name}" must be 1 or 0, got ${JSON.stringify(raw?.slice(0, 32))}`);
}

/** What a subscribe request asks for: its topics, where it starts, and its filter. */
export interface SubscribeRequest {
  readonly mailboxes: string[];
  /** The topics as open and keepalive events name them. */
  readonly topics: string;
  readonly poll: boolean;
  readonly since: NtfySince;
  readonly filter: MessageFilter | undefined;
}

export function subscribeRequest(c: Context, useLastEventId: boolean): SubscribeRequest {
  const mailboxes = parseTopicList(c.req.param("topics"));
  const read = priorityAware(paramReader(c));
  const poll = flag(read("x-poll", "poll", "po"), "poll");
  const lastEventId = useLastEventId ? c.req.header("last-event-id") : undefined;
  const since = parseSince(read("x-since", "since", "si") || lastEventId, poll);
  const filter = ntfyFilter({
    tags: read("x-tags", "tags", "tag", "ta"),
    priority: read("x-priority", "priority", "prio", "p"),
    message: read("x-message", "message", "m"),
    title: read("x-title", "title", "t"),
  });
  return { mailboxes, topics: mailboxes.join(","), poll, since, filter };
}
