export * from './nest'
