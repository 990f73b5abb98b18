import { CacheModule } from '@nestjs/cache-manager'
import { Global, Module, type DynamicModule } from '@nestjs/common'
import { APP_GUARD } from '@nestjs/core'
import { TerminusModule } from '@nestjs/terminus'
import { ThrottlerModule } from '@nestjs/throttler'
import { RedisModule, RedisService } from '@atlas-erp/redis/nest'
import { KeyvRedisStore } from '@atlas-erp/redis/keyv'
import { RedisThrottlerStorage } from '@atlas-erp/redis/throttler'
import { Keyv } from 'keyv'

import { AuthModule } from './auth/auth.module'
import type { AppOptions } from './config'
import { EmailModule } from './email/email.module'
import { HealthController } from './health/health.controller'
import { LedgerModule } from './ledger/ledger.module'
import { PeriodsModule } from './periods/periods.module'
import { AppThrottlerGuard } from './throttle/app-throttler.guard'
import { APP_OPTIONS } from './tokens'

/** This instance's settings, for every module. */
@Global()
@Module({})
class OptionsModule {
  static forRoot(options: AppOptions): DynamicModule {
    return { module: OptionsModule, providers: [{ provide: APP_OPTIONS, useValue: options }], exports: [APP_OPTIONS] }
  }
}

@Module({})
export class AppModule {
  static forRoot(options: AppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        OptionsModule.forRoot(options),
        // No options: REDIS_URL, or REDIS_HOST / REDIS_PORT / REDIS_PASSWORD, as apps/api/.env has them.
        RedisModule.forRoot({ isGlobal: true }),
        // Object form (forRootAsync): the array form of forRoot would ignore `storage`.
        ThrottlerModule.forRootAsync({
          inject: [RedisService],
          useFactory: (redis: RedisService) => ({
            throttlers: [
              { name: 'short', ...options.throttle.short },
              { name: 'long', ...options.throttle.long },
            ],
            storage: new RedisThrottlerStorage(redis),
          }),
        }),
        CacheModule.registerAsync({
          isGlobal: true,
          inject: [RedisService],
          useFactory: (redis: RedisService) => ({
            stores: [new Keyv({ store: new KeyvRedisStore(redis.client), namespace: 'nest-api-cache' })],
            ttl: options.cacheTtlSeconds * 1000,
          }),
        }),
        TerminusModule.forRoot({ logger: false }),
        AuthModule,
        EmailModule,
        LedgerModule,
        PeriodsModule,
      ],
      controllers: [HealthController],
      providers: [{ provide: APP_GUARD, useClass: AppThrottlerGuard }],
    }
  }
}
