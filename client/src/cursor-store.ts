/**
 * Where a subscription keeps its cursor between runs. `key` names the
 * subscription (server and mailboxes), so one store can hold many.
 */
export interface CursorStore {
  load(key: string): string | undefined | Promise<string | undefined>;
  /**
   * Called after every message, gap and move past filtered-out messages; may be asynchronous, need not
   * finish before the next call.
   */
  save(key: string, cursor: string): void | Promise<void>;
}

/** Browser default: survives reloads and is shared by the tabs of an origin. */
export function localStorageCursorStore(prefix = "herald:cursor:"): CursorStore {
  return {
    load: (key) => globalThis.localStorage?.getItem(prefix + key) ?? undefined,
    save: (key, cursor) => globalThis.localStorage?.setItem(prefix + key, cursor),
  };
}

/** A store built from two callbacks, e.g. to keep the cursor in IndexedDB or on your server. */
export function callbackCursorStore(
  load: () => string | undefined | Promise<string | undefined>,
  save: (cursor: string) => void | Promise<void>,
): CursorStore {
  return { load: () => load(), save: (_key, cursor) => save(cursor) };
}

// A variable specifier keeps bundlers from pulling Node's fs into the browser build.
const FS_MODULE = "node:fs/promises";

/**
 * Node: one file holds one subscription's cursor. Writes go to a temporary
 * file renamed over the old one, so a crash never leaves half a cursor; only
 * the newest pending cursor is written.
 */
export function fileCursorStore(path: string): CursorStore {
  let pending: string | undefined;
  let writing: Promise<void> | undefined;
  const fs = () => import(/* @vite-ignore */ FS_MODULE) as Promise<typeof import("node:fs/promises")>;
  const flush = async (): Promise<void> => {
    const { writeFile, rename } = await fs();
    while (pending !== undefined) {
      const cursor = pending;
      pending = undefined;
      await writeFile(`${path}.tmp`, `${cursor}\n`);
      await rename(`${path}.tmp`, path);
    }
  };
  return {
    async load() {
      const { readFile } = await fs();
      try {
        const text = (await readFile(path, "utf8")).trim();
        return text.length > 0 ? text : undefined;
      } catch (error) {
        if ((error as { code?: string }).code === "ENOENT") return undefined;
        throw error;
      }
    },
    save(_key, cursor) {
      pending = cursor;
      writing ??= flush().finally(() => {
        writing = undefined;
      });
      return writing;
    },
  };
}
