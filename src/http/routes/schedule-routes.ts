import type { Context } from "hono";
import { type ScheduleSpec, scheduleFromQuery, splitSchedule } from "../../core/schedule-input.js";
import {
  DEFAULT_SCHEDULED_LISTED,
  MAX_SCHEDULED_LISTED,
  pendingJson,
  type Scheduled,
  scheduledJson,
} from "../../core/scheduled-messages.js";
import { HeraldError } from "../../errors.js";
import type { AppDeps } from "../deps.js";
import { admitPublisher, checkCrossSite } from "../middleware/admission.js";
import { pathMailbox, queryLimit } from "./params.js";

/** Scheduled ids are the ids messages get (nanoid); anything else names nothing. */
const SCHEDULED_ID = /^[A-Za-z0-9_-]{1,64}$/;

const JSON_TYPE = { "Content-Type": "application/json" };

/** `?delay=` / `?at=` of a publish to one mailbox. */
export function querySchedule(c: Context): ScheduleSpec | undefined {
  return scheduleFromQuery(c.req.query("delay"), c.req.query("at"));
}

/** The schedule of a publish given in the query or in the message, refusing both. */
export function oneSchedule(fromQuery: ScheduleSpec | undefined, fromBody: ScheduleSpec | undefined) {
  if (fromQuery !== undefined && fromBody !== undefined) {
    throw new HeraldError("bad_parameter", 'Give "delay" or "at" in the query or in the message, not both');
  }
  return fromQuery ?? fromBody;
}

/** A batch body with `delay` / `at` taken out of its messages, and the schedule of item i (undefined: not scheduled). */
export interface SplitBatch {
  readonly body: unknown;
  readonly whenAt: ((index: number) => ScheduleSpec) | undefined;
}

/**
 * Takes `delay` / `at` out of a batch (`{"messages":[…]}`, each item its own)
 * or a fan-in (`{"mailboxes":[…],"message":{…}}`, one for all). A batch is
 * scheduled whole or not at all. Other shapes pass unchanged, for the batch
 * check to refuse.
 */
export function splitBatchSchedule(value: unknown): SplitBatch {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { body: value, whenAt: undefined };
  const body = value as Record<string, unknown>;
  if (Array.isArray(body.messages)) {
    const split = body.messages.map((item, index) => splitSchedule(item, `messages[${index}]: `));
    const scheduled = split.findIndex((item) => item.when !== undefined);
    if (scheduled === -1) return { body: value, whenAt: undefined };
    const unscheduled = split.findIndex((item) => item.when === undefined);
    if (unscheduled !== -1) {
      throw new HeraldError(
        "bad_message",
        `A batch is scheduled whole or not at all: messages[${scheduled}] has "delay" or "at", messages[${unscheduled}] has neither`,
      );
    }
    return {
      body: { ...body, messages: split.map((item) => item.message) },
      whenAt: (index) => split[index]?.when as ScheduleSpec,
    };
  }
  if (body.message !== undefined) {
    const { message, when } = splitSchedule(body.message, "message: ");
    if (when !== undefined) return { body: { ...body, message }, whenAt: () => when };
  }
  return { body: value, whenAt: undefined };
}

/** 202 with `{"id","mailbox","scheduledFor"}` (a batch: `{"scheduled":[…]}`); 200 when every item repeated a key. */
export function scheduledResponse(c: Context, scheduled: readonly Scheduled[], batch: boolean): Response {
  const status = scheduled.every((item) => item.duplicate) ? 200 : 202;
  const body = batch
    ? `{"scheduled":[${scheduled.map(scheduledJson).join(",")}]}`
    : scheduledJson(scheduled[0] as Scheduled);
  return c.body(body, status, JSON_TYPE);
}

/** GET /v1/mailboxes/{mailbox}/scheduled: pending messages, earliest due first (publisher permission). */
export async function listScheduled(c: Context, deps: AppDeps): Promise<Response> {
  const mailbox = pathMailbox(c);
  // A listing changes nothing: a cookie caller needs no Origin, as for reads.
  const caller = await deps.access.authenticate(c, true);
  checkCrossSite(c, deps.access, caller, "read");
  deps.access.publisherFor(caller).authorize([mailbox]);
  const limit = queryLimit(c, DEFAULT_SCHEDULED_LISTED, MAX_SCHEDULED_LISTED);
  const entries = await deps.hub.scheduled.list(mailbox, limit + 1);
  const listed = entries.slice(0, limit).map(pendingJson).join(",");
  return c.body(`{"scheduled":[${listed}],"more":${entries.length > limit}}`, 200, JSON_TYPE);
}

/** DELETE /v1/scheduled/{id}: cancels a pending message (publisher permission on its mailbox); 404 once delivered. */
export async function cancelScheduled(c: Context, deps: AppDeps): Promise<Response> {
  const publisher = await admitPublisher(c, deps.access);
  const id = c.req.param("id") ?? "";
  const gone = () =>
    new HeraldError("not_found", `No scheduled message "${id.slice(0, 64)}": delivered, cancelled, or never scheduled`);
  const entry = SCHEDULED_ID.test(id) ? await deps.hub.scheduled.find(id) : undefined;
  if (entry === undefined) throw gone();
  try {
    publisher.authorize([entry.mailbox]);
  } catch (error) {
    // Someone else's message: as unknown as one that never was, so ids cannot be probed.
    if (error instanceof HeraldError && error.code === "forbidden") throw gone();
    throw error;
  }
  publisher.charge();
  const result = await deps.hub.scheduled.cancel(id);
  if (result === "delivering") {
    throw new HeraldError(
      "not_found",
      `Scheduled message "${id}" is being delivered now; it can no longer be cancelled`,
    );
  }
  if (result === "missing") throw gone();
  return c.body(null, 204);
}
