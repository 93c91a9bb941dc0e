// Calls to the two APIs: query-api (this page's origin) for reads, ingest (its URL from
// /app/config.json) for sign-in and every change. Answers that are not 2xx become an
// ApiError carrying the RFC 9457 problem, field errors included.

export interface FieldError {
  field: string;
  code: string;
  message: string;
}

export interface Problem {
  status: number;
  code?: string;
  title?: string;
  detail?: string;
  errors?: FieldError[];
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${problem.status}`);
  }

  /** The message for `field`, if the API named it. */
  forField(field: string): string | undefined {
    return this.problem.errors?.find((error) => error.field === field)?.message;
  }
}

interface Config {
  ingest_url: string;
}

let config: Config = { ingest_url: '' };

export async function loadConfig(): Promise<void> {
  const response = await fetch(`${import.meta.env.BASE_URL}config.json`);
  if (response.ok) config = await response.json();
}

export type Service = 'query' | 'ingest';

export function url(service: Service, path: string): string {
  return service === 'ingest' ? `${config.ingest_url}${path}` : path;
}

/** Sends a request; resolves with the status and the JSON body (null when empty). */
export async function send(
  service: Service,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(url(service, path), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError({ status: 0, code: 'unreachable', detail: 'The server cannot be reached. Check the connection and try again.' });
  }
  const text = await response.text();
  let parsed: any = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { detail: text };
  }
  return { status: response.status, body: parsed };
}

/** Throws the problem of a non-2xx answer. */
export function expectOk<T>(answer: { status: number; body: any }): T {
  if (answer.status >= 200 && answer.status < 300) return answer.body as T;
  throw new ApiError({ status: answer.status, ...(answer.body ?? {}) });
}
