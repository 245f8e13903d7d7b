/* SPDX-License-Identifier: MIT */
#include "rmq_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp_tcp_socket.h>

void rmq_conn_opts_init(rmq_conn_opts *o)
{
    o->host = "127.0.0.1";
    o->port = 5672;
    o->user = "guest";
    o->pass = "guest";
    o->vhost = "/";
    o->heartbeat_s = 10;
    o->connect_timeout_ms = 2000;
}

int rmq_conn_parse_arg(rmq_conn_opts *o, const char *a)
{
    const char *eq = strchr(a, '=');
    if (!eq)
        return 0;
    size_t k = (size_t)(eq - a);
    const char *v = eq + 1;
#define KEY(s) (k == strlen(s) && strncmp(a, s, k) == 0)
    if (KEY("--host")) {
        o->host = v;
    } else if (KEY("--port")) {
        o->port = atoi(v);
        if (o->port <= 0 || o->port > 65535)
            return -1;
    } else if (KEY("--user")) {
        o->user = v;
    } else if (KEY("--pass")) {
        o->pass = v;
    } else if (KEY("--vhost")) {
        o->vhost = v;
    } else if (KEY("--heartbeat")) {
        o->heartbeat_s = atoi(v);
        if (o->heartbeat_s < 0)
            return -1;
    } else {
        return 0;
    }
#undef KEY
    return 1;
}

int rmq_rpc_ok(amqp_rpc_reply_t r, const char *what, char *err, size_t errlen)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        snprintf(err, errlen, "%s: missing RPC reply", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(err, errlen, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            snprintf(err, errlen, "%s: server closed the connection: %u %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            snprintf(err, errlen, "%s: server closed the channel: %u %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(err, errlen, "%s: unexpected server method 0x%08x", what, r.reply.id);
        }
        break;
    }
    return -1;
}

void rmq_close(amqp_connection_state_t c)
{
    if (!c)
        return;
    /* A dead socket makes the close RPC fail at once; a live one answers close-ok quickly. */
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

int rmq_connect(amqp_connection_state_t *out, const rmq_conn_opts *o, int n_channels, char *err,
                size_t errlen)
{
    amqp_connection_state_t c = amqp_new_connection();
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (!s) {
        snprintf(err, errlen, "cannot create a TCP socket");
        amqp_destroy_connection(c);
        return -1;
    }
    struct timeval tv = {o->connect_timeout_ms / 1000, (o->connect_timeout_ms % 1000) * 1000};
    int rc = amqp_socket_open_noblock(s, o->host, o->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, errlen, "connect %s:%d: %s", o->host, o->port, amqp_error_string2(rc));
        amqp_destroy_connection(c);
        return -1;
    }
    amqp_rpc_reply_t r = amqp_login(c, o->vhost, 0, AMQP_DEFAULT_FRAME_SIZE, o->heartbeat_s,
                                    AMQP_SASL_METHOD_PLAIN, o->user, o->pass);
    if (rmq_rpc_ok(r, "login", err, errlen) != 0) {
        amqp_destroy_connection(c);
        return -1;
    }
    for (int ch = 1; ch <= n_channels; ch++) {
        amqp_channel_open(c, (amqp_channel_t)ch);
        if (rmq_rpc_ok(amqp_get_rpc_reply(c), "channel.open", err, errlen) != 0) {
            amqp_destroy_connection(c);
            return -1;
        }
    }
    *out = c;
    return 0;
}

int rmq_declare_queue(amqp_connection_state_t c, amqp_channel_t ch, const char *name, char *err,
                      size_t errlen)
{
    amqp_queue_declare(c, ch, amqp_cstring_bytes(name), /*passive*/ 0, /*durable*/ 1,
                       /*exclusive*/ 0, /*auto_delete*/ 0, amqp_empty_table);
    return rmq_rpc_ok(amqp_get_rpc_reply(c), "queue.declare", err, errlen);
}

int64_t rmq_backoff_ns(uint32_t n, int64_t base_ns, int64_t cap_ns, uint64_t *rng)
{
    int64_t hi = base_ns;
    for (uint32_t i = 1; i < n && hi < cap_ns; i++)
        hi = hi > cap_ns / 2 ? cap_ns : hi * 2;
    if (hi > cap_ns)
        hi = cap_ns;
    int64_t lo = base_ns / 2 < hi ? base_ns / 2 : hi;
    uint64_t x = *rng ? *rng : 0x9e3779b97f4a7c15u;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    *rng = x;
    return lo + (int64_t)(x % (uint64_t)(hi - lo + 1));
}

long rmq_rss_kib(int pid)
{
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/status", pid);
    else
        snprintf(path, sizeof path, "/proc/self/status");
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    long kib = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}
