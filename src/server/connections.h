/*
 * Client connection tracking that cuts off slow clients. libmicrohttpd's
 * timeout only closes idle connections, so a client that sends one byte a
 * second would hold a connection forever. Here every connection must deliver
 * a whole request (headers and body) within the client timeout.
 */
#ifndef AGENTNET_SERVER_CONNECTIONS_H
#define AGENTNET_SERVER_CONNECTIONS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <microhttpd.h>

typedef struct an_conn_track {
    int fd;
    atomic_uint_fast64_t reading_since_ns; /* 0 while a request is being handled */
    atomic_int cut;                        /* already shut down for slowness */
    struct an_conn_track *prev, *next;     /* guarded by the table's lock */
} an_conn_track_t;

typedef struct {
    pthread_mutex_t lock; /* guards the list; held while shutting a socket down */
    an_conn_track_t *head;
    uint64_t timeout_ns;
} an_conn_table_t;

void an_conn_table_init(an_conn_table_t *t, uint64_t timeout_s);

/* The MHD_OPTION_NOTIFY_CONNECTION callback; cls is the table. */
void an_conn_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                    enum MHD_ConnectionNotificationCode code);

/* Marks the connection's request as complete (handling) or done (reading the next). */
void an_conn_request_received(struct MHD_Connection *connection);
void an_conn_request_done(struct MHD_Connection *connection);

/* Shuts down connections reading one request for longer than the timeout. */
unsigned an_conn_cut_slow(an_conn_table_t *t);

#endif
