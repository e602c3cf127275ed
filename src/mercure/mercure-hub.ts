import type { Hub } from "../core/hub.js";
import type { MailboxStore } from "../store/mailbox-store.js";
import { ActiveSubscriptions } from "./active-subscriptions.js";
import type { MercureSettings } from "./mercure-config.js";
import { createMercureTokenVerifier, type MercureTokenVerifier } from "./mercure-token.js";
import { UpdateLocator } from "./update-locator.js";

/** The Mercure hub: its settings and the parts the /.well-known/mercure routes use, over Herald's hub and store. */
export interface MercureHub {
  readonly settings: MercureSettings;
  readonly tokens: MercureTokenVerifier;
  readonly locator: UpdateLocator;
  /** Undefined unless `subscriptions` is on. */
  readonly subscriptions: ActiveSubscriptions | undefined;
}

export interface MercureHubOptions {
  readonly settings: MercureSettings;
  readonly hub: Hub;
  readonly store: MailboxStore;
  /** Told about subscription events the hub could not publish. */
  readonly onError: (error: unknown) => void;
}

export function createMercureHub(options: MercureHubOptions): MercureHub {
  const { settings, hub, store } = options;
  return {
    settings,
    tokens: createMercureTokenVerifier(settings),
    locator: new UpdateLocator(store, settings.maxResumeScan),
    subscriptions: settings.subscriptions
      ? new ActiveSubscriptions({
          presence: hub.presence,
          publishing: hub.publishing,
          mailbox: settings.subscriptionsMailbox,
          onError: options.onError,
        })
      : undefined,
  };
}
