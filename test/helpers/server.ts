import { DEFAULT_CONFIG, type ServeConfig } from "../../src/config.js";
import type { MercureSettings } from "../../src/mercure/mercure-config.js";
import { DEFAULT_PRESENCE_SETTINGS, type PresenceSettings } from "../../src/presence-config.js";
import { DEFAULT_SCHEDULE_SETTINGS, type ScheduleSettings } from "../../src/schedule-config.js";
import { type PushOptions, type RunningHerald, startHerald } from "../../src/server.js";
import type { MailboxStore } from "../../src/store/mailbox-store.js";
import { createMemoryStore, type MemoryStoreOptions } from "../../src/store/memory-store.js";
import type { PresenceStore } from "../../src/store/presence-store.js";
import type { ScheduleStore } from "../../src/store/schedule-store.js";

export interface TestServerOptions {
  readonly config?: Partial<ServeConfig>;
  readonly store?: Partial<MemoryStoreOptions>;
  /** Use this store instead of a memory store. */
  readonly customStore?: MailboxStore;
  /** Presence shared with other nodes; a single-node one when not given. */
  readonly presence?: PresenceStore;
  readonly presenceSettings?: Partial<PresenceSettings>;
  /** Where scheduled publishes wait; a memory one when not given. */
  readonly schedule?: ScheduleStore;
  readonly scheduleSettings?: Partial<ScheduleSettings>;
  /** Web Push (see test/helpers/push.ts for settings aimed at the test push service). */
  readonly push?: PushOptions;
  /** A Mercure hub at /.well-known/mercure (see test/helpers/mercure.ts). */
  readonly mercure?: MercureSettings;
}

/** A real listening Herald on a free loopback port. */
export async function startTestServer(options: TestServerOptions = {}): Promise<RunningHerald> {
  const config: ServeConfig = { ...DEFAULT_CONFIG, port: 0, drainTimeoutSeconds: 1, ...options.config };
  const store =
    options.customStore ??
    createMemoryStore({
      maxMailboxes: config.maxMailboxes,
      maxMessagesPerMailbox: config.maxMessagesPerMailbox,
      maxBytes: config.maxStoreBytes,
      ...options.store,
    });
  return startHerald(config, store, {
    ...(options.presence ? { presence: options.presence } : {}),
    presenceSettings: { ...DEFAULT_PRESENCE_SETTINGS, ...options.presenceSettings },
    ...(options.schedule ? { schedule: options.schedule } : {}),
    scheduleSettings: { ...DEFAULT_SCHEDULE_SETTINGS, ...options.scheduleSettings },
    ...(options.push ? { push: options.push } : {}),
    ...(options.mercure ? { mercure: options.mercure } : {}),
  });
}
