import type { Context } from "hono";
import { assertMailboxName } from "../../core/mailbox-name.js";
import { type DeliveryView, parseFilter, parseLatestMode } from "../../core/message-filter.js";
import { MAX_SUBSCRIPTION_MAILBOXES } from "../../core/read-plan.js";
import { HeraldError } from "../../errors.js";

export const DEFAULT_READ_LIMIT = 100;
export const MAX_READ_LIMIT = 1000;
export const MAX_WAIT_SECONDS = 60;

function badParameter(message: string): HeraldError {
  return new HeraldError("bad_parameter", message);
}

export function pathMailbox(c: Context): string {
  return assertMailboxName(c.req.param("mailbox"));
}

/** The repeated `mailbox=` of the multi-mailbox routes, validated and de-duplicated in order. */
export function queryMailboxes(c: Context): string[] {
  const raw = c.req.queries("mailbox") ?? [];
  if (raw.length === 0) throw badParameter("Name at least one mailbox: ?mailbox=a&mailbox=b");
  const names = [...new Set(raw.map((name) => assertMailboxName(name)))];
  if (names.length > MAX_SUBSCRIPTION_MAILBOXES) {
    throw badParameter(`At most ${MAX_SUBSCRIPTION_MAILBOXES} mailboxes per request, got ${names.length}`);
  }
  return names;
}

/** `?limit=`: a read's messages by default; a route bounding something else passes its own default and maximum. */
export function queryLimit(c: Context, defaultLimit = DEFAULT_READ_LIMIT, maxLimit = MAX_READ_LIMIT): number {
  const raw = c.req.query("limit");
  if (raw === undefined) return defaultLimit;
  const value = Number(raw);
  if (raw === "" || !Number.isInteger(value) || value < 1 || value > maxLimit) {
    throw badParameter(`"limit" must be an integer from 1 to ${maxLimit}, got "${raw}"`);
  }
  return value;
}

export function queryWaitMs(c: Context): number {
  const raw = c.req.query("wait");
  if (raw === undefined) return 0;
  const value = Number(raw);
  if (raw === "" || !Number.isFinite(value) || value < 0 || value > MAX_WAIT_SECONDS) {
    throw badParameter(`"wait" must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}, got "${raw}"`);
  }
  return Math.round(value * 1000);
}

/** `?cursor=`; an empty value means the same as none. */
export function queryCursor(c: Context): string | undefined {
  const raw = c.req.query("cursor");
  return raw === undefined || raw === "" ? undefined : raw;
}

/** EventSource resends the last `id:` as Last-Event-ID on reconnect; it wins over `?cursor=`. */
export function streamCursor(c: Context): string | undefined {
  const lastEventId = c.req.header("last-event-id");
  return lastEventId === undefined || lastEventId === "" ? queryCursor(c) : lastEventId;
}

/** A yes/no query parameter such as `presence=1`: 1 or true, 0 or false, absent is false. */
export function queryFlag(c: Context, name: string): boolean {
  const raw = c.req.query(name);
  if (raw === undefined || raw === "0" || raw === "false") return false;
  if (raw === "1" || raw === "true" || raw === "") return true;
  throw badParameter(`"${name}" must be 1 or 0, got "${raw.slice(0, 32)}"`);
}

/** `?tags=a,b&priority=4&key=cpu&mode=latest`: what of the log a read or stream delivers. */
export function queryView(c: Context): DeliveryView {
  const filter = parseFilter({
    tags: c.req.queries("tags"),
    priority: c.req.query("priority"),
    key: c.req.queries("key"),
  });
  const latest = parseLatestMode(c.req.query("mode"));
  return { ...(filter ? { filter } : {}), ...(latest ? { latest } : {}) };
}
