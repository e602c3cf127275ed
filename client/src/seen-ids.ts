/** Ids remembered to drop repeats; a repeat comes from a reconnect racing a write, so recent ids suffice. */
export const MAX_SEEN_IDS = 5000;

/** A bounded set of recently delivered message ids, oldest forgotten first. */
export class SeenIds {
  readonly #ids = new Set<string>();
  readonly #limit: number;

  constructor(limit = MAX_SEEN_IDS) {
    this.#limit = limit;
  }

  /** Records `id`; false when it was already seen. */
  add(id: string): boolean {
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > this.#limit) {
      const oldest = this.#ids.values().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
    return true;
  }
}
