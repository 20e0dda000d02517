#!/usr/bin/python3
"""Differential test of the Redis protocol: one scripted run of commands against Debian's
redis-server and against ringcached's --resp-listen port (node 1 of a 3-node cluster, so
two keys in three are forwarded); every reply must be identical, byte for byte, except
where a rule below says how to compare (remaining TTLs move while the script runs).

Both servers are started here on 127.0.0.1 with free ports and stopped at the end. Raw
sockets, no client library: the bytes compared are the bytes on the wire.

Then garbage and hostile input on ringcached's port (random bytes, huge declared lengths,
half a command, a client that floods without reading): other clients keep their
answers, the node stays up and its memory bounded.

Usage: resp_diff.py --ringcached PATH [--redis-server PATH] [--nodes N] [--verbose]
Exit: 0 all replies match; 1 a mismatch (each printed); 77 redis-server missing (skip).
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# Commands in order. A command is a list of arguments (bytes or str), or a tuple
# (rule, args): "ttl" compares integers within 1, "pttl" within 1500 ms, "set" the
# elements of an array in any order, "len" only arrays' lengths, "any" only the kind of
# reply (a random pick).
SCRIPT = [
    # Connection.
    ["PING"], ["PING", "hello"], ["PING", "a", "b"], ["ECHO", "hi"], ["ECHO"],
    ["SELECT", "0"], ["SELECT", "x"], ["SELECT", "-1"],
    ["CONFIG", "GET", "save"], ["CONFIG", "GET", "appendonly"], ["CONFIG", "GET", "nosuch*"],
    ["CONFIG"], ["CONFIG", "GET"], ["CONFIG", "BOGUS"],
    # Unknown commands and arity, in Redis's words.
    ["FOO"], ["FOO", "a", "b"], ["foo", "x" * 200], ["GET"], ["GET", "a", "b"], ["SET", "k"],
    # GET / SET and its options.
    ["GET", "nokey"], ["SET", "k1", "v1"], ["GET", "k1"], ["set", "k1", "v2", "nx"],
    ["SET", "k1", "v3", "XX"], ["GET", "k1"], ["SET", "k2", "v", "XX"], ["GET", "k2"],
    ["SET", "k3", "v", "EX", "100"], ("ttl", ["TTL", "k3"]),
    ["SET", "k3", "v", "PX", "100000"], ("ttl", ["TTL", "k3"]), ("pttl", ["PTTL", "k3"]),
    ["SET", "k4", "v", "EX", "0"], ["SET", "k4", "v", "EX", "-5"], ["SET", "k4", "v", "EX", "abc"],
    ["SET", "k4", "v", "EX"], ["SET", "k4", "v", "NX", "XX"], ["SET", "k4", "v", "EX", "10", "PX", "100"],
    ["SET", "k4", "v", "BOGUS"], ["SET", "k4", "v", "PX", "01"], ["GET", "k4"],
    ["SET", "k5", "v", "EXAT", str(int(time.time()) + 1000)], ("ttl", ["TTL", "k5"]),
    ["SET", "k6", "v", "PXAT", str(int(time.time() * 1000) + 100000)], ("ttl", ["TTL", "k6"]),
    ["SET", "empty", ""], ["GET", "empty"], ["STRLEN", "empty"],
    ["SET", b"bin\r\nkey", b"\x00\xff\r\nvalue"], ["GET", b"bin\r\nkey"],
    ["SETNX", "nx1", "a"], ["SETNX", "nx1", "b"], ["GET", "nx1"], ["SETNX", "nx1"],
    ["SETEX", "ex1", "100", "v"], ("ttl", ["TTL", "ex1"]), ["SETEX", "ex1", "0", "v"],
    ["SETEX", "ex1", "x", "v"], ["PSETEX", "px1", "100000", "v"], ("ttl", ["TTL", "px1"]),
    ["PSETEX", "px1", "-1", "v"],
    # Many keys (spread over every node of the cluster).
    ["MSET", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6"],
    ["MGET", "a", "b", "c", "nokey", "d", "e", "f", "a"], ["MSET", "a"], ["MSET", "a", "1", "b"],
    ["EXISTS", "a", "b", "c", "c", "nokey"], ["TOUCH", "a", "nokey", "b"],
    ["DEL", "a", "b", "nokey"], ["EXISTS", "a", "b"], ["UNLINK", "c", "c"], ["EXISTS", "c"],
    ["DEL"],
    # Counters.
    ["INCR", "ctr"], ["INCR", "ctr"], ["INCRBY", "ctr", "10"], ["DECR", "ctr"],
    ["DECRBY", "ctr", "5"], ["INCRBY", "ctr", "abc"], ["INCRBY", "ctr", "1.5"],
    ["INCRBY", "ctr", "-3"], ["GET", "ctr"], ["SET", "s", "notanumber"], ["INCR", "s"],
    ["SET", "big", "9223372036854775807"], ["INCR", "big"], ["GET", "big"],
    ["SET", "small", "-9223372036854775808"], ["DECR", "small"],
    ["DECRBY", "ctr", "-9223372036854775808"], ["INCR"], ["INCRBY", "ctr"],
    # Expiry.
    ["SET", "t1", "v"], ["TTL", "t1"], ["PTTL", "t1"], ["TTL", "nokey"], ["PTTL", "nokey"],
    ["EXPIRE", "t1", "100"], ("ttl", ["TTL", "t1"]), ["EXPIRE", "nokey", "100"],
    ["PEXPIRE", "t1", "200000"], ("ttl", ["TTL", "t1"]), ["EXPIRE", "t1", "abc"],
    ["EXPIRE", "t1", "0"], ["GET", "t1"], ["EXISTS", "t1"], ["SET", "t2", "v"],
    ["PEXPIRE", "t2", "-10"], ["EXISTS", "t2"], ["EXPIRE", "t2"],
    ["STRLEN", "nx1"], ["STRLEN", "nokey"],
    # SET ... GET / KEEPTTL, GETSET, GETDEL: the value replaced or removed, read in the
    # same step as the write.
    ["SET", "g1", "old"], ["SET", "g1", "new", "GET"], ["GET", "g1"],
    ["SET", "g2", "v", "GET"], ["GET", "g2"], ["SET", "g1", "x", "NX", "GET"], ["GET", "g1"],
    ["SET", "g3", "x", "XX", "GET"], ["EXISTS", "g3"], ["SET", "g1", "y", "XX", "GET", "GET"],
    ["SET", "g4", "v", "EX", "100"], ["SET", "g4", "w", "KEEPTTL"], ("ttl", ["TTL", "g4"]),
    ["SET", "g4", "z"], ["TTL", "g4"], ["SET", "g5", "v", "KEEPTTL"], ["TTL", "g5"],
    ["SET", "g4", "v", "KEEPTTL", "EX", "10"], ["SET", "g4", "v", "EX", "10", "KEEPTTL"],
    ["SET", "g4", "v", "PX", "10", "PX", "20"], ["SET", "g4", "v", "NX", "NX"],
    ["SET", "g4", "v2", "EX", "100", "GET"], ("ttl", ["TTL", "g4"]),
    ["SET", "g4", "v3", "KEEPTTL", "GET"], ("ttl", ["TTL", "g4"]), ["GET", "g4"],
    ["SET", "g6", "v", "EXAT", "1"], ["EXISTS", "g6"], ["SET", "g1", "gone", "PXAT", "1", "GET"],
    ["EXISTS", "g1"], ["SET", "g7", "v", "XX", "PXAT", "1"],
    ["GETSET", "gs", "a"], ["GETSET", "gs", "b"], ["GET", "gs"], ["GETSET", "gs"],
    ["SET", "gs", "c", "EX", "100"], ["GETSET", "gs", "d"], ["TTL", "gs"],
    ["GETDEL", "gs"], ["GETDEL", "gs"], ["EXISTS", "gs"], ["GETDEL"], ["GETDEL", "a", "b"],
    # EXPIRE options (NX/XX/GT/LT), EXPIREAT, PEXPIREAT, PERSIST, GETEX.
    ["SET", "e1", "v"], ["EXPIRE", "e1", "100", "XX"], ["EXPIRE", "e1", "100", "GT"],
    ["EXPIRE", "e1", "100", "NX"], ("ttl", ["TTL", "e1"]), ["EXPIRE", "e1", "50", "NX"],
    ["EXPIRE", "e1", "200", "GT"], ("ttl", ["TTL", "e1"]), ["EXPIRE", "e1", "100", "GT"],
    ["EXPIRE", "e1", "50", "LT"], ("ttl", ["TTL", "e1"]), ["EXPIRE", "e1", "80", "XX", "LT"],
    ("ttl", ["TTL", "e1"]), ["EXPIRE", "e1", "60", "XX", "GT"], ["EXPIRE", "e1", "10", "NX", "XX"],
    ["EXPIRE", "e1", "10", "GT", "LT"], ["EXPIRE", "e1", "10", "BOGUS"], ["EXPIRE", "e1", "x", "NX"],
    ["EXPIRE", "e1", "x", "BOGUS"], ["PERSIST", "e1"], ["PERSIST", "e1"], ["TTL", "e1"],
    ["PERSIST", "nokey"], ["EXPIRE", "e1", "10", "LT"], ("ttl", ["TTL", "e1"]),
    ["EXPIRE", "e1", "-1", "GT"], ["EXISTS", "e1"], ["EXPIRE", "e1", "-1", "LT"], ["EXISTS", "e1"],
    ["EXPIRE", "nokey", "10", "NX"], ["SET", "e2", "v"],
    ["EXPIREAT", "e2", str(int(time.time()) + 1000)], ("ttl", ["TTL", "e2"]),
    ["PEXPIREAT", "e2", str(int(time.time() * 1000) + 500000), "LT"], ("ttl", ["TTL", "e2"]),
    ["EXPIREAT", "e2", "1"], ["EXISTS", "e2"], ["EXPIREAT", "nokey", "1"], ["EXPIREAT", "e2"],
    ["EXPIRE", "e2", "9223372036854775807"], ["PEXPIREAT", "e2", "x"],
    ["SET", "gx", "val"], ["GETEX", "gx"], ["TTL", "gx"], ["GETEX", "gx", "EX", "100"],
    ("ttl", ["TTL", "gx"]), ["GETEX", "gx", "PERSIST"], ["TTL", "gx"],
    ["GETEX", "gx", "PX", "200000"], ("ttl", ["PTTL", "gx"]),
    ["GETEX", "gx", "EXAT", str(int(time.time()) + 300)], ("ttl", ["TTL", "gx"]),
    ["GETEX", "gx", "EX", "0"], ["GETEX", "gx", "EX", "10", "PX", "10"],
    ["GETEX", "gx", "PERSIST", "EX", "10"], ["GETEX", "gx", "BOGUS"], ["GETEX", "nokey", "EX", "10"],
    ["GETEX", "gx", "PXAT", "1"], ["EXISTS", "gx"], ["GETEX"],
    # APPEND, SETRANGE, GETRANGE (SUBSTR).
    ["APPEND", "ap", "Hello"], ["APPEND", "ap", " World"], ["GET", "ap"], ["APPEND", "ap2", ""],
    ["EXISTS", "ap2"], ["SET", "ap3", "v", "EX", "100"], ["APPEND", "ap3", "w"], ("ttl", ["TTL", "ap3"]),
    ["APPEND", "ap"], ["SETRANGE", "ap", "6", "Redis"], ["GET", "ap"], ["SETRANGE", "sr", "5", "x"],
    ["GET", "sr"], ["STRLEN", "sr"], ["SETRANGE", "sr2", "3", ""], ["EXISTS", "sr2"],
    ["SETRANGE", "ap", "2", ""], ["SETRANGE", "ap", "-1", "x"], ["SETRANGE", "ap", "x", "y"],
    ["SETRANGE", "ap", "0"], ["GETRANGE", "ap", "0", "3"], ["GETRANGE", "ap", "-3", "-1"],
    ["GETRANGE", "ap", "0", "-1"], ["GETRANGE", "ap", "10", "100"], ["GETRANGE", "ap", "5", "2"],
    ["GETRANGE", "ap", "-1", "-5"], ["GETRANGE", "ap", "-100", "2"], ["GETRANGE", "nokey", "0", "1"],
    ["GETRANGE", "ap", "a", "1"], ["SUBSTR", "ap", "1", "2"], ["GETRANGE", "ap", "0"],
    ["SET", "emp", ""], ["GETRANGE", "emp", "0", "-1"],
    # INCRBYFLOAT, with Redis's number formatting and errors.
    ["INCRBYFLOAT", "fl", "10.5"], ["INCRBYFLOAT", "fl", "0.1"], ["INCRBYFLOAT", "fl", "-5.0e3"],
    ["INCRBYFLOAT", "fl", "abc"], ["INCRBYFLOAT", "fl", "inf"], ["INCRBYFLOAT", "fl", " 1"],
    ["INCRBYFLOAT", "fl", ""], ["INCRBYFLOAT", "fl"], ["SET", "fls", "abc"],
    ["INCRBYFLOAT", "fls", "1"], ["SET", "fli", "3"], ["INCRBYFLOAT", "fli", "1.1"],
    ["INCRBYFLOAT", "flz", "3.0e3"], ["INCRBYFLOAT", "fln", "-0.0"], ["INCRBYFLOAT", "flb", "1e300"],
    ["SET", "flt", "1.5", "EX", "100"], ["INCRBYFLOAT", "flt", "1"], ("ttl", ["TTL", "flt"]),
    # Hashes (keys spread over the nodes: most of these are forwarded to their owner).
    ["HSET", "h1", "f1", "v1", "f2", "v2"], ["HSET", "h1", "f1", "x", "f3", "v3"], ["HSET", "h1"],
    ["HSET", "h1", "f"], ["HSET", "h1", "a", "b", "c"], ["HGET", "h1", "f1"], ["HGET", "h1", "nof"],
    ["HGET", "nokey", "f"], ["HGET", "h1"], ["HMGET", "h1", "f1", "nof", "f3"], ["HMGET", "nokey", "a"],
    ["HSETNX", "h1", "f1", "y"], ["HSETNX", "h1", "f4", "y"], ["HGETALL", "h1"], ["HKEYS", "h1"],
    ["HVALS", "h1"], ["HGETALL", "nokey"], ["HKEYS", "nokey"], ["HLEN", "h1"], ["HLEN", "nokey"],
    ["HEXISTS", "h1", "f1"], ["HEXISTS", "h1", "zz"], ["HSTRLEN", "h1", "f2"], ["HSTRLEN", "h1", "zz"],
    ["HINCRBY", "h1", "n", "5"], ["HINCRBY", "h1", "n", "-7"], ["HINCRBY", "h1", "f1", "1"],
    ["HINCRBY", "h1", "n", "x"], ["HINCRBY", "h1", "n", "1.5"], ["HSET", "h1", "big", "9223372036854775807"],
    ["HINCRBY", "h1", "big", "1"], ["HINCRBYFLOAT", "h1", "fl", "10.5"], ["HINCRBYFLOAT", "h1", "fl", "0.1"],
    ["HINCRBYFLOAT", "h1", "f1", "1"], ["HINCRBYFLOAT", "h1", "fl", "abc"], ["HINCRBYFLOAT", "h1", "fl", "inf"],
    ["HINCRBYFLOAT", "h1", "n", "2.5e1"], ["HGETALL", "h1"],
    ["HMSET", "h2", "a", "1", "b", "2"], ["HMSET", "h2", "a"], ["HMSET", "h2", "a", "1", "b"],
    ["HGETALL", "h2"], ["HDEL", "h2", "a", "a", "zz"], ["HDEL", "h2", "b"], ["EXISTS", "h2"],
    ["HDEL", "nokey", "a"], ["HDEL", "h2"],
    # One type per key: every other family is WRONGTYPE, key commands act on any type.
    ["TYPE", "h1"], ["GET", "h1"], ["INCR", "h1"], ["APPEND", "h1", "x"], ["GETDEL", "h1"],
    ["SET", "h1", "v", "GET"], ["LPUSH", "h1", "x"], ["SADD", "h1", "x"], ["SET", "hstr", "v"],
    ["HGET", "hstr", "f"], ["HSET", "hstr", "f", "v"], ["HINCRBY", "hstr", "f", "x"],
    ["HINCRBYFLOAT", "hstr", "f", "x"], ["MGET", "h1", "hstr"], ["STRLEN", "h1"],
    ["EXPIRE", "h1", "100"], ("ttl", ["TTL", "h1"]), ["PERSIST", "h1"], ["TTL", "h1"],
    ["EXISTS", "h1", "hstr"], ["HSET", "hs", "a", "1"], ["SET", "hs", "str"], ["TYPE", "hs"],
    ["GET", "hs"], ["DEL", "h1", "hs"], ["EXISTS", "h1"],
    # Lists.
    ["LPUSHX", "l1", "a"], ["RPUSH", "l1", "a", "b", "c"], ["LPUSH", "l1", "y", "z"],
    ["RPUSHX", "l1", "d"], ["LRANGE", "l1", "0", "-1"], ["LRANGE", "l1", "-2", "100"],
    ["LRANGE", "l1", "4", "2"], ["LRANGE", "l1", "-100", "1"], ["LRANGE", "l1", "a", "1"],
    ["LRANGE", "nokey", "0", "-1"], ["LINDEX", "l1", "-1"], ["LINDEX", "l1", "100"],
    ["LINDEX", "l1", "x"], ["LINDEX", "nokey", "0"], ["LLEN", "l1"], ["LLEN", "nokey"],
    ["LSET", "l1", "1", "Y"], ["LSET", "l1", "100", "q"], ["LSET", "l1", "-100", "q"],
    ["LSET", "nokey", "0", "q"], ["LSET", "l1", "x", "q"],
    ["LINSERT", "l1", "BEFORE", "a", "ba"], ["LINSERT", "l1", "after", "a", "aa"],
    ["LINSERT", "l1", "BEFORE", "nope", "x"], ["LINSERT", "nokey", "BEFORE", "a", "x"],
    ["LINSERT", "l1", "MIDDLE", "a", "x"], ["LRANGE", "l1", "0", "-1"],
    ["LPOP", "l1"], ["RPOP", "l1", "2"], ["LPOP", "l1", "0"], ["LPOP", "nokey"], ["LPOP", "nokey", "2"],
    ["LPOP", "nokey", "0"], ["LPOP", "l1", "-1"], ["LPOP", "l1", "x"], ["LPOP", "l1", "1", "2"],
    ["RPUSH", "l1", "a", "a"], ["LREM", "l1", "-2", "a"], ["LRANGE", "l1", "0", "-1"],
    ["LREM", "l1", "0", "a"], ["LREM", "l1", "x", "a"], ["LREM", "nokey", "1", "a"],
    ["LTRIM", "l1", "1", "-2"], ["LRANGE", "l1", "0", "-1"], ["LTRIM", "l1", "5", "10"],
    ["EXISTS", "l1"], ["LTRIM", "nokey", "0", "1"], ["LTRIM", "l1", "x", "1"],
    ["RPUSH", "l2", "x"], ["RPOP", "l2"], ["EXISTS", "l2"], ["TYPE", "l2"], ["RPOP", "l2"],
    ["RPUSH", "l2", "x", "y"], ["TYPE", "l2"], ["RPOP", "l2", "5"], ["LPUSH"], ["LPUSH", "l2"],
    ["LRANGE", "hstr", "0", "1"], ["LPOP", "hstr"], ["LPOP", "hstr", "0"],
    # Sets (SMEMBERS in any order: Redis's order is its hash table's).
    ["SADD", "s1", "a", "b", "a"], ["SADD", "s1", "b", "c"], ("set", ["SMEMBERS", "s1"]),
    ["SCARD", "s1"], ["SCARD", "nokey"], ["SISMEMBER", "s1", "a"], ["SISMEMBER", "s1", "q"],
    ["SMISMEMBER", "s1", "a", "q", "c"], ["SMISMEMBER", "nokey", "a"], ["SMEMBERS", "nokey"],
    ["SREM", "s1", "a", "q", "a"], ["SREM", "s1", "b", "c"], ["EXISTS", "s1"], ["SMEMBERS", "s1"],
    ["SREM", "nokey", "a"], ["SADD", "s2", "1", "2"], ["TYPE", "s2"], ["SADD", "s2"],
    ["SMISMEMBER", "s2"], ["HGET", "s2", "a"], ["LRANGE", "s2", "0", "1"], ["SADD", "hstr", "a"],
    ["SISMEMBER", "hstr", "a"], ["DEL", "s2", "l2", "hstr"],
    # Positions and random picks: where Redis picks at random the replies are compared as
    # sets ("set"), by length ("len") or by kind ("any").
    ["RPUSH", "lp", "a", "b", "c", "1", "2", "3", "c", "c"], ["LPOS", "lp", "c"],
    ["LPOS", "lp", "c", "RANK", "2"], ["LPOS", "lp", "c", "RANK", "-1"], ["LPOS", "lp", "c", "COUNT", "0"],
    ["LPOS", "lp", "c", "COUNT", "2", "RANK", "-1"], ["LPOS", "lp", "c", "MAXLEN", "2"],
    ["LPOS", "lp", "c", "COUNT", "0", "MAXLEN", "7"], ["LPOS", "lp", "c", "RANK", "-2", "MAXLEN", "2"],
    ["LPOS", "lp", "zz"], ["LPOS", "lp", "zz", "COUNT", "0"], ["LPOS", "nokey", "a"],
    ["LPOS", "nokey", "a", "COUNT", "1"], ["LPOS", "lp", "c", "RANK", "0"],
    ["LPOS", "lp", "c", "COUNT", "-1"], ["LPOS", "lp", "c", "MAXLEN", "-1"], ["LPOS", "lp", "c", "RANK"],
    ["LPOS", "lp", "c", "BOGUS", "1"], ["LPOS", "lp", "c", "RANK", "x"], ["LPOS", "lp", "c", "COUNT", "x"],
    ["LPOS", "lp"], ["SET", "lps", "v"],
    ["LPOS", "lps", "a"], ["SADD", "sp", "a", "b", "c"], ("set", ["SRANDMEMBER", "sp", "3"]),
    ("set", ["SRANDMEMBER", "sp", "10"]), ("len", ["SRANDMEMBER", "sp", "2"]),
    ("len", ["SRANDMEMBER", "sp", "-5"]), ["SRANDMEMBER", "sp", "0"], ("any", ["SRANDMEMBER", "sp"]),
    ["SRANDMEMBER", "nokey"], ["SRANDMEMBER", "nokey", "3"], ["SRANDMEMBER", "nokey", "-3"],
    ["SRANDMEMBER", "sp", "x"], ["SRANDMEMBER", "sp", "1", "2"],
    ["SRANDMEMBER", "sp", "-9223372036854775808"], ["SRANDMEMBER", "lps"], ["SPOP", "sp", "0"],
    ("len", ["SPOP", "sp", "1"]), ("len", ["SPOP", "sp", "5"]), ["SCARD", "sp"], ["EXISTS", "sp"],
    ["SPOP", "sp"], ["SPOP", "nokey", "2"], ["SPOP", "sp", "-1"], ["SPOP", "sp", "x"],
    ["SPOP", "sp", "1", "2"], ["SADD", "sp", "z"], ["SPOP", "sp"], ["EXISTS", "sp"], ["SPOP", "lps"],
    ["HSET", "hr", "f1", "v1", "f2", "v2"], ("set", ["HRANDFIELD", "hr", "2"]),
    ("len", ["HRANDFIELD", "hr", "-3"]), ("set", ["HRANDFIELD", "hr", "5", "WITHVALUES"]),
    ("len", ["HRANDFIELD", "hr", "-2", "WITHVALUES"]), ["HRANDFIELD", "hr", "0"],
    ("any", ["HRANDFIELD", "hr"]), ["HRANDFIELD", "nokey"], ["HRANDFIELD", "nokey", "2"],
    ["HRANDFIELD", "hr", "1", "bogus"], ["HRANDFIELD", "hr", "x"],
    ["HRANDFIELD", "hr", "1", "WITHVALUES", "x"], ["HRANDFIELD", "lps"],
    ["HSCAN", "hr", "0"], ["HSET", "hr", "g1", "w1", "f10", "v10"], ["HSCAN", "hr", "0", "MATCH", "f*"],
    ["HSCAN", "hr", "0", "MATCH", "f?", "COUNT", "1"], ["HSCAN", "hr", "0", "match", "[fg]1"],
    ["HSCAN", "hr", "0", "MATCH", "*", "COUNT", "100"], ["HSCAN", "hr", "0", "MATCH", "\\f*"],
    ["HSCAN", "hr", "0", "MATCH", "[^f]*"], ["HSCAN", "hr", "0", "MATCH", "[a-f]?0"],
    ["HSCAN", "nokey", "0"], ["HSCAN", "hr", "x"], ["HSCAN", "hr", "-1"], ["HSCAN", "hr", " 1"],
    ["HSCAN", "hr", "0", "COUNT", "0"], ["HSCAN", "hr", "0", "COUNT", "x"], ["HSCAN", "hr", "0", "BOGUS", "1"],
    ["HSCAN", "hr", "0", "MATCH"], ["HSCAN", "hr"], ["HSCAN", "lps", "0"],
    ["SADD", "ss", "a1", "a2", "b1"], ("scan", ["SSCAN", "ss", "0"]), ("scan", ["SSCAN", "ss", "0", "MATCH", "a*"]),
    ["SSCAN", "nokey", "0"], ["SSCAN", "ss", "x"], ["SSCAN", "ss", "0", "COUNT", "-1"], ["SSCAN", "lps", "0"],
    ["DEL", "lp", "lps", "hr", "ss"],
    # TYPE; the connection's own commands (CLIENT, HELLO, AUTH without a password set).
    ["TYPE", "ap"], ["TYPE", "nokey"], ["TYPE"], ["CLIENT", "GETNAME"],
    ["CLIENT", "SETNAME", "app-1"], ["CLIENT", "GETNAME"], ["CLIENT", "SETNAME", "bad name"],
    ["CLIENT", "SETNAME"], ["CLIENT", "NOPE"], ["CLIENT", "GETNAME"], ["HELLO", "x"],
    ["HELLO", "4"], ["HELLO", "2", "foo"], ["HELLO", "2", "SETNAME"],
    ["HELLO", "2", "SETNAME", "a b"], ["AUTH", "pw"], ["AUTH", "default", "pw"],
    ["AUTH", "bob", "pw"], ["AUTH", "a", "b", "c"], ["TIME", "x"], ["DBSIZE", "x"],
    # Inline commands (as typed in telnet).
    b"SET inl \"a b\\x41\\n\"\r\n", b"GET inl\r\n", b"PING\r\n", b"\r\n",
    b"ECHO 'it\\'s'\r\n",
]
# Sent last, each on a fresh connection: a protocol error answers, then closes.
PROTOCOL_ERRORS = [
    b"*1\r\n$x\r\n", b"*1\r\n+PING\r\n", b"*abc\r\n", b"*2\r\n$-5\r\n",
    b"SET a \"unbalanced\r\n", b"ECHO 'it''s'\r\n", b"*1\r\n$4\r\nPING\r\n*1\r\n$q\r\n",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode(args):
    if isinstance(args, bytes):
        return args  # Inline, sent as is.
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Reader:
    """Reads whole RESP replies from a socket, returning each one's raw bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _line(self, pos):
        while True:
            end = self.buf.find(b"\r\n", pos)
            if end >= 0:
                return end
            self._fill()

    def _skip(self, pos):
        end = self._line(pos)
        kind = self.buf[pos:pos + 1]
        if kind in (b"+", b"-", b":"):
            return end + 2
        n = int(self.buf[pos + 1:end])
        if kind == b"$":
            if n < 0:
                return end + 2
            while len(self.buf) < end + 2 + n + 2:
                self._fill()
            return end + 2 + n + 2
        if kind == b"*":
            pos = end + 2
            for _ in range(max(n, 0)):
                pos = self._skip(pos)
            return pos
        raise ValueError("unexpected reply byte %r in %r" % (kind, self.buf[pos:pos + 40]))

    def reply(self):
        if not self.buf:
            self._fill()
        end = self._skip(0)
        raw, self.buf = self.buf[:end], self.buf[end:]
        return raw

    def rest_until_close(self, timeout=3.0):
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return self.buf, True
                self.buf += data
        except socket.timeout:
            return self.buf, False


def start(args, ready_check, log_path):
    log = open(log_path, "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while not ready_check():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("%s did not start:\n%s" % (args[0], open(log_path).read()[-3000:]))
        time.sleep(0.05)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def start_cluster(binary, nodes, tmp):
    """nodes ringcached processes, n1 with --resp-listen; returns (procs, resp_port)."""
    procs = []
    seeds = None
    resp_port = None
    for i in range(1, nodes + 1):
        ready = os.path.join(tmp, "n%d.ready" % i)
        args = [binary, "--node-id", "n%d" % i, "--listen", "127.0.0.1:0", "--metrics-listen", "",
                "--memory", "64MiB", "--ready-file", ready, "--log-level", "warn",
                "--replication-factor", str(min(2, nodes))]
        if i == 1:
            args += ["--resp-listen", "127.0.0.1:0"]
        if seeds:
            args += ["--seeds", seeds]
        procs.append(start(args, lambda: os.path.exists(ready), os.path.join(tmp, "n%d.log" % i)))
        fields = dict(l.strip().split("=", 1) for l in open(ready) if "=" in l)
        if i == 1:
            seeds = fields["grpc"]
            resp_port = int(fields["resp"].rsplit(":", 1)[1])
    return procs, resp_port


def settle(port, timeout=30.0):
    """Waits until writes of keys on every node succeed through this node for a whole
    second: until every node has adopted the last join's view, an owner one view behind
    answers TRYAGAIN (clients retry it)."""
    deadline = time.monotonic() + timeout
    args = ["MSET"] + [x for i in range(64) for x in ("settle:%d" % i, "1")]
    ok_since = None
    while ok_since is None or time.monotonic() - ok_since < 1.0:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(encode(args))
        reply = Reader(s).reply()
        s.close()
        if reply == b"+OK\r\n":
            ok_since = ok_since or time.monotonic()
        elif time.monotonic() > deadline:
            raise RuntimeError("the cluster did not settle: %r" % reply)
        else:
            ok_since = None
        time.sleep(0.05)


def run_script(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    reader = Reader(sock)
    replies = []
    for item in SCRIPT:
        args = item[1] if isinstance(item, tuple) else item
        sock.sendall(encode(args))
        if args == b"\r\n":  # An empty inline line gets no reply.
            replies.append(b"")
            continue
        replies.append(reader.reply())
    # The same script pipelined in one write: the replies must not change (except TTLs).
    sock.sendall(b"".join(encode(i[1] if isinstance(i, tuple) else i) for i in SCRIPT
                          if (i[1] if isinstance(i, tuple) else i) != b"\r\n"))
    pipelined = [reader.reply() for i in SCRIPT
                 if (i[1] if isinstance(i, tuple) else i) != b"\r\n"]
    sock.close()
    errors = []
    for raw in PROTOCOL_ERRORS:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(raw)
        data, closed = Reader(s).rest_until_close()
        errors.append((data, closed))
        s.close()
    return replies, pipelined, errors


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hostile(port, pid):
    """Garbage and hostile input on the RESP port; returns a list of failures. The node
    must answer other clients throughout, stay up, and keep its memory bounded."""
    import random
    failures = []
    rng = random.Random(7)
    for _ in range(30):  # Random bytes.
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))))
        s.settimeout(0.2)
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
    for raw, want in [(b"*2147483647\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
                      (b"*1\r\n$99999999999\r\n", b"-ERR Protocol error: invalid bulk length\r\n")]:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(raw)
        data, closed = Reader(s).rest_until_close()
        if data != want or not closed:
            failures.append("huge length %r: got %r, closed %s" % (raw, data, closed))
        s.close()
    # A CONFIG GET pattern of 100 000 '*': matched without recursing that deep (nothing
    # matches a pattern longer than any setting's name).
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(encode(["CONFIG", "GET", "*" * 100000]))
    if Reader(s).reply() != b"*0\r\n":
        failures.append("CONFIG GET of a huge pattern did not answer an empty list")
    s.close()
    # Half a command, then the client goes away.
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\nabc")
    s.close()
    # A client that pipelines without ever reading: it stalls itself, not the node.
    flood = socket.create_connection(("127.0.0.1", port), timeout=5)
    flood.setblocking(False)
    chunk = b"*2\r\n$3\r\nGET\r\n$3\r\nabc\r\n" * 2000
    off, sent, t0 = 0, 0, time.monotonic()
    while time.monotonic() - t0 < 2.0:
        try:
            n = flood.send(chunk[off:])
            sent += n
            off = (off + n) % len(chunk)
        except BlockingIOError:
            time.sleep(0.01)
    other = socket.create_connection(("127.0.0.1", port), timeout=5)
    other.sendall(encode(["PING"]))
    if Reader(other).reply() != b"+PONG\r\n":
        failures.append("another client got no PONG during the flood")
    rss = rss_kib(pid)
    if rss > 512 * 1024:
        failures.append("node RSS %d KiB after a %d-byte unread flood" % (rss, sent))
    flood.close()
    other.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(encode(["PING"]))
    if Reader(s).reply() != b"+PONG\r\n":
        failures.append("no PONG after the hostile input")
    s.close()
    print("hostile input: %d bytes flooded unread, node RSS %d KiB, %d failures"
          % (sent, rss, len(failures)))
    return failures


def array_items(raw):
    """The raw bytes of each element of an array reply, or None if it is not one."""
    if not raw.startswith(b"*"):
        return None
    reader = Reader(None)
    reader.buf = raw[raw.index(b"\r\n") + 2:]
    items = []
    while reader.buf:
        items.append(reader.reply())
    return items


def same(rule, a, b):
    if rule is None:
        return a == b
    if rule == "set":  # The same elements, in any order.
        x, y = array_items(a), array_items(b)
        return a == b if x is None or y is None else sorted(x) == sorted(y)
    if rule == "len":  # Arrays of the same length.
        x, y = array_items(a), array_items(b)
        return a == b if x is None or y is None else len(x) == len(y)
    if rule == "scan":  # A scan's cursor reply, its elements in any order.
        x, y = array_items(a), array_items(b)
        if x is None or y is None or len(x) != 2 or len(y) != 2 or x[0] != y[0]:
            return a == b
        return same("set", x[1], y[1])
    if rule == "any":  # The same kind of reply (a value, not nil).
        return a[:1] == b[:1] and a != b"$-1\r\n" and b != b"$-1\r\n"
    if not (a.startswith(b":") and b.startswith(b":")):
        return a == b
    x, y = int(a[1:-2]), int(b[1:-2])
    return abs(x - y) <= (1 if rule == "ttl" else 1500)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcached", required=True)
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--verbose", action="store_true")
    opts = ap.parse_args()
    if not os.access(opts.redis_server, os.X_OK):
        print("SKIP: redis-server not found (scripts/install-deps.sh installs it)")
        return 77
    tmp = tempfile.mkdtemp(prefix="ringcache-resp-diff-")
    redis_port = free_port()
    procs = []
    try:
        procs.append(start([opts.redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", tmp],
                           lambda: can_connect(redis_port), os.path.join(tmp, "redis.log")))
        cluster, resp_port = start_cluster(opts.ringcached, opts.nodes, tmp)
        procs += cluster
        settle(resp_port)
        want, want_pipe, want_err = run_script(redis_port)
        got, got_pipe, got_err = run_script(resp_port)
        hostile_failures = hostile(resp_port, cluster[0].pid)
    finally:
        for p in procs:
            stop(p)
    failures = 0
    flat = [(i[0] if isinstance(i, tuple) else None, i[1] if isinstance(i, tuple) else i)
            for i in SCRIPT]
    for (rule, args), a, b in zip(flat, want, got):
        ok = same(rule, a, b)
        failures += not ok
        if not ok or opts.verbose:
            print("%s %r\n   redis:     %r\n   ringcache: %r" % ("ok  " if ok else "DIFF", args, a, b))
    piped = [(r, a) for r, a in flat if a != b"\r\n"]
    for (rule, args), a, b in zip(piped, want_pipe, got_pipe):
        if not same(rule, a, b):
            failures += 1
            print("DIFF (pipelined) %r\n   redis:     %r\n   ringcache: %r" % (args, a, b))
    for raw, a, b in zip(PROTOCOL_ERRORS, want_err, got_err):
        if a != b:
            failures += 1
            print("DIFF (protocol error) %r\n   redis:     %r\n   ringcache: %r" % (raw, a, b))
    for f in hostile_failures:
        failures += 1
        print("HOSTILE " + f)
    total = 2 * len(flat) + len(PROTOCOL_ERRORS)
    print("%d of %d replies match redis-server %s" % (total - failures, total,
                                                      "(all)" if failures == 0 else ""))
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
