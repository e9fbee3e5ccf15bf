/* The table of open client connections and the cut-off of slow ones. */
#include <stdlib.h>
#include <sys/socket.h>

#include "agentnet/common.h"
#include "server/connections.h"

void an_conn_table_init(an_conn_table_t *t, uint64_t timeout_s)
{
    pthread_mutex_init(&t->lock, NULL);
    t->head = NULL;
    t->timeout_ns = timeout_s * 1000000000ull;
}

void an_conn_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                    enum MHD_ConnectionNotificationCode code)
{
    an_conn_table_t *t = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        an_conn_track_t *c = calloc(1, sizeof(*c));
        if (!c)
            return; /* untracked: only the idle timeout applies to it */
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = info ? info->connect_fd : -1;
        atomic_store(&c->reading_since_ns, an_mono_ns());
        pthread_mutex_lock(&t->lock);
        c->next = t->head;
        if (t->head)
            t->head->prev = c;
        t->head = c;
        pthread_mutex_unlock(&t->lock);
        *socket_context = c;
        return;
    }

    an_conn_track_t *c = *socket_context;
    if (!c)
        return;
    /* Removed before libmicrohttpd closes the fd, so a cut never hits a reused fd. */
    pthread_mutex_lock(&t->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&t->lock);
    free(c);
    *socket_context = NULL;
}

static an_conn_track_t *track_of(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

void an_conn_request_received(struct MHD_Connection *connection)
{
    an_conn_track_t *c = track_of(connection);
    if (c)
        atomic_store(&c->reading_since_ns, 0);
}

void an_conn_request_done(struct MHD_Connection *connection)
{
    an_conn_track_t *c = track_of(connection);
    if (c)
        atomic_store(&c->reading_since_ns, an_mono_ns());
}

unsigned an_conn_cut_slow(an_conn_table_t *t)
{
    unsigned cut = 0;
    uint64_t now = an_mono_ns();
    pthread_mutex_lock(&t->lock);
    for (an_conn_track_t *c = t->head; c; c = c->next) {
        uint64_t since = atomic_load(&c->reading_since_ns);
        /* since may be later than now: a worker can set it after now was read. */
        if (since == 0 || since >= now || now - since <= t->timeout_ns || c->fd < 0 ||
            atomic_load(&c->cut))
            continue;
        /* libmicrohttpd treats the shutdown as a closed socket and cleans up itself. */
        shutdown(c->fd, SHUT_RDWR);
        atomic_store(&c->cut, 1);
        cut++;
    }
    pthread_mutex_unlock(&t->lock);
    return cut;
}
