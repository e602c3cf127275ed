/** A failure the server reported (`status` and `code` from its JSON error) or a network failure (status 0). */
export class HeraldClientError extends Error {
  override name = "HeraldClientError";
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** Retrying cannot help: the request itself is wrong. 401 is retried because the token callback may refresh. */
  get fatal(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 401 && this.status !== 408 && this.status !== 429;
  }
}

/** Turns a non-2xx response into a HeraldClientError, reading Herald's `{"error":{code,message}}` when present. */
export async function responseError(response: Response): Promise<HeraldClientError> {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // Not Herald's JSON (a proxy's page): keep the status line.
  }
  return new HeraldClientError(response.status, code, message);
}

export function networkError(error: unknown): HeraldClientError {
  const cause = (error as { cause?: { code?: string } } | undefined)?.cause?.code;
  const text = error instanceof Error ? error.message : String(error);
  return new HeraldClientError(0, "network", `${text}${cause ? ` (${cause})` : ""}`);
}
