import type { AppendListener, StoredMessage } from "./mailbox-store.js";

/** Told about an error a listener threw; the store has already told every other listener. */
export type ListenerErrorHandler = (error: unknown) => void;

/** The option every backend takes for its listeners' errors. */
export interface ListenerErrorOption {
  /**
   * Receives what an append listener threw. Default: the error is thrown
   * again on a later microtask, where Node's uncaught-exception handling
   * (a crash with the stack, unless the process installed a handler) sees it.
   */
  readonly onListenerError?: ListenerErrorHandler;
}

/** The listeners a store's watch() registers, and how a committed append reaches them. */
export interface AppendListeners {
  /** Registers a listener; returns the function that removes it. */
  add(listener: AppendListener): () => void;
  /**
   * Calls every listener once. One that throws neither stops the others nor
   * reaches the caller (the store's append already committed, its publisher
   * must get its answer); its error goes to the ListenerErrorHandler.
   */
  emit(mailbox: string, messages: readonly StoredMessage[] | undefined): void;
}

// A listener that throws is a bug above the store. Swallowing it would hide a broken fan-out; throwing it
// into the store's own work would fail a publish that committed. Thrown again on a microtask of its own,
// it stays loud (Node reports it with its stack) and out of the store's way.
function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/** Listeners of any one kind of store event, with the same error rule as AppendListeners. */
export interface Listeners<Args extends unknown[]> {
  add(listener: (...args: Args) => void): () => void;
  emit(...args: Args): void;
}

class ListenerSet<Args extends unknown[]> implements Listeners<Args> {
  readonly #listeners = new Set<(...args: Args) => void>();
  readonly #onError: ListenerErrorHandler;

  constructor(onError: ListenerErrorHandler) {
    this.#onError = onError;
  }

  add(listener: (...args: Args) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(...args: Args): void {
    for (const listener of this.#listeners) {
      try {
        listener(...args);
      } catch (error) {
        this.#onError(error);
      }
    }
  }
}

export function createListeners<Args extends unknown[]>(onError: ListenerErrorHandler = rethrowLater): Listeners<Args> {
  return new ListenerSet<Args>(onError);
}

export function createAppendListeners(onError: ListenerErrorHandler = rethrowLater): AppendListeners {
  return new ListenerSet<[string, readonly StoredMessage[] | undefined]>(onError);
}
