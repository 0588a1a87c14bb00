// The one error type of xdpvs: a stable code (XDPVS_ERR_*) that tests assert and the API maps to an HTTP status.

export const ErrorCode = {
  /** Input that does not parse or is out of range (address, port, weight, scheduler, flag). */
  Invalid: 'XDPVS_ERR_INVALID',
  /** The service or real server does not exist. */
  NotFound: 'XDPVS_ERR_NOT_FOUND',
  /** The service or real server already exists. */
  Exists: 'XDPVS_ERR_EXISTS',
  /** The configuration changed since the revision the request was based on (PUT /v1/config). */
  Conflict: 'XDPVS_ERR_CONFLICT',
  /** A real server's address family differs from its service's. */
  FamilyMismatch: 'XDPVS_ERR_FAMILY_MISMATCH',
  /** A capacity of the data plane is exhausted (services, destinations, table size). */
  Capacity: 'XDPVS_ERR_CAPACITY',
  /** The request is valid but asks for something this version does not do yet. */
  Unsupported: 'XDPVS_ERR_UNSUPPORTED',
  /** Missing or wrong bearer token. */
  Unauthorized: 'XDPVS_ERR_UNAUTHORIZED',
  /** A libbpf call failed (open, load, attach, pin). */
  Bpf: 'XDPVS_ERR_BPF',
  /** A map operation failed in the kernel. */
  Map: 'XDPVS_ERR_MAP',
  /** A system command (ip, ethtool, mount) failed. */
  System: 'XDPVS_ERR_SYSTEM',
  /** The CLI could not reach the daemon. */
  Unreachable: 'XDPVS_ERR_UNREACHABLE',
  /** Anything else: a bug. */
  Internal: 'XDPVS_ERR_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class XdpvsError extends Error {
  readonly code: ErrorCode;
  /** Extra facts for the API's JSON body (errno, operation, field). */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'XdpvsError';
    this.code = code;
    this.details = details;
  }

  toJSON() {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

export function isXdpvsError(e: unknown, code?: ErrorCode): e is XdpvsError {
  return e instanceof XdpvsError && (code === undefined || e.code === code);
}
