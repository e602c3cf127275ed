/**
 * Polls `predicate` every `stepMs` until it holds; throws after `timeoutMs`
 * with `what` in the message. `what` may be a function, read only on timeout,
 * to show the state that did not arrive.
 */
export async function until(
  predicate: () => boolean | Promise<boolean>,
  what: string | (() => string) = "condition",
  timeoutMs = 5000,
  stepMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}
