/* The floor of the sweep: the least a proxy can do. It relays bytes between a client and
 * the upstream's Unix socket with poll, read and write, one thread per connection, and
 * spins briefly (sched_yield between polls) before sleeping, as nbdtap's idle poller does.
 * No decoding, no log, no statistics: what it costs is the system calls any proxy on
 * this machine must make, so nbdtap's ratio to it is the cost of nbdtap itself.
 *
 * Usage: floor-relay LISTEN-SOCKET UPSTREAM-SOCKET   (built by bench/sweep.py) */
#define _GNU_SOURCE
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
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0 || send_all(fds[1 - i].fd, buf, n) != 0) goto done;
        }
    }
done:
    close(client);
    close(up);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: floor-relay LISTEN-SOCKET UPSTREAM-SOCKET\n");
        return 2;
    }
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
