'use strict'
// Throwaway TLS material for tests, made with the `openssl` CLI (no npm dependency).
// EC P-256 keys: generation takes milliseconds, unlike RSA.
const { execFileSync } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const vm = require('vm')

// Inside jest, `process` is a per-test-file copy whose 'exit' event never fires;
// the real process object is still reachable from the outer context. Keeping the
// cache on it means one set of certs per jest worker, not one per test file.
const realProcess = vm.runInThisContext('process')
const CACHE = Symbol.for('atlas-erp.redis-harness.certs')
const cache = realProcess[CACHE] || (realProcess[CACHE] = new Map())

const DAYS = '3'
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

// Extensions as strict verifiers (rustls/webpki) want them: v3, SAN present, EKU set.
// Server certs also carry clientAuth because redis-server presents its tls-cert-file
// as a client cert on cluster-bus and replication links.
const SERVER_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n'
const CLIENT_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'

function openssl(dir, args) {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed: ${err.stderr ? err.stderr.toString().trim() : err.message}`)
  }
}

function makeCa(dir, name, cn) {
  openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', DAYS,
    '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
}

function makeLeaf(dir, name, ca, cn, ext) {
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext)
  openssl(dir, ['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`])
  // No -CAserial: OpenSSL 3 then picks a random serial, so no .srl file is shared.
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`,
    '-days', DAYS, '-extfile', `${name}.ext`, '-out', `${name}.crt`])
}

/**
 * Generate (once per process and directory) a CA, a server cert for localhost/127.0.0.1,
 * a client cert, an unrelated CA, a client cert of that unrelated CA, and a server cert
 * valid only for wrong.example. Without `dir`, uses a tmp dir removed when the process exits.
 */
function makeCerts(dir) {
  const key = dir ? path.resolve(dir) : ''
  const hit = cache.get(key)
  if (hit && fs.existsSync(hit.caFile)) return hit

  if (dir) {
    dir = key
    fs.mkdirSync(dir, { recursive: true })
  } else {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atlas-redis-certs-'))
    const d = dir
    realProcess.once('exit', () => fs.rmSync(d, { recursive: true, force: true }))
  }

  makeCa(dir, 'ca', 'Atlas Redis Test CA')
  makeLeaf(dir, 'server', 'ca', 'localhost', `${SERVER_EXT}subjectAltName=DNS:localhost,IP:127.0.0.1\n`)
  makeLeaf(dir, 'client', 'ca', 'atlas-test-client', CLIENT_EXT)
  makeCa(dir, 'other-ca', 'Atlas Unrelated CA')
  makeLeaf(dir, 'other-client', 'other-ca', 'atlas-untrusted-client', CLIENT_EXT)
  makeLeaf(dir, 'wrong-host', 'ca', 'wrong.example', `${SERVER_EXT}subjectAltName=DNS:wrong.example\n`)

  const file = (name) => path.join(dir, name)
  const read = (name) => fs.readFileSync(file(name), 'utf8')
  const certs = Object.freeze({
    dir,
    caFile: file('ca.crt'), ca: read('ca.crt'),
    certFile: file('server.crt'), cert: read('server.crt'),
    keyFile: file('server.key'), key: read('server.key'),
    clientCertFile: file('client.crt'), clientCert: read('client.crt'),
    clientKeyFile: file('client.key'), clientKey: read('client.key'),
    otherCaFile: file('other-ca.crt'), otherCa: read('other-ca.crt'),
    otherClientCertFile: file('other-client.crt'), otherClientCert: read('other-client.crt'),
    otherClientKeyFile: file('other-client.key'), otherClientKey: read('other-client.key'),
    wrongHostCertFile: file('wrong-host.crt'), wrongHostCert: read('wrong-host.crt'),
    wrongHostKeyFile: file('wrong-host.key'), wrongHostKey: read('wrong-host.key'),
  })
  cache.set(key, certs)
  return certs
}

module.exports = { makeCerts }
