// Request bodies of the API as zod schemas: they validate requests (and will generate the OpenAPI document).

import { z } from 'zod';
import { MAX_WEIGHT } from '../lb/model.js';

const port = z.number().int().min(1).max(65535);
const method = z.enum(['dr', 'tunnel', 'nat']);
const weight = z.number().int().min(0).max(MAX_WEIGHT);

export const ServiceCreate = z
  .object({
    protocol: z.enum(['tcp', 'udp']),
    address: z.string().min(1),
    port,
    scheduler: z.string().min(1).optional(),
    flags: z.array(z.string()).optional(),
  })
  .strict();

export const ServiceUpdate = z
  .object({
    scheduler: z.string().min(1).optional(),
    flags: z.array(z.string()).optional(),
  })
  .strict();

export const ServerCreate = z
  .object({
    address: z.string().min(1),
    port: port.optional(),
    method: method.optional(),
    weight: weight.optional(),
  })
  .strict();

export const ServerUpdate = z
  .object({
    weight: weight.optional(),
    method: method.optional(),
  })
  .strict();
