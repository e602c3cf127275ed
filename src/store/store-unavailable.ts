import { HeraldError } from "../errors.js";

/** What a caller is told to wait before trying a store that could not answer again. */
export const STORE_RETRY_AFTER_SECONDS = 1;

/**
 * The one error a backend rejects with when it cannot answer: closed,
 * unreachable, out of queue room, or failing underneath. `message` is what a
 * client may be shown (the catalogue's by default, so a backend's own error
 * text, host names included, never reaches one); `cause` keeps that error for
 * logs.
 */
export function storeUnavailable(message?: string, cause?: unknown): HeraldError {
  const error = new HeraldError("store_unavailable", message, { "Retry-After": String(STORE_RETRY_AFTER_SECONDS) });
  if (cause !== undefined) error.cause = cause;
  return error;
}

/** What every backend answers once closed. */
export function storeClosed(): HeraldError {
  return storeUnavailable("The message store is closed");
}

/** Runs `work`; a failure other than a HeraldError becomes storeUnavailable with it as the cause. */
export async function orUnavailable<T>(work: () => T | Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw error instanceof HeraldError ? error : storeUnavailable(undefined, error);
  }
}
