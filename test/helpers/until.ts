/** Polls `predicate` every `stepMs` until it holds; throws after `timeoutMs` with `what` in the message. */
export async function until(
  predicate: () => boolean,
  what = "condition",
  timeoutMs = 5000,
  stepMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}
