import { numberAt, objectAt, onlyFields } from "./auth/config-fields.js";
import { DEFAULT_SCHEDULE_OPTIONS, type ScheduleOptions } from "./core/scheduled-messages.js";

/** The config file's `schedule` section (scheduled delivery); undefined fields take the defaults below. */
export interface ScheduleSettings {
  /** How far ahead a publish may be scheduled (`delay`, or `at` from now). */
  readonly maxDelaySeconds: number;
  /** Scheduled messages waiting per mailbox at most; 429 `too_many_scheduled` beyond. */
  readonly maxPendingPerMailbox: number;
  /** Scheduled messages waiting on the server (all nodes sharing the store) at most; 429 beyond. */
  readonly maxPending: number;
  /** A claimed delivery not completed within this is claimed again (its node died or its append failed). */
  readonly leaseSeconds: number;
  /** How often the store is asked for due messages besides the timer to the next one (other nodes' messages). */
  readonly pollSeconds: number;
}

export const DEFAULT_SCHEDULE_SETTINGS: ScheduleSettings = {
  maxDelaySeconds: DEFAULT_SCHEDULE_OPTIONS.maxDelayMs / 1000,
  maxPendingPerMailbox: DEFAULT_SCHEDULE_OPTIONS.maxPendingPerMailbox,
  maxPending: DEFAULT_SCHEDULE_OPTIONS.maxPending,
  leaseSeconds: DEFAULT_SCHEDULE_OPTIONS.leaseMs / 1000,
  pollSeconds: DEFAULT_SCHEDULE_OPTIONS.pollMs / 1000,
};

/** The settings as the core takes them. */
export function scheduleOptions(settings: ScheduleSettings): ScheduleOptions {
  return {
    maxDelayMs: settings.maxDelaySeconds * 1000,
    maxPendingPerMailbox: settings.maxPendingPerMailbox,
    maxPending: settings.maxPending,
    leaseMs: settings.leaseSeconds * 1000,
    pollMs: settings.pollSeconds * 1000,
  };
}

/** Parses `{"maxDelaySeconds": 604800, "maxPendingPerMailbox": 1000, "maxPending": 100000, "leaseSeconds": 30, "pollSeconds": 1}`. */
export function parseScheduleSection(value: unknown): ScheduleSettings {
  const object = objectAt(value, "schedule");
  onlyFields(object, Object.keys(DEFAULT_SCHEDULE_SETTINGS), "schedule");
  const defaults = DEFAULT_SCHEDULE_SETTINGS;
  const whole = (name: keyof ScheduleSettings, min: number, max: number) =>
    Math.floor(numberAt(object[name], `schedule.${name}`, min, max) ?? defaults[name]);
  return {
    maxDelaySeconds:
      numberAt(object.maxDelaySeconds, "schedule.maxDelaySeconds", 1, 366 * 86_400) ?? defaults.maxDelaySeconds,
    maxPendingPerMailbox: whole("maxPendingPerMailbox", 0, 10_000_000),
    maxPending: whole("maxPending", 0, 100_000_000),
    leaseSeconds: numberAt(object.leaseSeconds, "schedule.leaseSeconds", 0.1, 3600) ?? defaults.leaseSeconds,
    pollSeconds: numberAt(object.pollSeconds, "schedule.pollSeconds", 0.05, 60) ?? defaults.pollSeconds,
  };
}
