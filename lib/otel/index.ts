// `@atlas-erp/redis/otel`: OpenTelemetry spans and metrics from the package's diagnostics
// channels. Needs `@opentelemetry/api` (an optional peer dependency); the other entries never load it.
import '../features' // a package entry: the RedisClient it loads has every feature
export { instrumentRedis } from './instrument'
export type { RedisInstrumentation, RedisInstrumentationOptions } from './instrument'
