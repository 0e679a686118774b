"""The gateway's picture of the world: keys, APIs and org balances, held in memory.

Built by replaying the compacted topics `tollgate.accounts.keys.v1`,
`tollgate.accounts.apis.v1` and `tollgate.billing.balances.v1` from the beginning
(`replay.StateFollower`), then kept current from the same topics. The request path
only reads it (`store.Registry`); it never does I/O.
"""
