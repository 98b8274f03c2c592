/** JSON calls to the gateway and its error shape `{error, message}`. */

/** A gateway answer that was not 2xx (`status` 0: the request never got an answer). */
export class ChatWorkerError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ChatWorkerError";
    this.status = status;
    this.code = code;
  }

  /** Worth retrying the same request: no answer, rate limited or a server-side failure. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export interface JsonRequest {
  method: "GET" | "POST";
  url: string;
  token?: string | undefined;
  body?: unknown;
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

export type FetchFn = typeof globalThis.fetch;

/** Build request headers: the caller's, JSON content type, and the Bearer token. */
export function requestHeaders(
  base: Record<string, string> | undefined,
  token: string | undefined,
  extra?: Record<string, string>,
): Record<string, string> {
  const headers: Record<string, string> = { ...base, ...extra };
  if (token) headers["Authorization"] = `Bearer ${token}`;
  return headers;
}

/** Turn a non-2xx response into a {@link ChatWorkerError} carrying the gateway's message. */
export async function errorFrom(response: Response, what: string): Promise<ChatWorkerError> {
  let code = `http_${response.status}`;
  let message = `${what} failed with HTTP ${response.status}`;
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text) as { error?: unknown; message?: unknown };
      if (typeof body.error === "string") code = body.error;
      if (typeof body.message === "string") message = `${what}: ${body.message}`;
    } catch {
      if (text.trim()) message = `${what}: ${text.trim().slice(0, 300)}`;
    }
  } catch {
    // the body could not be read: keep the generic message
  }
  return new ChatWorkerError(response.status, code, message);
}

/** One JSON request; resolves with the parsed body of a 2xx answer, else rejects. */
export async function callJson<T>(fetchFn: FetchFn, request: JsonRequest, what: string): Promise<T> {
  const headers = requestHeaders(request.headers, request.token);
  if (request.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetchFn(request.url, {
      method: request.method,
      headers,
      body: request.body === undefined ? undefined : JSON.stringify(request.body),
      signal: request.signal,
    });
  } catch (error) {
    if (isAbortError(error)) throw error;
    throw new ChatWorkerError(0, "network_error", `${what}: ${describe(error)}`);
  }
  if (!response.ok) throw await errorFrom(response, what);
  const text = await response.text();
  return (text ? JSON.parse(text) : {}) as T;
}

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Wait `ms`, or less if `signal` aborts first (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Exponential backoff with jitter: 0.25 s, 0.5 s, 1 s ... capped at 8 s. */
export function backoff(attempt: number): number {
  const base = Math.min(8000, 250 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.5 + Math.random() * 0.5));
}

const STREAM_ID = /^\d+-\d+$/;

/** Compare two Redis stream ids ("ms-seq"); negative when a < b. */
export function compareIds(a: string, b: string): number {
  if (!STREAM_ID.test(a) || !STREAM_ID.test(b)) return a === b ? 0 : a < b ? -1 : 1;
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  const major = BigInt(am) - BigInt(bm);
  if (major !== 0n) return major < 0n ? -1 : 1;
  const minor = BigInt(as) - BigInt(bs);
  return minor === 0n ? 0 : minor < 0n ? -1 : 1;
}
