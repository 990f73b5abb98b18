import { createApp } from './app'
import { appOptionsFromEnv } from './config'

async function main(): Promise<void> {
  const app = await createApp(appOptionsFromEnv())
  app.enableShutdownHooks() // SIGTERM: close the HTTP server, the queue and worker, then Redis
  const port = Number(process.env.PORT ?? 3000)
  await app.listen(port)
  console.log(`nest-api listening on ${port}`)
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
