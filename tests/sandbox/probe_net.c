/*
 * Network attempts: a TCP connect to a listener the suite started on the
 * host's 127.0.0.1, and a DNS lookup. Nothing here sends a packet to any
 * address other than 127.0.0.1, because the resolvers in /etc/resolv.conf
 * are only connect()ed over UDP: the kernel looks up a route and sends nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe.h"

#define CONNECT_TIMEOUT_MS 2000
#define DNS_REPLY_TIMEOUT_MS 1000
#define MAX_RESOLVERS 3

/* A name under the .test top-level domain, which is reserved for testing and never resolves. */
#define DNS_QUERY_NAME "escape-probe.test"


/* Connects fd to addr, waiting at most timeout_ms; returns 0 or an errno value. */
static int connect_with_timeout(int fd, const struct sockaddr *addr, socklen_t len, int timeout_ms)
{
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;

    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready == 0)
        return ETIMEDOUT;
    if (ready < 0)
        return errno;
    int err = 0;
    socklen_t err_len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
    return err;
}


static struct sockaddr_in loopback_address(long port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}


int probe_tcp_connect(int argc, char **argv, json_t *out)
{
    long port = 0;
    if (argc != 1 || probe_parse_long(argv[0], 1, 65535, &port) != 0) {
        json_object_set_new(out, "error", json_string("expected a PORT in 1..65535"));
        return PROBE_USAGE;
    }
    json_object_set_new(out, "port", json_integer(port));

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        json_object_update_new(out, probe_attempt(0, errno));
        return PROBE_CONTAINED;
    }
    struct sockaddr_in addr = loopback_address(port);
    int err = connect_with_timeout(fd, (struct sockaddr *)&addr, sizeof(addr), CONNECT_TIMEOUT_MS);
    close(fd);

    json_object_set_new(out, "ok", json_boolean(err == 0));
    json_object_set_new(out, "errno", err == 0 ? json_null() : json_string(probe_errno_name(err)));
    return err == 0 ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/* The names of the network interfaces in this process's network namespace. */
static json_t *interface_names(void)
{
    json_t *names = json_array();
    struct if_nameindex *list = if_nameindex();
    for (struct if_nameindex *entry = list; entry && entry->if_index != 0; entry++)
        json_array_append_new(names, json_string(entry->if_name));
    if (list)
        if_freenameindex(list);
    return names;
}


/*
 * UDP-connects to port 53 of address, which sends no packet: the kernel only
 * looks up a route. Returns {"address", "ok", "errno"}.
 */
static json_t *resolver_route(const char *address, int *reachable)
{
    struct sockaddr_storage storage = {0};
    socklen_t len = 0;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&storage;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&storage;
    if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(53);
        len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(53);
        len = sizeof(*v6);
    }

    json_t *result = json_object();
    json_object_set_new(result, "address", json_string(address));
    if (len == 0) {
        json_object_set_new(result, "ok", json_false());
        json_object_set_new(result, "errno", json_string("unparsed"));
        return result;
    }
    int fd = socket(storage.ss_family, SOCK_DGRAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&storage, len) == 0;
    int err = errno;
    if (fd >= 0)
        close(fd);
    *reachable |= ok;
    json_object_update_new(result, probe_attempt(ok, err));
    return result;
}


/* Routes to the nameservers of /etc/resolv.conf, when the file is readable. */
static json_t *resolver_routes(int *reachable, json_t *out)
{
    json_t *routes = json_array();
    FILE *file = fopen("/etc/resolv.conf", "r");
    if (!file) {
        json_object_set_new(out, "resolv_conf", probe_attempt(0, errno));
        return routes;
    }
    json_object_set_new(out, "resolv_conf", probe_attempt(1, 0));
    char line[256];
    char address[INET6_ADDRSTRLEN + 1];
    while (fgets(line, sizeof(line), file) && json_array_size(routes) < MAX_RESOLVERS) {
        if (sscanf(line, " nameserver %46s", address) == 1)
            json_array_append_new(routes, resolver_route(address, reachable));
    }
    fclose(file);
    return routes;
}


/* Writes a DNS query for DNS_QUERY_NAME, type A, into packet; returns its length. */
static size_t build_query(unsigned char *packet, size_t size)
{
    static const unsigned char header[12] = {0x41, 0x4e, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0};
    memcpy(packet, header, sizeof(header));
    size_t at = sizeof(header);
    const char *label = DNS_QUERY_NAME;
    while (*label && at + 64 < size) {
        size_t length = strcspn(label, ".");
        packet[at++] = (unsigned char)length;
        memcpy(packet + at, label, length);
        at += length;
        label += length + (label[length] == '.');
    }
    static const unsigned char tail[5] = {0, 0, 1, 0, 1}; /* root label, type A, class IN */
    memcpy(packet + at, tail, sizeof(tail));
    return at + sizeof(tail);
}


/* Sends one query to 127.0.0.1:port and waits briefly for any reply. */
static json_t *query_loopback(long port, int *answered)
{
    json_t *result = json_object();
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        json_object_set_new(result, "send", probe_attempt(0, errno));
        return result;
    }
    struct sockaddr_in addr = loopback_address(port);
    unsigned char packet[128];
    size_t length = build_query(packet, sizeof(packet));
    int sent = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
               send(fd, packet, length, 0) == (ssize_t)length;
    json_object_set_new(result, "send", probe_attempt(sent, errno));

    int got_reply = 0;
    int err = ETIMEDOUT;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (sent && poll(&pfd, 1, DNS_REPLY_TIMEOUT_MS) > 0) {
        got_reply = recv(fd, packet, sizeof(packet), 0) > 0;
        err = errno;
    }
    close(fd);
    *answered = got_reply;
    json_object_set_new(result, "reply", probe_attempt(got_reply, err));
    return result;
}


int probe_dns(int argc, char **argv, json_t *out)
{
    if (probe_require_filter(out) != 0)
        return PROBE_USAGE;
    long port = 0;
    if (argc != 1 || probe_parse_long(argv[0], 1, 65535, &port) != 0) {
        json_object_set_new(out, "error", json_string("expected the PORT of the suite's DNS listener"));
        return PROBE_USAGE;
    }

    int reachable = 0;
    int answered = 0;
    json_object_set_new(out, "interfaces", interface_names());
    json_object_set_new(out, "resolvers", resolver_routes(&reachable, out));
    json_object_set_new(out, "query", query_loopback(port, &answered));
    json_object_set_new(out, "ok", json_boolean(reachable || answered));
    return reachable || answered ? PROBE_ESCAPED : PROBE_CONTAINED;
}
