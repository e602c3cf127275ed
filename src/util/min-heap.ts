/** A binary min-heap ordered by `before(a, b)` (true when a comes first). */
export class MinHeap<T> {
  readonly #items: T[] = [];
  readonly #before: (a: T, b: T) => boolean;

  constructor(before: (a: T, b: T) => boolean) {
    this.#before = before;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const items = this.#items;
    items.push(item);
    let at = items.length - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.#before(items[at] as T, items[parent] as T)) break;
      [items[at], items[parent]] = [items[parent] as T, items[at] as T];
      at = parent;
    }
  }

  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let first = at;
      if (left < items.length && this.#before(items[left] as T, items[first] as T)) first = left;
      if (right < items.length && this.#before(items[right] as T, items[first] as T)) first = right;
      if (first === at) return top;
      [items[at], items[first]] = [items[first] as T, items[at] as T];
      at = first;
    }
  }

  /** Empties the heap and returns what it held, in no particular order. */
  drain(): T[] {
    return this.#items.splice(0);
  }
}
