import { createHash } from "node:crypto";
import { type ErrorCode, HeraldError } from "../errors.js";

/**
 * When a publish asks to be delivered: `delay` (seconds, or a duration such
 * as "90s", "30m", "2h", "1d", "1h30m") or `at` (an RFC 3339 time). Neither is
 * a message field: they are taken out of the published object (or read from
 * `?delay=` / `?at=`) before the fields are checked, and never stored.
 */
export type ScheduleSpec =
  | { readonly kind: "delay"; readonly ms: number; readonly where: string; readonly code: ErrorCode }
  | { readonly kind: "at"; readonly atMs: number; readonly where: string; readonly code: ErrorCode };

/** Longest `delay` or `at` text accepted; anything longer is a mistake. */
export const MAX_SCHEDULE_TEXT_LENGTH = 64;

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PLAIN_SECONDS = /^\d+(?:\.\d+)?$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
const RFC_3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function invalid(code: ErrorCode, text: string): HeraldError {
  return new HeraldError(code, text);
}

/** Milliseconds of a `delay`: a number of seconds, or a duration text; NaN when it is neither. */
function delayMs(value: unknown): number {
  if (typeof value === "number") return Number.isFinite(value) ? value * 1000 : Number.NaN;
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_SCHEDULE_TEXT_LENGTH) return Number.NaN;
  const text = value.trim();
  if (PLAIN_SECONDS.test(text)) return Number(text) * 1000;
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < text.length) {
    const part = DURATION_PART.exec(text);
    if (part === null) return Number.NaN;
    total += Number(part[1]) * (UNIT_MS[part[2] as string] as number);
  }
  return text.length === 0 ? Number.NaN : total;
}

/** Epoch ms of an RFC 3339 time with a zone (Z or ±hh:mm), or NaN; impossible dates (Feb 30) are NaN. */
export function rfc3339Ms(value: unknown): number {
  if (typeof value !== "string" || value.length > MAX_SCHEDULE_TEXT_LENGTH) return Number.NaN;
  const match = RFC_3339.exec(value);
  if (match === null) return Number.NaN;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as number[];
  const calendar = new Date(Date.UTC(year as number, (month as number) - 1, day, hour, minute, second));
  if (
    calendar.getUTCMonth() !== (month as number) - 1 ||
    calendar.getUTCDate() !== day ||
    calendar.getUTCHours() !== hour ||
    calendar.getUTCMinutes() !== minute
  ) {
    return Number.NaN;
  }
  const zone = (match[8] as string).toUpperCase();
  const fraction = (match[7] ?? "").slice(0, 4);
  return Date.parse(`${match.slice(1, 4).join("-")}T${match.slice(4, 7).join(":")}${fraction}${zone}`);
}

/** Reads a `delay` or an `at`; `where` names it in errors (`"delay"`, `messages[2]: "at"`, `?delay`). */
export function parseScheduleValue(
  kind: "delay" | "at",
  value: unknown,
  where: string,
  code: ErrorCode = "bad_message",
): ScheduleSpec {
  if (kind === "delay") {
    const ms = delayMs(value);
    if (!Number.isFinite(ms) || ms <= 0) {
      throw invalid(
        code,
        `${where} must be a number of seconds greater than 0, or a duration such as "90s", "30m", "2h"`,
      );
    }
    return { kind, ms, where, code };
  }
  const atMs = rfc3339Ms(value);
  if (!Number.isFinite(atMs)) {
    throw invalid(code, `${where} must be an RFC 3339 time with a zone, e.g. "2030-01-31T09:00:00Z"`);
  }
  return { kind, atMs, where, code };
}

/** A published object split into its message fields and its schedule (undefined: publish now). */
export interface SplitMessage {
  readonly message: unknown;
  readonly when: ScheduleSpec | undefined;
}

/**
 * Takes `delay` / `at` out of a published JSON object. Anything that is not an
 * object is handed on as it is, for the message check to refuse.
 */
export function splitSchedule(value: unknown, where = ""): SplitMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { message: value, when: undefined };
  const { delay, at, ...message } = value as Record<string, unknown>;
  if (delay !== undefined && at !== undefined) {
    throw invalid("bad_message", `${where}give "delay" or "at", not both`);
  }
  if (delay !== undefined) return { message, when: parseScheduleValue("delay", delay, `${where}"delay"`) };
  if (at !== undefined) return { message, when: parseScheduleValue("at", at, `${where}"at"`) };
  return { message: value, when: undefined };
}

function given(value: string | undefined): value is string {
  return value !== undefined && value !== "";
}

/** `?delay=` or `?at=` of a publish (empty means absent); both is a 400. */
export function scheduleFromQuery(delay: string | undefined, at: string | undefined): ScheduleSpec | undefined {
  if (given(delay) && given(at)) throw invalid("bad_parameter", 'Give "delay" or "at", not both');
  if (given(delay)) return parseScheduleValue("delay", delay, '"delay"', "bad_parameter");
  if (given(at)) return parseScheduleValue("at", at, '"at"', "bad_parameter");
  return undefined;
}

/**
 * When `spec` falls due, seen at `nowMs`: a delay must be greater than 0, an
 * `at` in the future, and neither more than `maxAheadMs` ahead.
 */
export function resolveDueAt(spec: ScheduleSpec, nowMs: number, maxAheadMs: number): number {
  const limit = `at most ${maxAheadMs / 1000} seconds (${(maxAheadMs / 86_400_000).toFixed(1).replace(/\.0$/, "")} days) ahead`;
  if (spec.kind === "delay") {
    if (spec.ms > maxAheadMs) throw invalid(spec.code, `${spec.where} may be ${limit}`);
    // Whole milliseconds: stores keep due times as integers.
    return Math.ceil(nowMs + spec.ms);
  }
  if (spec.atMs <= nowMs) {
    throw invalid(spec.code, `${spec.where} must be in the future; it is ${new Date(spec.atMs).toISOString()}`);
  }
  if (spec.atMs - nowMs > maxAheadMs) throw invalid(spec.code, `${spec.where} may be ${limit}`);
  return spec.atMs;
}

/**
 * Identifies a scheduled publish for its idempotency key: the fields and the
 * schedule as asked (a retry of `"delay":"30m"` a minute later is the same
 * publish; the same fields with another delay are not).
 */
export function scheduleFingerprint(fieldsJson: string, spec: ScheduleSpec): string {
  const when = spec.kind === "delay" ? `delay ${spec.ms}` : `at ${spec.atMs}`;
  return createHash("sha256").update(`${fieldsJson}\n${when}`).digest("base64url");
}
