/**
 * The page's half of "is this mailbox on screen?": Herald's service worker asks each focused window before
 * it shows a pushed message as a notification (`{type:"herald:push-visible?", mailbox}` with a reply port);
 * a page answers `{visible:true}` while it is visible, has focus, and an open subscribe() covers the mailbox,
 * so a message already shown live is not notified twice. subscribe() registers here; outside a browser (Node,
 * a browser without service workers) this does nothing.
 */

export const VISIBLE_QUESTION = "herald:push-visible?";

/** Whether a subscription delivers live now (its state is "open"). */
type LiveCheck = () => boolean;

const live = new Map<symbol, { readonly mailboxes: ReadonlySet<string>; readonly open: LiveCheck }>();
let listening = false;

function serviceWorkers(): ServiceWorkerContainer | undefined {
  return typeof navigator === "object" ? (navigator as Navigator | undefined)?.serviceWorker : undefined;
}

/** Whether this page shows `mailbox` live, as a person looking at the screen would see it. */
export function showsLive(mailbox: string): boolean {
  if (typeof document !== "object" || document.visibilityState !== "visible" || !document.hasFocus()) return false;
  for (const entry of live.values()) if (entry.mailboxes.has(mailbox) && entry.open()) return true;
  return false;
}

function listen(container: ServiceWorkerContainer): void {
  if (listening) return;
  listening = true;
  container.addEventListener("message", (event: MessageEvent) => {
    const question = event.data as { type?: unknown; mailbox?: unknown } | null;
    if (question?.type !== VISIBLE_QUESTION || typeof question.mailbox !== "string") return;
    event.ports[0]?.postMessage({ visible: showsLive(question.mailbox) });
  });
  // Messages from the worker wait until the page says it listens (or has loaded): say so now.
  container.startMessages();
}

/**
 * Registers a subscription's mailboxes as shown live while `open()` says so; returns the function that
 * unregisters them (call it on close).
 */
export function registerLiveMailboxes(mailboxes: readonly string[], open: LiveCheck): () => void {
  const container = serviceWorkers();
  if (container === undefined) return () => {};
  const id = Symbol("herald-live");
  live.set(id, { mailboxes: new Set(mailboxes), open });
  listen(container);
  return () => {
    live.delete(id);
  };
}
