#!/usr/bin/env node
// Packs @atlas-erp/redis in the repo root (`npm pack`: the tarball holds the
// prebuilt native binary, dist/ and the .d.ts files) and installs that tarball
// here — a real install of the package as users get it, not a link.
//
// It is not in package.json's dependencies on purpose: a `file:` tarball in the
// lockfile carries the tarball's integrity hash, and a rebuilt tarball would then
// fail `npm ci` (or, worse, be served stale from npm's cache). `--no-save` keeps
// package.json and package-lock.json as they are.
//
//   node scripts/install-package.js            # pack, then install
//   node scripts/install-package.js --no-pack  # install the tarball already packed
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const example = path.resolve(__dirname, '..')
const root = path.resolve(example, '../..')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const { version } = require(path.join(root, 'package.json'))
const tarball = path.join(root, `atlas-erp-redis-${version}.tgz`)

if (!process.argv.includes('--no-pack')) {
  const built = fs.existsSync(path.join(root, 'dist', 'index.js')) && fs.readdirSync(root).some((f) => f.endsWith('.node'))
  if (!built) {
    console.error('The package is not built: run `npm run build` in the repo root first (dist/ and the .node binary).')
    process.exit(1)
  }
  execFileSync(npm, ['pack', '--silent'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] })
}
if (!fs.existsSync(tarball)) {
  console.error(`${path.relative(example, tarball)} is missing: run \`npm pack\` in the repo root`)
  process.exit(1)
}
execFileSync(npm, ['install', '--no-save', '--no-audit', '--no-fund', path.relative(example, tarball)], {
  cwd: example,
  stdio: 'inherit',
})
