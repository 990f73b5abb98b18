import 'reflect-metadata'
import { NestFactory } from '@nestjs/core'
import type { NestExpressApplication } from '@nestjs/platform-express'
import { toNodeHandler } from 'better-auth/node'

import { AppModule } from './app.module'
import type { Auth } from './auth/auth'
import type { AppOptions } from './config'
import { BETTER_AUTH } from './tokens'

/** One API instance, set up but not listening (main.ts and the e2e suite listen). */
export async function createApp(options: AppOptions, logger: false | undefined = undefined): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(options), {
    // Better Auth reads the raw request body: its handler goes first, the JSON parser after it.
    bodyParser: false,
    ...(logger === false ? { logger: false } : {}),
  })
  const auth = app.get<Auth>(BETTER_AUTH)
  const express = app.getHttpAdapter().getInstance()
  express.use((_req: unknown, res: { setHeader(name: string, value: string): void }, next: () => void) => {
    res.setHeader('X-Instance', options.instanceId)
    next()
  })
  express.all('/api/auth/{*path}', toNodeHandler(auth))
  app.useBodyParser('json', { limit: '100kb' })
  return app
}
