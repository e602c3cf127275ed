/**
 * Herald's client: subscribe (SSE, long-poll fallback, or WebSocket) with a
 * cursor that survives reconnects and reloads, filters and latest-value
 * subscriptions, and publish; presence (who is here) and read state (what a
 * reader has read, on all its devices); Web Push, so a browser shows
 * notifications while no page is open. No runtime dependencies; runs in
 * browsers and Node 20.
 */
export { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
export { type CursorStore, callbackCursorStore, fileCursorStore, localStorageCursorStore } from "./cursor-store.js";
export type { SubscribeHandlers } from "./delivery.js";
export { HeraldClientError } from "./errors.js";
export { type LatestOptions, latest } from "./latest.js";
export { type PublishOptions, publish } from "./publish.js";
export {
  disablePush,
  type EnablePushOptions,
  enablePush,
  type PushOptions,
  type PushRegistration,
  pushEnabled,
  pushSupported,
  vapidPublicKey,
} from "./push.js";
export { markRead, presence, type ReaderOptions, readState } from "./reader-api.js";
export { type SubscribeOptions, type Subscription, subscribe } from "./subscribe.js";
export type {
  ConflatedEvent,
  GapEvent,
  HeraldMessage,
  LatestSnapshot,
  MessageFields,
  PresenceAnswer,
  PresenceEvent,
  PresenceMember,
  ReadEvent,
  ReaderEvent,
  ReadState,
  SubscriptionStatus,
  TokenProvider,
  TransportName,
  UnreadEvent,
  WebSocketConstructor,
} from "./types.js";
export type { SubscribeFilter } from "./view.js";
