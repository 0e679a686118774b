"""The gateway's picture of the world: keys, APIs, org balances and plans, in memory.

Built by replaying the compacted topics `tollgate.accounts.keys.v1`,
`tollgate.accounts.apis.v1`, `tollgate.billing.balances.v1` and
`tollgate.billing.plans.v1` from the beginning (`replay.state_follower`, on the kit's
`StateFollower`), then kept current from the same topics. The request path only reads
it (`store.Registry`); it never does I/O.
"""
