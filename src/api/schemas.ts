// Request bodies of the API as zod schemas: they validate requests (and will generate the OpenAPI document).

import { z } from 'zod';
import { MAX_WEIGHT } from '../lb/model.js';

const port = z.number().int().min(1).max(65535);
const method = z.enum(['dr', 'tunnel', 'nat']);
const weight = z.number().int().min(0).max(MAX_WEIGHT);
/** ipvsadm -x / -y: connections, 0 for none. */
const threshold = z.number().int().min(0).max(0x7fffffff);

/** ipvsadm -p (seconds, 0: not persistent) and -M (dotted IPv4 netmask, or a prefix length). */
const persistent = z.number().int().min(0);
const netmask = z.union([z.string().min(1), z.number().int()]);

export const ServiceCreate = z
  .object({
    protocol: z.enum(['tcp', 'udp']),
    address: z.string().min(1),
    /** 0: every port, for persistent services (checked by the balancer). */
    port: z.number().int().min(0).max(65535),
    scheduler: z.string().min(1).optional(),
    flags: z.array(z.string()).optional(),
    persistent: persistent.optional(),
    netmask: netmask.optional(),
  })
  .strict();

export const ServiceUpdate = z
  .object({
    scheduler: z.string().min(1).optional(),
    flags: z.array(z.string()).optional(),
    persistent: persistent.optional(),
    netmask: netmask.optional(),
  })
  .strict();

export const ServerCreate = z
  .object({
    address: z.string().min(1),
    /** 0 only for a real server of a port-0 service (checked by the balancer). */
    port: z.number().int().min(0).max(65535).optional(),
    method: method.optional(),
    weight: weight.optional(),
    upperThreshold: threshold.optional(),
    lowerThreshold: threshold.optional(),
  })
  .strict();

export const ServerUpdate = z
  .object({
    weight: weight.optional(),
    method: method.optional(),
    upperThreshold: threshold.optional(),
    lowerThreshold: threshold.optional(),
  })
  .strict();

/** PUT /v1/timeouts: ipvsadm --set tcp tcpfin udp (seconds; 0 or absent leaves one as it is). */
export const TimeoutsUpdate = z
  .object({
    tcp: z.number().int().min(0).optional(),
    tcpfin: z.number().int().min(0).optional(),
    udp: z.number().int().min(0).optional(),
  })
  .strict();

/** PUT /v1/config: the whole configuration (xdpvsadm -R), applied all or nothing. */
export const ConfigReplace = z
  .object({
    revision: z.number().int().min(0).optional(),
    services: z.array(ServiceCreate.extend({ servers: z.array(ServerCreate).optional() })),
  })
  .strict();
