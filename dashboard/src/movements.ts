// A movement posted with `?wait`, and the processors' decision as one value for every view
// that records one (docs/api.md, "?wait"): applied (201), a repeat of an earlier movement
// (200), rejected by the processors (409 naming the movement; `code` is the reason), accepted
// with the outcome not known yet (202), or refused before the pipeline (the fields at fault
// in `errors` when there are any).

import { attempt } from './session';

export interface FieldError {
  field: string;
  message: string;
}

export type Decision = { consistency_token?: string } & (
  | { status: 'applied'; balance_after: number }
  | { status: 'duplicate'; original_status?: string; balance_after?: number }
  | { status: 'rejected'; code: string; available_quantity?: number | null }
  | { status: 'pending' }
  | { status: 'refused'; code?: string; detail: string; errors: FieldError[] }
);

/** Posts `movement` and waits up to 5 s for the processors' decision. */
export async function recordMovement(movement: Record<string, unknown>): Promise<Decision> {
  const answer = await attempt('ingest', 'POST', '/v1/movements?wait=5s', movement);
  const body = answer.body ?? {};
  const consistency_token: string | undefined = body.consistency_token;
  switch (answer.status) {
    case 201:
      return { status: 'applied', balance_after: body.balance_after, consistency_token };
    case 200:
      return { status: 'duplicate', original_status: body.original_status, balance_after: body.balance_after, consistency_token };
    case 202:
      return { status: 'pending', consistency_token };
  }
  if (answer.status === 409 && body.movement_id && body.code) {
    return { status: 'rejected', code: body.code, available_quantity: body.available_quantity, consistency_token };
  }
  return {
    status: 'refused',
    code: body.code,
    detail: body.detail ?? `The server answered ${answer.status}.`,
    errors: body.errors ?? [],
  };
}
