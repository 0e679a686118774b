'use strict'
// The Fastify peer of Tollgate's gateway for bench/gateway/run.py: the same job without
// events. API key from X-API-Key, HMAC-SHA256 with a pepper and looked up in an
// in-memory Map (10,000 keys), the org's credits checked in a Set of blocked orgs, a
// per-key limit by @fastify/rate-limit (in-memory store), proxied by @fastify/http-proxy
// (undici, keep-alive pool) with the key stripped.
// Usage: node gateway.js PORT UPSTREAM_URL KEYS_FILE PEPPER [WORKERS]

const cluster = require('node:cluster')
const crypto = require('node:crypto')
const fs = require('node:fs')

const [port, upstream, keysFile, pepper, workersArg] = process.argv.slice(2)
const workers = Number(workersArg || '1')

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork()
} else {
  start()
}

function hashKey (raw) {
  return crypto.createHmac('sha256', pepper).update(raw).digest('hex')
}

async function start () {
  const Fastify = require('fastify')
  const keys = new Map()
  for (const raw of fs.readFileSync(keysFile, 'utf8').split('\n')) {
    if (raw) keys.set(hashKey(raw), { org: 'org-1' })
  }
  const blockedOrgs = new Set()

  const app = Fastify({ logger: false })
  app.decorateRequest('tollgateKey', null)
  app.addHook('onRequest', (request, reply, done) => {
    const raw = request.headers['x-api-key']
    const key = raw === undefined ? undefined : keys.get(hashKey(raw))
    if (key === undefined) {
      reply.code(401).send({ type: 'unknown_key' })
      return
    }
    if (blockedOrgs.has(key.org)) {
      reply.code(402).send({ type: 'credits_exhausted' })
      return
    }
    done()
  })
  await app.register(require('@fastify/rate-limit'), {
    global: true,
    hook: 'preHandler',
    max: 1000000000,
    timeWindow: 3600 * 1000,
    cache: 20000,
    keyGenerator: (request) => request.headers['x-api-key']
  })
  await app.register(require('@fastify/http-proxy'), {
    upstream,
    prefix: '/api',
    rewritePrefix: '',
    undici: { connections: 512, pipelining: 1, keepAliveTimeout: 60000 },
    replyOptions: {
      rewriteRequestHeaders: (request, headers) => {
        delete headers['x-api-key']
        return headers
      }
    }
  })
  await app.listen({ host: '127.0.0.1', port: Number(port) })
}
