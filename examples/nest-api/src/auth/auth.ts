// Better Auth with its secondary storage in Redis (sessions, its own rate-limit
// counters, verification values): every instance sees every session. Users and
// accounts live in the database adapter — the in-memory one here (per instance;
// apps/api uses its real database).
import { betterAuth } from 'better-auth'
import { memoryAdapter } from 'better-auth/adapters/memory'
import { redisSecondaryStorage } from '@atlas-erp/redis/better-auth'
import type { RedisService } from '@atlas-erp/redis/nest'

import type { AppOptions } from '../config'
import type { EmailService } from '../email/email.service'

export function createAuth(redis: RedisService, emails: EmailService, options: AppOptions) {
  const db: Record<string, Array<Record<string, unknown>>> = { user: [], session: [], account: [], verification: [] }
  return betterAuth({
    baseURL: options.authBaseUrl,
    secret: options.authSecret,
    database: memoryAdapter(db),
    // RedisService works as well as a RedisClient here (its `client` is used).
    secondaryStorage: redisSecondaryStorage(redis),
    emailAndPassword: { enabled: true },
    logger: { disabled: process.env.NODE_ENV === 'test' },
    databaseHooks: {
      user: {
        create: {
          // One welcome e-mail per user (the job id makes a retry of this hook harmless).
          after: async (user) => {
            await emails.enqueue(
              { to: user.email, subject: 'Welcome to Atlas ERP', body: `Hello ${user.name}` },
              `welcome-${user.id}`,
            )
          },
        },
      },
    },
  })
}

export type Auth = ReturnType<typeof createAuth>
