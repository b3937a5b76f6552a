"""Shared infrastructure with no domain in it, used by `chatbot`, `delivery` and the server alike:

jsonio.py     JSON in and out (orjson)
redispipe.py  auto-pipelining of Redis commands (one round trip per event-loop iteration)
redisconn.py  every Redis pool: one address, or the master Redis Sentinel names (a failover)
redisurl.py   the Redis URLs the `redis_url` setting takes (redis+sentinel:// among them)
http1.py      the small HTTP/1.1 keep-alive client of the MaaP send path
migrations.py numbered, versioned schema migrations (the SQLite stores'; one folder per backend)
"""
