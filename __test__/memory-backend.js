// setupFiles of the `memory` jest project: startRedis() gives memory:// stores.
process.env.ATLAS_TEST_BACKEND = 'memory'
