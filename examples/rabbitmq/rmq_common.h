/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the RabbitMQ worker and gateway examples: connection options from the
 * command line, connect + login + channel open with readable errors, the topology both sides
 * declare (so the declarations always match), and a jittered exponential backoff.
 *
 * Everything here runs on one thread per connection: rabbitmq-c connections are not thread-safe.
 */
#ifndef RMQ_COMMON_H
#define RMQ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

/** Where and how to connect. Filled with defaults by rmq_conn_opts_init(). */
typedef struct rmq_conn_opts {
    const char *host;       /**< default 127.0.0.1 */
    int port;               /**< default 5672 */
    const char *user;       /**< default guest */
    const char *pass;       /**< default guest */
    const char *vhost;      /**< default / */
    int heartbeat_s;        /**< AMQP heartbeat; default 10 s (a dead broker is noticed in ~20 s) */
    int connect_timeout_ms; /**< TCP connect timeout; default 2000 */
} rmq_conn_opts;

void rmq_conn_opts_init(rmq_conn_opts *o);

/** Parse one shared option (--host, --port, --user, --pass, --vhost, --heartbeat) in "--k=v"
 *  form. Returns 1 if @p arg was one of them, 0 if not, -1 if its value is bad. */
int rmq_conn_parse_arg(rmq_conn_opts *o, const char *arg);

/** Connect, log in and open channels 1..@p n_channels. On failure returns -1, destroys the
 *  half-open connection and writes a reason to @p err. */
int rmq_connect(amqp_connection_state_t *out, const rmq_conn_opts *o, int n_channels, char *err,
                size_t errlen);

/** Describe a failed RPC reply into @p err; returns 0 for a normal reply, -1 otherwise. */
int rmq_rpc_ok(amqp_rpc_reply_t r, const char *what, char *err, size_t errlen);

/** Declare the durable task (or reply) queue on @p ch: durable, not exclusive, not
 *  auto-delete, no arguments, so that every program declaring it agrees. */
int rmq_declare_queue(amqp_connection_state_t c, amqp_channel_t ch, const char *name, char *err,
                      size_t errlen);

/** Close a connection politely (bounded by the socket) and destroy it. NULL is a no-op. */
void rmq_close(amqp_connection_state_t c);

/** Exponential backoff with full jitter: the n-th retry (n >= 1) waits a uniform time in
 *  [base/2, min(cap, base * 2^(n-1))]. @p rng is caller state (xorshift). */
int64_t rmq_backoff_ns(uint32_t n, int64_t base_ns, int64_t cap_ns, uint64_t *rng);

/** Resident set size of process @p pid (0: self) in KiB from /proc; 0 if unknown. */
long rmq_rss_kib(int pid);

#endif
