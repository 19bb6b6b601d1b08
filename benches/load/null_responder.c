/*
 * The floor for benches/load.sh: a "DNS server" that does no DNS work.
 *
 * Every UDP datagram is sent back to its sender with the QR bit set
 * (recvmmsg/sendmmsg, up to BATCH at a time); every length-prefixed TCP
 * message is sent back the same way. What it costs per query is what the
 * kernel charges for loopback UDP/TCP plus a few hundred instructions, so a
 * real server's CPU time per query minus this one's is the server's own work.
 *
 *   gcc -O2 -pthread -o null_responder null_responder.c
 *   ./null_responder 127.0.0.1 15300
 *
 * Runs until SIGTERM/SIGINT. Loopback benchmarking only: it answers anyone.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM_MAX 4096
#define TCP_BUF 65536
#define MAX_EVENTS 64

static void die(const char *what) {
    perror(what);
    exit(1);
}

static struct sockaddr_in listen_addr;

static void *serve_udp(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("udp socket");
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if (bind(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0) die("udp bind");

    static char bufs[BATCH][DGRAM_MAX];
    static struct sockaddr_in peers[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = DGRAM_MAX;
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_name = &peers[i];
            msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("recvmmsg");
        }
        int out = 0;
        for (int i = 0; i < n; i++) {
            unsigned len = msgs[i].msg_len;
            if (len < 12 || (bufs[i][2] & 0x80)) continue; /* not a query */
            bufs[i][2] |= 0x80;
            iov[i].iov_len = len;
            if (out != i) {
                msgs[out].msg_hdr = msgs[i].msg_hdr;
            }
            out++;
        }
        for (int sent = 0; sent < out;) {
            int m = sendmmsg(fd, msgs + sent, out - sent, 0);
            if (m < 0) {
                if (errno == EINTR) continue;
                break; /* drop the rest, as a busy server would */
            }
            sent += m;
        }
    }
    return NULL;
}

struct conn {
    int fd;
    size_t len;
    unsigned char buf[TCP_BUF];
};

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                poll(&pfd, 1, 1000);
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answers every complete message in the buffer; returns -1 to close. */
static int serve_tcp_data(struct conn *c) {
    size_t off = 0;
    while (c->len - off >= 2) {
        size_t msg = ((size_t)c->buf[off] << 8) | c->buf[off + 1];
        if (c->len - off < 2 + msg) break;
        if (msg >= 12) c->buf[off + 2 + 2] |= 0x80;
        off += 2 + msg;
    }
    if (off > 0) {
        if (write_all(c->fd, c->buf, off) < 0) return -1;
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    return c->len == TCP_BUF ? -1 : 0;
}

static void serve_tcp(void) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0) die("tcp socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0) die("tcp bind");
    if (listen(lfd, 1024) < 0) die("listen");
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    if (!nc) die("calloc");
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            ssize_t r = read(c->fd, c->buf + c->len, TCP_BUF - c->len);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) goto close_conn;
            c->len += (size_t)r;
            if (serve_tcp_data(c) == 0) continue;
        close_conn:
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            free(c);
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ADDRESS PORT\n", argv[0]);
        return 2;
    }
    memset(&listen_addr, 0, sizeof listen_addr);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &listen_addr.sin_addr) != 1) {
        fprintf(stderr, "not an IPv4 address: %s\n", argv[1]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_t udp;
    if (pthread_create(&udp, NULL, serve_udp, NULL) != 0) die("pthread_create");
    serve_tcp();
    return 0;
}
