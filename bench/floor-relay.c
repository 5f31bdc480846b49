/* The floor of the sweep and of the proxy section: the least a proxy can do. It relays
 * bytes between a client and the upstream's Unix socket with poll, read and write, one
 * thread per connection, and spins briefly (sched_yield between polls) before sleeping, as
 * nbdtap's idle poller does. No decoding, no log, no statistics: what it costs is the
 * system calls any proxy on this machine must make, so nbdtap's ratio to it is the cost of
 * nbdtap itself.
 *
 * --splice moves the bytes with splice(2) through a pipe instead of read and write (the
 * floor of nbdtap's kernel path, which splices payloads only). --record FILE also appends
 * every byte relayed, once, to FILE.N for connection N (the bench deletes them after each
 * run): the least any recording proxy writes, with no packet framing at all; with --splice
 * the bytes are tee(2)d into a second pipe and spliced into the file.
 *
 * Usage: floor-relay [--splice] [--record FILE] LISTEN-SOCKET UPSTREAM-SOCKET
 * (built by bench/bench.py and bench/sweep.py) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *upstream_path;
static const char *record_path;
static int use_splice;

static int send_all(int fd, const char *p, ssize_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, (size_t)n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w;
        n -= w;
    }
    return 0;
}

static void *serve(void *arg) {
    int client = (int)(long)arg;
    int up = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, upstream_path, sizeof a.sun_path - 1);
    if (up < 0 || connect(up, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("floor-relay: connect");
        close(client);
        return NULL;
    }
    static __thread char buf[1 << 17];
    /* A file per connection, FILE.N: splice(2) refuses files opened for appending, and
       connections sharing one file position would write over each other. */
    int rec = -1;
    if (record_path) {
        static int connections;
        char name[4096];
        snprintf(name, sizeof name, "%s.%d", record_path, __atomic_add_fetch(&connections, 1, __ATOMIC_RELAXED));
        rec = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    }
    int p[2] = {-1, -1}, copy[2] = {-1, -1};
    if (use_splice) {
        if (pipe2(p, O_CLOEXEC) != 0 || (rec >= 0 && pipe2(copy, O_CLOEXEC) != 0)) goto done;
        fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
        if (rec >= 0) fcntl(copy[1], F_SETPIPE_SZ, 1 << 20);
    }
    struct pollfd fds[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
    for (;;) {
        int ready = poll(fds, 2, 0);
        for (int i = 0; ready == 0 && i < 50; i++) {
            sched_yield();
            ready = poll(fds, 2, 0);
        }
        if (ready == 0) ready = poll(fds, 2, -1);
        if (ready < 0) break;
        for (int i = 0; i < 2; i++) {
            if (!fds[i].revents) continue;
            if (use_splice) {
                ssize_t n = splice(fds[i].fd, NULL, p[1], NULL, 1 << 20, SPLICE_F_MOVE);
                if (n <= 0) goto done;
                if (rec >= 0 && tee(p[0], copy[1], (size_t)n, 0) != n) goto done;
                for (ssize_t left = n; left > 0;) {
                    ssize_t w = splice(p[0], NULL, fds[1 - i].fd, NULL, (size_t)left, SPLICE_F_MOVE);
                    if (w <= 0) goto done;
                    left -= w;
                }
                for (ssize_t left = rec >= 0 ? n : 0; left > 0;) {
                    ssize_t w = splice(copy[0], NULL, rec, NULL, (size_t)left, SPLICE_F_MOVE);
                    if (w <= 0) goto done;
                    left -= w;
                }
                continue;
            }
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0 || send_all(fds[1 - i].fd, buf, n) != 0) goto done;
            if (rec >= 0 && write(rec, buf, (size_t)n) != n) goto done;
        }
    }
done:
    close(client);
    close(up);
    for (int i = 0; i < 2; i++) {
        if (p[i] >= 0) close(p[i]);
        if (copy[i] >= 0) close(copy[i]);
    }
    if (rec >= 0) close(rec);
    return NULL;
}

int main(int argc, char **argv) {
    int a0 = 1;
    for (; a0 < argc && argv[a0][0] == '-'; a0++) {
        if (strcmp(argv[a0], "--splice") == 0) {
            use_splice = 1;
        } else if (strcmp(argv[a0], "--record") == 0 && a0 + 1 < argc) {
            record_path = argv[++a0];
        } else {
            break;
        }
    }
    if (argc - a0 != 2) {
        fprintf(stderr, "usage: floor-relay [--splice] [--record FILE] LISTEN-SOCKET UPSTREAM-SOCKET\n");
        return 2;
    }
    argv += a0 - 1;
    upstream_path = argv[2];
    signal(SIGPIPE, SIG_IGN);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    unlink(argv[1]);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 128) != 0) {
        perror("floor-relay: listen");
        return 1;
    }
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(long)c) != 0) {
            close(c);
            continue;
        }
        pthread_detach(t);
    }
}
