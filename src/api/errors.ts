// The one place where error codes become HTTP statuses.

import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ErrorCode, XdpvsError } from '../errors.js';

const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  [ErrorCode.Invalid]: 400,
  [ErrorCode.FamilyMismatch]: 400,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Exists]: 409,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.Unsupported]: 501,
  [ErrorCode.Capacity]: 507,
  [ErrorCode.Bpf]: 500,
  [ErrorCode.Map]: 500,
  [ErrorCode.System]: 500,
  [ErrorCode.Unreachable]: 502,
  [ErrorCode.Internal]: 500,
};

export function statusOf(e: XdpvsError): ContentfulStatusCode {
  return STATUS[e.code] ?? 500;
}
